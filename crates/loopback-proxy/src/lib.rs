//! A loopback TCP proxy for benchmarks and reliability tests: latency, HTTP/1.1 request
//! counting and faults, without `tc netem`.
//!
//! [`Proxy::start`] listens on `127.0.0.1:0` and forwards every connection to one upstream.
//! With a one-way delay `d`:
//!
//! - a new connection costs one round trip: bytes the client sends before `accepted + 2d`
//!   are treated as sent at `accepted + 2d` (the TCP handshake the client did not wait for);
//! - every byte is delivered `d` after the proxy read it, in each direction, in order. Each
//!   direction is a queue of timestamped chunks, so a chunk read while another one waits is
//!   not delayed further: a stream is delayed, not serialised;
//! - a half-close (FIN) is delayed like data.
//!
//! It counts connections, HTTP/1.1 request heads (keep-alive aware: heads end at
//! `\r\n\r\n`, bodies are skipped by `Content-Length` or chunked framing), final response heads,
//! and the most requests in flight at once (request heads read minus response heads read).
//!
//! Faults, settable at any time with [`Proxy::set_fault`], serve reliability tests: see
//! [`Fault`].
//!
//! The proxy runs on its own thread with its own single-threaded tokio runtime, so it can be
//! used from synchronous code and from any async runtime alike. Dropping the [`Proxy`] stops
//! it and closes every connection.
//!
//! ```
//! use loopback_proxy::{Proxy, ProxyConfig};
//! use std::time::Duration;
//!
//! # fn main() -> std::io::Result<()> {
//! # let upstream = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let proxy = Proxy::start(
//!     upstream.local_addr()?,
//!     ProxyConfig::default().with_delay(Duration::from_millis(25)),
//! )?;
//! let base_url = proxy.url(); // "http://127.0.0.1:<port>": point the client here
//! # let _ = base_url;
//! assert_eq!(proxy.stats().requests, 0);
//! # Ok(())
//! # }
//! ```
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

mod http;

use http::{Head, MessageCounter, Side};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener as StdListener};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::Instant;

/// Bytes read per chunk.
const READ_BUF: usize = 64 * 1024;

/// A fault the proxy injects, for reliability tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Fault {
    /// Forward faithfully.
    #[default]
    None,
    /// Accept new connections and close them at once, without reading (the client sees
    /// end of file or a reset before any response). Open connections are not affected.
    Refuse,
    /// On every connection, forward the first `after_bytes` bytes of the upstream's answer,
    /// counted from the start of the connection's upstream-to-client stream, then reset the
    /// connection (RST).
    ResetMidResponse {
        /// Bytes forwarded to the client before the reset.
        after_bytes: u64,
    },
    /// Hold every upstream-to-client byte while this fault is set (requests still reach the
    /// upstream); held bytes are delivered, in order, once the fault is cleared.
    StallResponses,
    /// Like [`Fault::ResetMidResponse`], but the connection ends with a clean close (FIN):
    /// the client sees an answer cut short, e.g. a body shorter than its `Content-Length`.
    TruncateResponse {
        /// Bytes forwarded to the client before the close.
        after_bytes: u64,
    },
    /// Answer every request on new connections with this status, from the proxy itself
    /// (`Retry-After: 0`, a small JSON `errors` body, `Connection: close`), never reaching the
    /// upstream: a 5xx or 429 from a load balancer. Open connections are not affected.
    Respond {
        /// The status, e.g. 503 or 429.
        status: u16,
    },
}

/// The proxy's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// The one-way delay `d` (a round trip costs `2d`; a new connection costs `2d` more).
    pub delay: Duration,
    /// The initial fault.
    pub fault: Fault,
}

impl ProxyConfig {
    /// Sets the one-way delay.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sets the initial fault.
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.fault = fault;
        self
    }
}

/// What the proxy saw since it started or since [`Proxy::reset_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ProxyStats {
    /// Connections accepted and forwarded (refused ones excluded).
    pub connections: u64,
    /// Connections closed at once under [`Fault::Refuse`].
    pub refused: u64,
    /// Connections answered by the proxy itself under [`Fault::Respond`].
    pub answered: u64,
    /// HTTP/1.1 request heads sent by clients.
    pub requests: u64,
    /// Final (non-1xx) HTTP/1.1 response heads sent by the upstream.
    pub responses: u64,
    /// The most requests in flight at once: request heads read minus response heads read,
    /// across every connection.
    pub max_in_flight: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    refused: AtomicU64,
    answered: AtomicU64,
    requests: AtomicU64,
    responses: AtomicU64,
    in_flight: AtomicI64,
    max_in_flight: AtomicU64,
}

impl Counters {
    fn request_started(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let now = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        self.max_in_flight
            .fetch_max(u64::try_from(now).unwrap_or(0), Ordering::AcqRel);
    }

    fn response_started(&self) {
        self.responses.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// State shared by the handle and the proxy's thread.
#[derive(Debug)]
struct Shared {
    counters: Counters,
    delay_nanos: AtomicU64,
    fault: watch::Sender<Fault>,
}

impl Shared {
    fn delay(&self) -> Duration {
        Duration::from_nanos(self.delay_nanos.load(Ordering::Relaxed))
    }

    fn fault(&self) -> Fault {
        *self.fault.borrow()
    }
}

/// A running proxy. Stops, closing every connection, when dropped.
pub struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream)
            .field("delay", &self.shared.delay())
            .field("fault", &self.shared.fault())
            .finish()
    }
}

impl Proxy {
    /// Listens on `127.0.0.1:0` and forwards to `upstream` with `config`.
    ///
    /// # Errors
    ///
    /// When the listener cannot be bound or the proxy's thread or runtime cannot start.
    pub fn start(upstream: SocketAddr, config: ProxyConfig) -> io::Result<Proxy> {
        let listener = StdListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (fault, _) = watch::channel(config.fault);
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            delay_nanos: AtomicU64::new(nanos(config.delay)),
            fault,
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (shutdown, stop) = oneshot::channel();
        let state = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("loopback-proxy-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(_) => return,
                    };
                    tokio::select! {
                        () = accept_loop(listener, upstream, state) => {}
                        _ = stop => {}
                    }
                });
                // Dropping the runtime here cancels every connection task, closing sockets.
            })?;
        Ok(Proxy {
            addr,
            upstream,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, the base URL for an HTTP client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The upstream address.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// The counters since start or the last [`Self::reset_stats`].
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            connections: c.connections.load(Ordering::Acquire),
            refused: c.refused.load(Ordering::Acquire),
            answered: c.answered.load(Ordering::Acquire),
            requests: c.requests.load(Ordering::Acquire),
            responses: c.responses.load(Ordering::Acquire),
            max_in_flight: c.max_in_flight.load(Ordering::Acquire),
        }
    }

    /// Sets every counter to zero; the maximum in flight restarts from the requests in flight
    /// now (zero when the clients are idle).
    pub fn reset_stats(&self) {
        let c = &self.shared.counters;
        c.connections.store(0, Ordering::Release);
        c.refused.store(0, Ordering::Release);
        c.answered.store(0, Ordering::Release);
        c.requests.store(0, Ordering::Release);
        c.responses.store(0, Ordering::Release);
        let now = c.in_flight.load(Ordering::Acquire).max(0);
        c.max_in_flight
            .store(u64::try_from(now).unwrap_or(0), Ordering::Release);
    }

    /// The one-way delay.
    pub fn delay(&self) -> Duration {
        self.shared.delay()
    }

    /// Changes the one-way delay; applies to bytes read from now on (and to the connect
    /// cost of connections accepted from now on).
    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_nanos
            .store(nanos(delay), Ordering::Relaxed);
    }

    /// The current fault.
    pub fn fault(&self) -> Fault {
        self.shared.fault()
    }

    /// Sets the fault; takes effect at once (see [`Fault`] for what each one affects).
    pub fn set_fault(&self, fault: Fault) {
        self.shared.fault.send_replace(fault);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // EMFILE and the like: back off briefly rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if shared.fault() == Fault::Refuse {
            shared.counters.refused.fetch_add(1, Ordering::Relaxed);
            let _ = client.set_zero_linger();
            drop(client);
            continue;
        }
        if let Fault::Respond { status } = shared.fault() {
            shared.counters.answered.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(answer(client, status));
            continue;
        }
        shared.counters.connections.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(connection(client, upstream, Arc::clone(&shared)));
    }
}

/// Reads one request head (bounded in size and time) and answers it with `status`.
async fn answer(mut client: TcpStream, status: u16) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let read_head = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < READ_BUF {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    };
    if !matches!(
        tokio::time::timeout(Duration::from_secs(5), read_head).await,
        Ok(true)
    ) {
        return;
    }
    let body = format!("{{\"errors\":[\"injected {status} from loopback-proxy\"]}}");
    let answer = format!(
        "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nRetry-After: 0\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(answer.as_bytes()).await;
    let _ = client.shutdown().await;
}

/// One chunk in a direction's queue.
enum Item {
    Data(Instant, Vec<u8>),
    Eof(Instant),
}

/// Per-connection state both directions share.
#[derive(Debug, Default)]
struct Conn {
    /// For each request whose response has not started: whether it was a `HEAD`.
    pending: Mutex<VecDeque<bool>>,
    /// Set when the connection must end at once (an error, or a reset fault).
    kill: Notify,
}

async fn connection(mut client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let accepted = Instant::now();
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    // Borrowed halves: dropping them does not send FIN, so a reset fault resets.
    let (client_read, client_write) = client.split();
    let (server_read, server_write) = server.split();
    let conn = Arc::new(Conn::default());
    // The handshake the client did not wait for: its first bytes leave at accepted + 2d.
    let ready_at = accepted + shared.delay() * 2;

    let up = direction(
        client_read,
        server_write,
        Side::Request,
        ready_at,
        &shared,
        &conn,
    );
    let down = direction(
        server_read,
        client_write,
        Side::Response,
        accepted,
        &shared,
        &conn,
    );
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        () = conn.kill.notified() => {}
    }
    // Requests this connection left unanswered are no longer in flight.
    let left = conn.pending.lock().map(|p| p.len()).unwrap_or(0);
    shared
        .counters
        .in_flight
        .fetch_sub(i64::try_from(left).unwrap_or(0), Ordering::AcqRel);
}

/// Pumps one direction: a reader that timestamps chunks and a writer that delivers each at
/// its time.
async fn direction(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    side: Side,
    ready_at: Instant,
    shared: &Shared,
    conn: &Conn,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Item>();
    let reader = async {
        let mut counter = MessageCounter::new(side);
        let mut buf = vec![0u8; READ_BUF];
        loop {
            match from.read(&mut buf).await {
                Ok(0) => {
                    let at = Instant::now().max(ready_at) + shared.delay();
                    let _ = tx.send(Item::Eof(at));
                    return;
                }
                Ok(n) => {
                    let at = Instant::now().max(ready_at) + shared.delay();
                    count(&mut counter, &buf[..n], side, shared, conn);
                    if tx.send(Item::Data(at, buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(_) => {
                    conn.kill.notify_one();
                    return;
                }
            }
        }
    };
    let writer = async {
        let mut sent: u64 = 0;
        let mut fault = shared.fault.subscribe();
        while let Some(item) = rx.recv().await {
            match item {
                Item::Eof(at) => {
                    tokio::time::sleep_until(at).await;
                    let _ = to.shutdown().await;
                    return;
                }
                Item::Data(at, bytes) => {
                    tokio::time::sleep_until(at).await;
                    if side == Side::Response {
                        // Hold while stalled.
                        if fault
                            .wait_for(|f| *f != Fault::StallResponses)
                            .await
                            .is_err()
                        {
                            return;
                        }
                        let current = *fault.borrow();
                        let cut = match current {
                            Fault::ResetMidResponse { after_bytes } => Some((after_bytes, true)),
                            Fault::TruncateResponse { after_bytes } => Some((after_bytes, false)),
                            _ => None,
                        };
                        if let Some((after_bytes, reset)) = cut {
                            let room = after_bytes.saturating_sub(sent);
                            if room < bytes.len() as u64 {
                                let head = &bytes[..usize::try_from(room).unwrap_or(0)];
                                let _ = to.write_all(head).await;
                                let _ = to.flush().await;
                                if reset {
                                    let _ = to.as_ref().set_zero_linger();
                                } else {
                                    let _ = to.shutdown().await;
                                }
                                conn.kill.notify_one();
                                return;
                            }
                        }
                    }
                    sent += bytes.len() as u64;
                    if to.write_all(&bytes).await.is_err() {
                        conn.kill.notify_one();
                        return;
                    }
                }
            }
        }
    };
    tokio::join!(reader, writer);
}

/// Feeds the counter and updates the shared counters for each head.
fn count(counter: &mut MessageCounter, bytes: &[u8], side: Side, shared: &Shared, conn: &Conn) {
    let counters = &shared.counters;
    counter.feed(bytes, &mut |head| match head {
        Head::Request { is_head } => {
            if let Ok(mut pending) = conn.pending.lock() {
                pending.push_back(is_head);
            }
            counters.request_started();
            true
        }
        Head::Response { .. } => {
            debug_assert_eq!(side, Side::Response);
            let was_head = conn.pending.lock().ok().and_then(|mut p| p.pop_front());
            if was_head.is_some() {
                counters.response_started();
            } else {
                // An answer without a counted request (a request this counter could not follow).
                counters.responses.fetch_add(1, Ordering::Relaxed);
            }
            was_head != Some(true)
        }
    });
}
