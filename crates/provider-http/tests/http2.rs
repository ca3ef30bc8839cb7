//! HTTP/2 negotiated with ALPN: once the server has answered over HTTP/2, an [`Endpoint`]
//! sends a whole wave of requests at once on one connection (the per-server bound limits
//! streams, not connections); over HTTP/1.1 the bound stays. A local TLS server (hyper)
//! counts connections and requests in flight.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use provider_http::{ClientSettings, Endpoint};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use secrets_core::{RequestKind, RequestRole, ResolveContext};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

const READ: RequestKind = RequestKind::new("test_read", RequestRole::Read);
const LOGIN: RequestKind = RequestKind::new("test_login", RequestRole::Login);
/// Reads of one wave.
const WAVE: usize = 10;
/// The bound per server (`ctx.max_concurrency`), below the wave.
const BOUND: usize = 2;

#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A CA (PEM) and a TLS server for `localhost` offering `alpn`. With `gate`, each `/read`
/// answers once `gate` reads have been in flight together (or after 10 s, so that a failure is an
/// assertion and not a hang).
async fn serve(alpn: &[&[u8]], gate: Option<usize>) -> (String, SocketAddr, Arc<Seen>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let count = Arc::new(watch::channel(0usize).0);
    let s = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            s.connections.fetch_add(1, Ordering::SeqCst);
            let (acceptor, s, count) = (acceptor.clone(), Arc::clone(&s), Arc::clone(&count));
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let service = hyper::service::service_fn(move |req| {
                    let (s, count) = (Arc::clone(&s), Arc::clone(&count));
                    async move {
                        if req.uri().path() == "/read" {
                            let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                            let max = s.max_in_flight.fetch_max(now, Ordering::SeqCst).max(now);
                            // The most seen together: released reads never close the gate.
                            count.send_replace(max);
                            if let Some(gate) = gate {
                                let mut rx = count.subscribe();
                                let _ = tokio::time::timeout(
                                    Duration::from_secs(10),
                                    rx.wait_for(|n| *n >= gate),
                                )
                                .await;
                            }
                            s.in_flight.fetch_sub(1, Ordering::SeqCst);
                        }
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"{}"),
                        )))
                    }
                });
                let io = TokioIo::new(tls);
                let _ = if h2 {
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await
                } else {
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await
                };
            });
        }
    });
    (ca_cert.pem(), addr, seen)
}

fn endpoint(ca_pem: &str, ctx: &ResolveContext) -> Endpoint {
    let mut settings = ClientSettings::new("provider-http-test");
    settings.ca_certs = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes()).unwrap();
    Endpoint::new(settings.build(ctx, "test server").unwrap(), ctx)
}

/// One "login", then a wave of concurrent reads.
async fn login_then_wave(endpoint: &Endpoint, base: &str) {
    let login = endpoint.http().post(format!("{base}/login"));
    assert!(endpoint.send(LOGIN, login).await.unwrap().is_success());
    let reads = (0..WAVE).map(|_| endpoint.send(READ, endpoint.http().get(format!("{base}/read"))));
    for answer in futures_util::future::join_all(reads).await {
        assert!(answer.unwrap().is_success());
    }
}

fn ctx() -> ResolveContext {
    ResolveContext {
        max_concurrency: BOUND,
        request_timeout: Duration::from_secs(30),
        ..ResolveContext::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_a_wave_of_reads_is_in_flight_at_once_on_one_connection() {
    let (ca, addr, seen) = serve(&[b"h2", b"http/1.1"], Some(WAVE)).await;
    let ctx = ctx();
    let endpoint = endpoint(&ca, &ctx);
    assert!(!endpoint.is_multiplexed());
    login_then_wave(&endpoint, &format!("https://localhost:{}", addr.port())).await;
    assert!(endpoint.is_multiplexed(), "HTTP/2 was negotiated");
    assert_eq!(
        seen.max_in_flight.load(Ordering::SeqCst),
        WAVE,
        "every read of the wave in flight together, above the bound of {BOUND}"
    );
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1, "one connection");
    assert_eq!(ctx.requests.get(READ), WAVE as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http1_the_bound_limits_requests_in_flight() {
    // The first read waits until a second is in flight with it: two connections at once,
    // whatever the scheduling.
    let (ca, addr, seen) = serve(&[b"http/1.1"], Some(BOUND)).await;
    let ctx = ctx();
    let endpoint = endpoint(&ca, &ctx);
    login_then_wave(&endpoint, &format!("https://localhost:{}", addr.port())).await;
    assert!(!endpoint.is_multiplexed(), "HTTP/1.1 only");
    assert_eq!(seen.max_in_flight.load(Ordering::SeqCst), BOUND);
    // (A connection returns to the pool a moment after its answer is read, so a request
    // that got the freed permit first may open another: no exact connection count here.)
    assert!(seen.connections.load(Ordering::SeqCst) > 1);
    assert_eq!(endpoint.available_permits(), BOUND);
}
