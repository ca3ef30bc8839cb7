//! Secrets Manager's HTTP client: a pooled hyper client like the SDK's default one, whose
//! connections can be opened before the first request (ADR 0005).
//!
//! A resolution opens the connections of its first wave of reads while STS answers
//! `AssumeRoleWithWebIdentity`, so the reads go out as soon as the credentials arrive
//! instead of paying a TCP connect and a TLS handshake after them. The SDK's own client
//! (aws-smithy-http-client) opens connections only for requests and keeps its connector
//! private, hence this one. It matches the default where it matters: rustls with the
//! platform's roots (`SSL_CERT_FILE`, `SSL_CERT_DIR` honoured; loaded while the first
//! connection opens, [`crate::roots`]), ALPN `h2` then `http/1.1`,
//! `TCP_NODELAY`, the resolution's connect timeout over TCP and TLS together, a 90 s idle
//! pool, no proxy, and the SDK's retry classification of connection errors.
//!
//! A connection opened ahead is only a hint: the first request to its origin takes it (or
//! waits for it to finish opening), and if it failed the request connects afresh. One
//! nobody claims is closed with the client. Opening never sends a byte of HTTP.

use crate::roots::PlatformRoots;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use http::Uri;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder, MaybeHttpsStream};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::{HashMap, VecDeque};
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use tower_service::Service;

type BoxError = Box<dyn StdError + Send + Sync>;
type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;
type Opened = Result<Stream, BoxError>;

/// How long an idle connection stays in the pool, as in the SDK's default client.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The HTTP client of one resolution's Secrets Manager clients. Cheap to clone; the pool and
/// the connections opened ahead are shared by the clones and closed with the last one.
#[derive(Clone)]
pub(crate) struct SmTransport {
    shared: Arc<Shared>,
}

struct Shared {
    client: Client<Connector, SdkBody>,
    connector: Connector,
    /// Tasks opening connections ahead; aborted when the transport goes.
    opening: Mutex<Vec<AbortHandle>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for task in self
            .opening
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

impl fmt::Debug for SmTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmTransport")
            .field("connect_timeout", &self.shared.connector.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl SmTransport {
    /// A client whose connections (TCP and TLS together) must open within `connect_timeout`.
    pub(crate) fn new(connect_timeout: Duration) -> Result<Self, rustls::Error> {
        let connector = Connector::new(connect_timeout)?;
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector.clone());
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                connector,
                opening: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Starts opening `count` connections to `target`'s origin, for the requests to come.
    /// Does nothing outside a Tokio runtime.
    pub(crate) fn open_ahead(&self, target: &Uri, count: usize) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(origin) = Origin::of(target) else {
            return;
        };
        tracing::debug!(origin = %origin, count, "opening connections ahead of the reads");
        for _ in 0..count {
            let (tx, rx) = oneshot::channel();
            let opening = self.shared.connector.open(target.clone());
            let task = runtime.spawn(async move {
                let _ = tx.send(opening.await);
            });
            self.shared
                .opening
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(task.abort_handle());
            self.shared.connector.park(origin.clone(), rx);
        }
    }
}

impl HttpClient for SmTransport {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        // The settings are the resolution's timeouts, which the connector already has: the
        // connect timeout here, the attempt timeout in the SDK's orchestrator.
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for SmTransport {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(err) => return HttpConnectorFuture::ready(Err(ConnectorError::user(err.into()))),
        };
        let answer = self.shared.client.request(request);
        HttpConnectorFuture::new(async move {
            match answer.await {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|err| ConnectorError::other(err.into(), None)),
                Err(err) => Err(connector_error(err)),
            }
        })
    }
}

/// Scheme, host and port: what a pooled connection is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    fn of(uri: &Uri) -> Option<Self> {
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let port = uri.port_u16().or(match scheme.as_str() {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        })?;
        Some(Self {
            host: uri.host()?.to_ascii_lowercase(),
            scheme,
            port,
        })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// TCP + TLS under the pool; hands out connections opened ahead before opening new ones.
#[derive(Clone)]
struct Connector {
    tls: HttpsConnector<TcpConnector>,
    connect_timeout: Duration,
    /// Per origin, in the order they started: the first request takes the oldest (the one
    /// most likely ready, and the one opened for the call that was to come first).
    parked: Arc<Mutex<HashMap<Origin, VecDeque<oneshot::Receiver<Opened>>>>>,
}

impl Connector {
    fn new(connect_timeout: Duration) -> Result<Self, rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PlatformRoots::new(provider)))
            .with_no_client_auth();
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let tls = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        Ok(Self {
            tls,
            connect_timeout,
            parked: Arc::default(),
        })
    }

    /// A new connection to `uri`'s origin: TCP and TLS within the connect timeout.
    fn open(&self, uri: Uri) -> impl Future<Output = Opened> + Send + 'static {
        let mut tls = self.tls.clone();
        let limit = self.connect_timeout;
        async move {
            match tokio::time::timeout(limit, tls.call(uri)).await {
                Ok(opened) => opened,
                Err(_) => Err(Box::new(ConnectTimedOut(limit)) as BoxError),
            }
        }
    }

    fn park(&self, origin: Origin, opening: oneshot::Receiver<Opened>) {
        self.parked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(origin)
            .or_default()
            .push_back(opening);
    }

    fn take_parked(&self, uri: &Uri) -> Option<oneshot::Receiver<Opened>> {
        let origin = Origin::of(uri)?;
        let mut parked = self.parked.lock().unwrap_or_else(PoisonError::into_inner);
        let waiting = parked.get_mut(&origin)?;
        let taken = waiting.pop_front();
        if waiting.is_empty() {
            parked.remove(&origin);
        }
        taken
    }
}

impl Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Opened> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let parked = self.take_parked(&uri);
        let fresh = self.open(uri);
        Box::pin(async move {
            if let Some(parked) = parked {
                match parked.await {
                    Ok(Ok(stream)) => return Ok(stream),
                    Ok(Err(err)) => {
                        tracing::debug!(error = %err, "a connection opened ahead failed; connecting again");
                    }
                    Err(_) => {}
                }
            }
            fresh.await
        })
    }
}

/// TCP and TLS did not complete within the connect timeout.
#[derive(Debug)]
struct ConnectTimedOut(Duration);

impl fmt::Display for ConnectTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the connection did not open within {:?}", self.0)
    }
}

impl StdError for ConnectTimedOut {}

/// The SDK's classification of a failed exchange, so its retries behave as with the default
/// client: timeouts and connection, I/O and closed-connection errors are transient; a
/// request the client refused is the caller's.
fn connector_error(err: hyper_util::client::legacy::Error) -> ConnectorError {
    let timed_out = find::<ConnectTimedOut>(&err).is_some();
    let hyper = find::<hyper::Error>(&err);
    if timed_out || hyper.is_some_and(hyper::Error::is_timeout) {
        return ConnectorError::timeout(err.into());
    }
    if hyper.is_some_and(hyper::Error::is_user) {
        return ConnectorError::user(err.into());
    }
    let transient = err.is_connect()
        || find::<std::io::Error>(&err).is_some()
        || hyper.is_some_and(|h| h.is_closed() || h.is_canceled() || h.is_incomplete_message());
    if transient {
        return ConnectorError::io(err.into());
    }
    ConnectorError::other(err.into(), None)
}

fn find<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    /// An HTTP/1.1 server answering `200 ok` to every request; reports each accepted
    /// connection, and each request with the number of its connection.
    async fn server() -> (
        Uri,
        mpsc::UnboundedReceiver<&'static str>,
        mpsc::UnboundedReceiver<usize>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri: Uri = format!("http://{}/", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let (accepted, accepts) = mpsc::unbounded_channel();
        let (served, requests) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            for n in 0.. {
                let (mut socket, _) = listener.accept().await.unwrap();
                accepted.send("accepted").unwrap();
                let served = served.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    while let Ok(read) = socket.read(&mut buf).await {
                        if read == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..read]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let _ = served.send(n);
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if socket.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (uri, accepts, requests)
    }

    fn get(uri: &Uri) -> HttpRequest {
        let request = http::Request::builder()
            .uri(uri.clone())
            .body(SdkBody::empty())
            .unwrap();
        HttpRequest::try_from(request).unwrap()
    }

    #[tokio::test]
    async fn a_request_takes_the_connection_opened_ahead() {
        let (uri, mut accepts, mut requests) = server().await;
        let transport = SmTransport::new(Duration::from_secs(5)).unwrap();
        transport.open_ahead(&uri, 2);
        // Both connections open before any request is made.
        accepts.recv().await.unwrap();
        accepts.recv().await.unwrap();
        assert!(requests.try_recv().is_err(), "opening sends no HTTP");

        let (a, b) = tokio::join!(transport.call(get(&uri)), transport.call(get(&uri)));
        assert_eq!(a.unwrap().status().as_u16(), 200);
        assert_eq!(b.unwrap().status().as_u16(), 200);
        let mut on = vec![
            requests.recv().await.unwrap(),
            requests.recv().await.unwrap(),
        ];
        on.sort_unstable();
        assert_eq!(on, [0, 1], "each request on a connection opened ahead");
        assert!(
            accepts.try_recv().is_err(),
            "no connection opened for the requests"
        );
    }

    #[tokio::test]
    async fn the_first_request_takes_the_connection_opened_first() {
        // STS's connection is opened before the reads' and its call comes first: with one
        // origin for both (LocalStack), the call must not take a read's younger connection.
        let (uri, mut accepts, mut requests) = server().await;
        let transport = SmTransport::new(Duration::from_secs(5)).unwrap();
        transport.open_ahead(&uri, 1);
        accepts.recv().await.unwrap();
        transport.open_ahead(&uri, 1);
        accepts.recv().await.unwrap();
        let answer = transport.call(get(&uri)).await.unwrap();
        assert_eq!(answer.status().as_u16(), 200);
        assert_eq!(
            requests.recv().await,
            Some(0),
            "on the connection opened first"
        );
    }

    #[tokio::test]
    async fn a_server_the_platform_does_not_trust_is_refused_before_any_request() {
        // The roots load on a thread while the connection opens; a certificate from a CA
        // outside them must still fail the handshake, so no request can be sent.
        let pki = cloud_fakes::tls::Pki::generate(&["127.0.0.1".to_owned()]).unwrap();
        let acceptor = pki.acceptor().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target: Uri = format!("https://{}/", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let (handshakes, mut completed) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = handshakes.send(acceptor.accept(tcp).await.is_ok());
            }
        });
        let transport = SmTransport::new(Duration::from_secs(5)).unwrap();
        transport.open_ahead(&target, 1);
        let refused = transport.call(get(&target)).await.unwrap_err();
        assert!(refused.is_io(), "{refused:?}");
        assert!(
            format!("{refused:?}").contains("UnknownIssuer"),
            "{refused:?}"
        );
        assert_eq!(completed.recv().await, Some(false), "the handshake failed");
    }

    #[tokio::test]
    async fn connections_opened_ahead_serve_only_their_origin() {
        let (one, mut one_accepts, _one_requests) = server().await;
        let (two, mut two_accepts, mut two_requests) = server().await;
        let transport = SmTransport::new(Duration::from_secs(5)).unwrap();
        transport.open_ahead(&one, 1);
        one_accepts.recv().await.unwrap();
        let answer = transport.call(get(&two)).await.unwrap();
        assert_eq!(answer.status().as_u16(), 200);
        two_accepts.recv().await.unwrap();
        assert_eq!(two_requests.recv().await, Some(0));
    }

    #[tokio::test]
    async fn a_failed_opening_leaves_the_request_to_connect_afresh() {
        // Nothing listens yet on the port of a listener just closed: the opening is refused.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let target: Uri = format!("http://{addr}/").parse().unwrap();
        let transport = SmTransport::new(Duration::from_secs(5)).unwrap();
        transport.open_ahead(&target, 1);
        let opening = transport.shared.opening.lock().unwrap()[0].clone();
        while !opening.is_finished() {
            tokio::task::yield_now().await;
        }
        // Now a server listens there; the request connects to it afresh.
        let listener = TcpListener::bind(addr).await.unwrap();
        let serve = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await.unwrap();
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            socket
        });
        let answer = transport.call(get(&target)).await.unwrap();
        assert_eq!(answer.status().as_u16(), 200);
        drop(serve.await.unwrap());
    }
}
