//! What the proxy saw: counters, and a timestamped record of every connection and request,
//! so tests can assert counts and ordering (never durations).

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

/// The HTTP version a connection carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// HTTP/1.1 (plain connections are always counted as HTTP/1.1).
    Http1,
    /// HTTP/2, negotiated by ALPN `h2` on a TLS connection.
    Http2,
}

/// One connection the proxy forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionRecord {
    /// Sequential from 0 for the proxy's life (not reset by [`crate::Proxy::reset_stats`]).
    pub id: u64,
    /// When the client connected: the client's end of the simulated link (the connect round
    /// trip is charged after this instant).
    pub opened: Instant,
    /// When the server's end finished the TLS handshake (`None`: plain, or not finished).
    pub tls_done: Option<Instant>,
    /// What the connection carries (for TLS, what ALPN negotiated).
    pub protocol: Protocol,
}

/// One request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestRecord {
    /// The [`ConnectionRecord::id`] it came on.
    pub connection: u64,
    /// HTTP/1.1, or a stream of an HTTP/2 connection.
    pub protocol: Protocol,
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path (and query) of the request target.
    pub path: String,
    /// The `X-Amz-Target` header (AWS JSON protocols name the operation there), if any.
    pub amz_target: Option<String>,
    /// When the request reached the server's end of the simulated link.
    pub arrived: Instant,
    /// When the response head left the server's end (the client sees it one delay later).
    pub answered: Option<Instant>,
    /// The response's status.
    pub status: Option<u16>,
}

/// What the proxy saw since it started or since [`crate::Proxy::reset_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ProxyStats {
    /// Connections accepted and forwarded (refused ones excluded).
    pub connections: u64,
    /// TLS handshakes completed (TLS proxies only; one per connection that got that far).
    pub tls_handshakes: u64,
    /// Connections closed at once under [`crate::Fault::Refuse`].
    pub refused: u64,
    /// Connections answered by the proxy itself under [`crate::Fault::Respond`].
    pub answered: u64,
    /// Requests sent by clients: HTTP/1.1 request heads and HTTP/2 streams.
    pub requests: u64,
    /// The part of [`Self::requests`] that came as HTTP/2 streams.
    pub streams: u64,
    /// Final (non-1xx) response heads sent by the upstream (or by the proxy, for a request
    /// the upstream could not answer).
    pub responses: u64,
    /// The most requests in flight at once: requests read minus response heads read,
    /// across every connection.
    pub max_in_flight: u64,
}

/// The counters and the records, shared by the handle and the connections.
#[derive(Debug, Default)]
pub(crate) struct Log {
    pub(crate) connections: AtomicU64,
    pub(crate) tls_handshakes: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) answered: AtomicU64,
    requests: AtomicU64,
    streams: AtomicU64,
    responses: AtomicU64,
    in_flight: AtomicI64,
    max_in_flight: AtomicU64,
    next_id: AtomicU64,
    records: Mutex<Records>,
}

#[derive(Debug, Default)]
struct Records {
    /// Bumped by each reset, so a late update of a cleared record is dropped.
    generation: u64,
    connections: Vec<ConnectionRecord>,
    requests: Vec<RequestRecord>,
}

/// Where a request's record is, to note its answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestSlot {
    generation: u64,
    index: usize,
}

impl Log {
    /// Counts a new forwarded connection and records it; returns its id.
    pub(crate) fn connection_opened(&self, opened: Instant, protocol: Protocol) -> u64 {
        self.connections.fetch_add(1, Ordering::Relaxed);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut r) = self.records.lock() {
            r.connections.push(ConnectionRecord {
                id,
                opened,
                tls_done: None,
                protocol,
            });
        }
        id
    }

    /// Notes a completed TLS handshake on connection `id` and what ALPN chose. A handshake
    /// that completes after a reset, on a connection opened before it (the proxy's delay
    /// lags the client, which may be gone), is not counted: handshakes stay a count of this
    /// period's connections.
    pub(crate) fn tls_done(&self, id: u64, protocol: Protocol) {
        let now = Instant::now();
        if let Ok(mut r) = self.records.lock()
            && let Some(c) = r.connections.iter_mut().rev().find(|c| c.id == id)
        {
            self.tls_handshakes.fetch_add(1, Ordering::Relaxed);
            c.tls_done = Some(now);
            c.protocol = protocol;
        }
    }

    /// Counts and records a request that reached the server's end at `arrived`.
    pub(crate) fn request_started(
        &self,
        connection: u64,
        protocol: Protocol,
        head: RequestHead,
        arrived: Instant,
    ) -> Option<RequestSlot> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if protocol == Protocol::Http2 {
            self.streams.fetch_add(1, Ordering::Relaxed);
        }
        let now = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        self.max_in_flight
            .fetch_max(u64::try_from(now).unwrap_or(0), Ordering::AcqRel);
        let mut r = self.records.lock().ok()?;
        r.requests.push(RequestRecord {
            connection,
            protocol,
            method: head.method,
            path: head.path,
            amz_target: head.amz_target,
            arrived,
            answered: None,
            status: None,
        });
        Some(RequestSlot {
            generation: r.generation,
            index: r.requests.len() - 1,
        })
    }

    /// Counts the final response head of the request in `slot` (`None`: a response the
    /// proxy could not match to a request).
    pub(crate) fn response_started(&self, slot: Option<RequestSlot>, status: u16, matched: bool) {
        self.responses.fetch_add(1, Ordering::Relaxed);
        if matched {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
        let now = Instant::now();
        if let Some(slot) = slot
            && let Ok(mut r) = self.records.lock()
            && r.generation == slot.generation
            && let Some(req) = r.requests.get_mut(slot.index)
        {
            req.answered = Some(now);
            req.status = Some(status);
        }
    }

    /// Requests that will never be answered (their connection ended) leave the in-flight
    /// count.
    pub(crate) fn abandoned(&self, count: usize) {
        self.in_flight
            .fetch_sub(i64::try_from(count).unwrap_or(0), Ordering::AcqRel);
    }

    pub(crate) fn stats(&self) -> ProxyStats {
        ProxyStats {
            connections: self.connections.load(Ordering::Acquire),
            tls_handshakes: self.tls_handshakes.load(Ordering::Acquire),
            refused: self.refused.load(Ordering::Acquire),
            answered: self.answered.load(Ordering::Acquire),
            requests: self.requests.load(Ordering::Acquire),
            streams: self.streams.load(Ordering::Acquire),
            responses: self.responses.load(Ordering::Acquire),
            max_in_flight: self.max_in_flight.load(Ordering::Acquire),
        }
    }

    pub(crate) fn reset(&self) {
        // Under the records' lock, so that a handshake noted meanwhile is counted in one
        // period or the other, never in the new one for a cleared connection.
        let mut records = self.records.lock();
        for c in [
            &self.connections,
            &self.tls_handshakes,
            &self.refused,
            &self.answered,
            &self.requests,
            &self.streams,
            &self.responses,
        ] {
            c.store(0, Ordering::Release);
        }
        let now = self.in_flight.load(Ordering::Acquire).max(0);
        self.max_in_flight
            .store(u64::try_from(now).unwrap_or(0), Ordering::Release);
        if let Ok(r) = records.as_mut() {
            r.generation += 1;
            r.connections.clear();
            r.requests.clear();
        }
    }

    pub(crate) fn connections(&self) -> Vec<ConnectionRecord> {
        self.records
            .lock()
            .map(|r| r.connections.clone())
            .unwrap_or_default()
    }

    pub(crate) fn requests(&self) -> Vec<RequestRecord> {
        self.records
            .lock()
            .map(|r| r.requests.clone())
            .unwrap_or_default()
    }
}

/// What the proxy keeps of a request head.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RequestHead {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) amz_target: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handshake_finishing_after_a_reset_is_not_counted() {
        let log = Log::default();
        let before = log.connection_opened(Instant::now(), Protocol::Http1);
        log.reset();
        log.tls_done(before, Protocol::Http1);
        assert_eq!(log.stats().tls_handshakes, 0);
        let after = log.connection_opened(Instant::now(), Protocol::Http1);
        log.tls_done(after, Protocol::Http2);
        let stats = log.stats();
        assert_eq!((stats.connections, stats.tls_handshakes), (1, 1));
    }
}
