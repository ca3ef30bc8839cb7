//! TLS termination: the client's bytes cross the simulated link (so the TLS handshake pays
//! its round trip like any other bytes), then a rustls server and a hyper HTTP/1.1 or HTTP/2
//! server (as ALPN chose) on the proxy's side; each request is forwarded to the plain
//! upstream over pooled HTTP/1.1 connections, and counted and recorded on the way.

use crate::Shared;
use crate::http::Side;
use crate::link::{Conn, READ_BUF, direction};
use crate::log::{Protocol, RequestHead, RequestSlot};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HOST, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::DuplexStream;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

/// `golang.org/x/net/http2`'s default `MaxConcurrentStreams`, which Go servers advertise.
const GO_MAX_STREAMS: u32 = 250;

/// The pooled HTTP/1.1 client every TLS connection of one proxy forwards through.
pub(crate) type Upstream = Client<HttpConnector, Incoming>;

/// A body the proxy answers with: the upstream's, or its own.
type Body = BoxBody<Bytes, hyper::Error>;

/// The upstream client for `upstream`.
pub(crate) fn upstream_client() -> Upstream {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// What each request of one connection needs.
#[derive(Debug, Clone)]
struct Route {
    shared: Arc<Shared>,
    client: Upstream,
    upstream: SocketAddr,
    connection: u64,
    protocol: Protocol,
    /// Answer every request with this status, never reaching the upstream.
    answer_with: Option<u16>,
}

/// A TLS connection: link, handshake, HTTP server, forwarding. `answer_with`: the
/// connection was accepted under [`crate::Fault::Respond`].
pub(crate) async fn terminated(
    mut client: TcpStream,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    tls: Arc<ServerConfig>,
    forward: Upstream,
    answer_with: Option<u16>,
) {
    let opened = std::time::Instant::now();
    let accepted = Instant::from_std(opened);
    let id = match answer_with {
        None => shared.log.connection_opened(opened, Protocol::Http1),
        Some(_) => u64::MAX,
    };
    let _ = client.set_nodelay(true);
    let (near, far) = tokio::io::duplex(READ_BUF);
    let (near_read, near_write) = tokio::io::split(near);
    let (client_read, client_write) = client.split();
    let conn = Conn::new(id);
    let ready_at = accepted + shared.delay() * 2;
    let up = direction(
        client_read,
        near_write,
        Side::Request,
        ready_at,
        false,
        &shared,
        &conn,
    );
    let down = direction(
        near_read,
        client_write,
        Side::Response,
        accepted,
        false,
        &shared,
        &conn,
    );
    let route = Route {
        shared: Arc::clone(&shared),
        client: forward,
        upstream,
        connection: id,
        protocol: Protocol::Http1,
        answer_with,
    };
    let serve = serve(far, tls, route);
    tokio::select! {
        _ = async { tokio::join!(up, down, serve) } => {}
        () = conn.kill.notified() => {}
    }
}

/// The server's end: the TLS handshake, then HTTP/2 or HTTP/1.1 until the client closes.
async fn serve(io: DuplexStream, tls: Arc<ServerConfig>, mut route: Route) {
    let Ok(stream) = TlsAcceptor::from(tls).accept(io).await else {
        return;
    };
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    route.protocol = if h2 { Protocol::Http2 } else { Protocol::Http1 };
    if route.answer_with.is_none() {
        route.shared.log.tls_done(route.connection, route.protocol);
    }
    let io = TokioIo::new(stream);
    let service = hyper::service::service_fn(move |req| forward(req, route.clone()));
    if h2 {
        // Go's HTTP/2 server (OpenBao's) admits 250 concurrent streams; hyper's default is 200.
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .max_concurrent_streams(GO_MAX_STREAMS)
            .serve_connection(io, service)
            .await;
    } else {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .await;
    }
}

/// Keeps the in-flight count right when a request is dropped before its answer (the client
/// reset the stream or closed the connection).
struct InFlight<'a> {
    route: &'a Route,
    slot: Option<RequestSlot>,
    open: bool,
}

impl InFlight<'_> {
    fn answered(&mut self, status: u16) {
        if self.open {
            self.open = false;
            self.route
                .shared
                .log
                .response_started(self.slot, status, true);
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.open {
            self.route.shared.log.abandoned(1);
        }
    }
}

/// One request: recorded, forwarded, its answer's head recorded.
async fn forward(req: Request<Incoming>, route: Route) -> Result<Response<Body>, Infallible> {
    if let Some(status) = route.answer_with {
        return Ok(injected(status, route.protocol));
    }
    let head = RequestHead {
        method: req.method().as_str().to_owned(),
        path: req
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        amz_target: req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let slot = route.shared.log.request_started(
        route.connection,
        route.protocol,
        head,
        std::time::Instant::now(),
    );
    let mut flight = InFlight {
        route: &route,
        slot,
        open: true,
    };
    let (mut parts, body) = req.into_parts();
    // HTTP/2 carries the host in `:authority`; HTTP/1.1 needs it as `Host` (SigV4 signed it).
    if !parts.headers.contains_key(HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(value) = HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(HOST, value);
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let Ok(uri) = Uri::builder()
        .scheme("http")
        .authority(route.upstream.to_string())
        .path_and_query(path)
        .build()
    else {
        flight.answered(400);
        return Ok(own_answer(StatusCode::BAD_REQUEST, route.protocol));
    };
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    match route.client.request(Request::from_parts(parts, body)).await {
        Ok(response) => {
            flight.answered(response.status().as_u16());
            let (mut parts, body) = response.into_parts();
            if route.protocol == Protocol::Http2 {
                parts.version = Version::HTTP_2;
            }
            Ok(Response::from_parts(parts, body.boxed()))
        }
        Err(_) => {
            flight.answered(502);
            Ok(own_answer(StatusCode::BAD_GATEWAY, route.protocol))
        }
    }
}

fn full(text: String) -> Body {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed()
}

/// The proxy's own answer when the upstream could not be reached.
fn own_answer(status: StatusCode, protocol: Protocol) -> Response<Body> {
    let mut response = Response::new(full(format!(
        "{{\"errors\":[\"loopback-proxy: upstream failed with {}\"]}}",
        status.as_u16()
    )));
    *response.status_mut() = status;
    if protocol == Protocol::Http2 {
        *response.version_mut() = Version::HTTP_2;
    }
    response
}

/// What [`crate::Fault::Respond`] answers over TLS: as over plain HTTP, from the proxy.
fn injected(status: u16, protocol: Protocol) -> Response<Body> {
    let body = format!("{{\"errors\":[\"injected {status} from loopback-proxy\"]}}");
    let mut response = Response::new(full(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("retry-after", HeaderValue::from_static("0"));
    if protocol == Protocol::Http1 {
        headers.insert("connection", HeaderValue::from_static("close"));
    } else {
        *response.version_mut() = Version::HTTP_2;
    }
    response
}
