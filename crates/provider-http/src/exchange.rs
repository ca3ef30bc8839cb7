//! One HTTP attempt against one server: counted, bounded per server, its answer capped.
//!
//! The bound per server is `ctx.max_concurrency` requests in flight while the server speaks
//! HTTP/1.1, where each request in flight holds a connection of its own. Once the server has
//! answered over HTTP/2 (negotiated with ALPN), requests are streams multiplexed on one
//! connection and the bound widens to [`MAX_STREAMS`], so that a wave of reads goes out at
//! once instead of waiting for each other; the server's own `SETTINGS_MAX_CONCURRENT_STREAMS`
//! still applies (hyper queues streams above it on the connection).

use crate::transport::Transport;
use reqwest::header::HeaderMap;
use secrets_core::{RequestCounter, RequestKind, ResolveContext};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// The longest answer read. Secrets are small; a larger answer is not the service (or not a
/// secret), and reading it whole would let a server exhaust memory. Applies to answers with
/// and without `Content-Length`.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Requests in flight per server at most once it speaks HTTP/2 (or `ctx.max_concurrency`,
/// when larger): the smallest `SETTINGS_MAX_CONCURRENT_STREAMS` RFC 9113 recommends servers
/// allow.
pub const MAX_STREAMS: usize = 100;

/// An HTTP answer: status, headers and body (zeroized on drop).
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Zeroizing<Vec<u8>>,
    /// `Retry-After` in seconds, when the server sent one.
    pub retry_after: Option<Duration>,
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("body", &format_args!("{} bytes", self.body.len()))
            .finish_non_exhaustive()
    }
}

impl Answer {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One server of one resolution: its client, its concurrency bound and the counter.
pub struct Endpoint {
    http: reqwest::Client,
    permits: Semaphore,
    /// The bound while the server speaks HTTP/1.1.
    bound: usize,
    /// Whether the server has answered over HTTP/2 (and the bound widened).
    multiplexed: AtomicBool,
    timeout: Duration,
    requests: RequestCounter,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("available_permits", &self.permits.available_permits())
            .field("multiplexed", &self.is_multiplexed())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An endpoint sending through `http`, at most `ctx.max_concurrency` requests at once
    /// over HTTP/1.1 and [`MAX_STREAMS`] once the server answers over HTTP/2.
    pub fn new(http: reqwest::Client, ctx: &ResolveContext) -> Self {
        let bound = ctx.max_concurrency.max(1);
        Self {
            http,
            permits: Semaphore::new(bound),
            bound,
            multiplexed: AtomicBool::new(false),
            timeout: ctx.request_timeout,
            requests: ctx.requests.clone(),
        }
    }

    /// The client, to build requests with.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Requests in flight allowed right now.
    pub fn available_permits(&self) -> usize {
        self.permits.available_permits()
    }

    /// Whether the server has answered over HTTP/2, so that requests share a connection.
    pub fn is_multiplexed(&self) -> bool {
        self.multiplexed.load(Ordering::Acquire)
    }

    /// Widens the bound to [`MAX_STREAMS`] the first time the server answers over HTTP/2.
    fn saw_version(&self, version: reqwest::Version) {
        if version >= reqwest::Version::HTTP_2 && !self.multiplexed.swap(true, Ordering::AcqRel) {
            let more = MAX_STREAMS.saturating_sub(self.bound);
            tracing::debug!(
                streams = self.bound + more,
                "the server speaks HTTP/2: requests share one connection"
            );
            self.permits.add_permits(more);
        }
    }

    /// One attempt: takes a permit (held while the request runs, not while a caller backs
    /// off), counts it as `kind`, sends, reads the body up to [`MAX_ANSWER_BYTES`]. The
    /// first answer over HTTP/2 widens the bound (see the module documentation).
    pub async fn send(
        &self,
        kind: RequestKind,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, Transport> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Transport::Connect("the endpoint is closed".into()))?;
        self.requests.record(kind);
        let mut response = request
            .send()
            .await
            .map_err(|e| Transport::from_reqwest(&e, self.timeout))?;
        self.saw_version(response.version());
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(Transport::TooLarge(MAX_ANSWER_BYTES));
        }
        let headers = std::mem::take(response.headers_mut());
        let mut body = Zeroizing::new(Vec::new());
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Transport::from_reqwest(&e, self.timeout))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(Transport::TooLarge(MAX_ANSWER_BYTES));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            headers,
            body,
            retry_after,
        })
    }
}
