//! A loopback TCP proxy for benchmarks and reliability tests: latency, TLS termination,
//! connection and request counting and faults, without `tc netem`.
//!
//! [`Proxy::start`] listens on `127.0.0.1:0` and forwards every connection to one upstream.
//! With a one-way delay `d`:
//!
//! - a new connection costs one round trip: bytes the client sends before `accepted + 2d`
//!   are treated as sent at `accepted + 2d` (the TCP handshake the client did not wait for);
//! - every byte is delivered `d` after the proxy read it, in each direction, in order. Each
//!   direction is a queue of timestamped chunks, so a chunk read while another one waits is
//!   not delayed further: a stream is delayed, not serialised;
//! - a half-close (FIN) is delayed like data;
//! - deliveries are timed by a clock thread of the proxy's own, within tens of microseconds:
//!   tokio's timer rounds to whole milliseconds, which made each hop ~1.3 ms late.
//!
//! It counts connections, HTTP/1.1 request heads (keep-alive aware: heads end at
//! `\r\n\r\n`, bodies are skipped by `Content-Length` or chunked framing), final response heads,
//! and the most requests in flight at once (request heads read minus response heads read).
//!
//! [`Proxy::start_tls`] terminates TLS instead, as a deployed server would: the client's
//! bytes still cross the delayed link first, so the TLS 1.3 handshake costs its round trip
//! on top of the connect's (a first request pays 3 round trips: TCP, TLS, the request), and
//! the server's end speaks HTTP/2 or HTTP/1.1, as ALPN chose from what the server
//! configuration offers. Each request is forwarded to the plain upstream over pooled
//! HTTP/1.1 connections. It counts TLS handshakes and HTTP/2 streams too. Faults act on the
//! (encrypted) bytes going to the client, so a cut answer is a TLS error there.
//!
//! Every connection and request is also recorded with its instants (opened, TLS done;
//! arrived, answered: [`Proxy::connections`], [`Proxy::requests`]) so tests can assert
//! ordering, e.g. that a connection was opened before another request was answered.
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

mod clock;
mod http;
mod link;
mod log;
mod tls;

pub use log::{ConnectionRecord, Protocol, ProxyStats, RequestRecord};
/// The rustls server configuration [`Proxy::start_tls`] takes (rustls as re-exported by
/// `tokio-rustls`).
pub use tokio_rustls::rustls::ServerConfig;

use link::READ_BUF;
use log::Log;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener as StdListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

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

/// State shared by the handle and the proxy's thread.
#[derive(Debug)]
struct Shared {
    log: Log,
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
    tls: bool,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("upstream", &self.upstream)
            .field("tls", &self.tls)
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
        Self::start_inner(upstream, config, None)
    }

    /// Listens on `127.0.0.1:0`, terminates TLS with `tls` (its certificate and its ALPN
    /// offer, e.g. `h2` and `http/1.1`) and forwards each request to the plain HTTP upstream
    /// with `config`. Clients connect to [`Self::url`] (`https://`), trusting the CA that
    /// signed the certificate.
    ///
    /// # Errors
    ///
    /// As [`Self::start`].
    pub fn start_tls(
        upstream: SocketAddr,
        config: ProxyConfig,
        tls: Arc<ServerConfig>,
    ) -> io::Result<Proxy> {
        Self::start_inner(upstream, config, Some(tls))
    }

    fn start_inner(
        upstream: SocketAddr,
        config: ProxyConfig,
        tls: Option<Arc<ServerConfig>>,
    ) -> io::Result<Proxy> {
        let is_tls = tls.is_some();
        let listener = StdListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (fault, _) = watch::channel(config.fault);
        let shared = Arc::new(Shared {
            log: Log::default(),
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
                        () = accept_loop(listener, upstream, state, tls) => {}
                        _ = stop => {}
                    }
                });
                // Dropping the runtime here cancels every connection task, closing sockets.
            })?;
        Ok(Proxy {
            addr,
            upstream,
            tls: is_tls,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>` (`https://` for [`Self::start_tls`]), the base URL for an
    /// HTTP client.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Whether the proxy terminates TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The upstream address.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// The counters since start or the last [`Self::reset_stats`].
    pub fn stats(&self) -> ProxyStats {
        self.shared.log.stats()
    }

    /// The connections forwarded since start or the last [`Self::reset_stats`], in the
    /// order they were opened.
    pub fn connections(&self) -> Vec<ConnectionRecord> {
        self.shared.log.connections()
    }

    /// The requests seen since start or the last [`Self::reset_stats`], in the order they
    /// arrived (answers noted as they come).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.requests()
    }

    /// Sets every counter to zero and clears the records; the maximum in flight restarts
    /// from the requests in flight now (zero when the clients are idle).
    pub fn reset_stats(&self) {
        self.shared.log.reset();
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

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    tls: Option<Arc<ServerConfig>>,
) {
    let forward = tls.as_ref().map(|_| tls::upstream_client());
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // EMFILE and the like: back off briefly rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let fault = shared.fault();
        if fault == Fault::Refuse {
            shared.log.refused.fetch_add(1, Ordering::Relaxed);
            let _ = client.set_zero_linger();
            drop(client);
            continue;
        }
        let answer_with = match fault {
            Fault::Respond { status } => {
                shared.log.answered.fetch_add(1, Ordering::Relaxed);
                Some(status)
            }
            _ => None,
        };
        match (&tls, &forward) {
            (Some(tls), Some(forward)) => {
                tokio::spawn(tls::terminated(
                    client,
                    upstream,
                    Arc::clone(&shared),
                    Arc::clone(tls),
                    forward.clone(),
                    answer_with,
                ));
            }
            _ => match answer_with {
                Some(status) => {
                    tokio::spawn(answer(client, status));
                }
                None => {
                    tokio::spawn(link::plain(client, upstream, Arc::clone(&shared)));
                }
            },
        }
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
