//! The proxy terminating TLS: the handshake's round trip, ALPN (HTTP/2 multiplexing, or
//! HTTP/1.1 when only that is offered), the counts and the records, faults. A real client
//! (reqwest with rustls) trusting a test CA from `cloud-fakes`. Every wait is bounded.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

use cloud_fakes::tls::Pki;
use futures_util::future::join_all;
use loopback_proxy::{Fault, Protocol, Proxy, ProxyConfig, ServerConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

const BOUND: Duration = Duration::from_secs(20);

/// A keep-alive HTTP/1.1 server that waits `wait` before each answer and answers with the
/// request line and its `Host` header.
async fn upstream(wait: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve(s, wait));
        }
    });
    addr
}

async fn serve(mut s: TcpStream, wait: Duration) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let lower = head.to_lowercase();
            let mut used = end + 4;
            if lower.contains("transfer-encoding: chunked") {
                match find(&buf[used..], b"0\r\n\r\n") {
                    Some(at) => used += at + 5,
                    None => break,
                }
            } else if let Some(len) = lower
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
            {
                if buf.len() < used + len {
                    break;
                }
                used += len;
            }
            buf.drain(..used);
            tokio::time::sleep(wait).await;
            let line = head.lines().next().unwrap_or_default();
            let host = lower
                .lines()
                .find_map(|l| l.strip_prefix("host:"))
                .unwrap_or_default()
                .trim();
            let body = format!("{line} host={host}");
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
                body.len()
            );
            if s.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn pki() -> Pki {
    Pki::generate(&["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap()
}

fn tls(pki: &Pki, alpn: &[&[u8]]) -> Arc<ServerConfig> {
    pki.server_config(alpn).unwrap()
}

fn client(pki: &Pki) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap()])
        .no_proxy()
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_first_request_pays_the_connect_the_handshake_and_its_own_round_trip() {
    let pki = pki();
    let p = Proxy::start_tls(
        upstream(Duration::ZERO).await,
        ProxyConfig::default().with_delay(Duration::from_millis(40)),
        tls(&pki, &[b"h2", b"http/1.1"]),
    )
    .unwrap();
    assert!(p.url().starts_with("https://127.0.0.1:"), "{}", p.url());
    assert!(p.is_tls());
    let http = client(&pki);
    timeout(BOUND, async {
        let start = Instant::now();
        let text = http
            .get(format!("{}/v1/first", p.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let first = start.elapsed();
        assert!(text.starts_with("GET /v1/first HTTP/1.1"), "{text}");
        // HTTP/2's :authority reaches the upstream as Host.
        assert!(text.ends_with(&format!("host={}", p.addr())), "{text}");
        // Connect (2d) + TLS 1.3 handshake (2d) + request (2d) = 240 ms.
        assert!(first >= Duration::from_millis(238), "{first:?}");
        let start = Instant::now();
        http.get(format!("{}/v1/second", p.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let second = start.elapsed();
        // The connection is reused: one round trip.
        assert!(second >= Duration::from_millis(78), "{second:?}");
        assert!(second < first, "{second:?} vs {first:?}");
    })
    .await
    .unwrap();
    let stats = p.stats();
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.tls_handshakes, 1);
    assert_eq!(stats.requests, 2);
    assert_eq!(stats.streams, 2, "HTTP/2 negotiated");
    assert_eq!(stats.responses, 2);
    let conns = p.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].protocol, Protocol::Http2);
    let tls_done = conns[0].tls_done.expect("handshake recorded");
    assert!(tls_done > conns[0].opened);
    let reqs = p.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].path, "/v1/first");
    assert_eq!(reqs[1].method, "GET");
    assert!(reqs[0].arrived > tls_done);
    assert!(reqs[0].answered.unwrap() >= reqs[0].arrived);
    assert!(reqs[1].arrived > reqs[0].answered.unwrap());
    assert_eq!(reqs[1].status, Some(200));
}

#[tokio::test]
async fn http2_carries_concurrent_requests_as_streams_of_one_connection() {
    let pki = pki();
    let p = Proxy::start_tls(
        upstream(Duration::from_millis(300)).await,
        ProxyConfig::default().with_delay(Duration::from_millis(5)),
        tls(&pki, &[b"h2", b"http/1.1"]),
    )
    .unwrap();
    let http = client(&pki);
    timeout(BOUND, async {
        // One request first, so the connection (and its ALPN) is known to the pool.
        http.get(format!("{}/warm", p.url())).send().await.unwrap();
        p.reset_stats();
        let reads = (0..10).map(|i| {
            let http = http.clone();
            let url = format!("{}/v1/read/{i}", p.url());
            async move { http.get(url).send().await.unwrap().text().await.unwrap() }
        });
        let texts = join_all(reads).await;
        assert_eq!(texts.len(), 10);
    })
    .await
    .unwrap();
    let stats = p.stats();
    assert_eq!(stats.connections, 0, "no new connection after the reset");
    assert_eq!(stats.requests, 10);
    assert_eq!(stats.streams, 10);
    assert_eq!(stats.max_in_flight, 10, "all ten in flight at once");
    let reqs = p.requests();
    let first_answer = reqs.iter().filter_map(|r| r.answered).min().unwrap();
    assert!(
        reqs.iter().all(|r| r.arrived < first_answer),
        "every request arrived before the first answer"
    );
    assert!(reqs.iter().all(|r| r.connection == reqs[0].connection));
    assert!(reqs.iter().all(|r| r.protocol == Protocol::Http2));
}

#[tokio::test]
async fn offering_only_http1_makes_concurrent_requests_open_connections() {
    let pki = pki();
    let p = Proxy::start_tls(
        upstream(Duration::from_millis(200)).await,
        ProxyConfig::default(),
        tls(&pki, &[b"http/1.1"]),
    )
    .unwrap();
    let http = client(&pki);
    timeout(BOUND, async {
        let reads = (0..4).map(|i| {
            let http = http.clone();
            let url = format!("{}/r/{i}", p.url());
            async move {
                let body = http
                    .post(url)
                    .body("x=1")
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                assert!(body.starts_with("POST /r/"), "{body}");
            }
        });
        join_all(reads).await;
    })
    .await
    .unwrap();
    let stats = p.stats();
    assert_eq!(stats.connections, 4);
    assert_eq!(stats.tls_handshakes, 4);
    assert_eq!(stats.requests, 4);
    assert_eq!(stats.streams, 0);
    assert!(
        p.connections()
            .iter()
            .all(|c| c.protocol == Protocol::Http1 && c.tls_done.is_some())
    );
}

#[tokio::test]
async fn records_keep_the_aws_operation_and_reset_clears_them() {
    let pki = pki();
    let p = Proxy::start_tls(
        upstream(Duration::ZERO).await,
        ProxyConfig::default(),
        tls(&pki, &[b"http/1.1"]),
    )
    .unwrap();
    let http = client(&pki);
    timeout(BOUND, async {
        http.post(format!("{}/", p.url()))
            .header("X-Amz-Target", "secretsmanager.GetSecretValue")
            .body("{}")
            .send()
            .await
            .unwrap();
    })
    .await
    .unwrap();
    let reqs = p.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].amz_target.as_deref(),
        Some("secretsmanager.GetSecretValue")
    );
    p.reset_stats();
    assert!(p.requests().is_empty());
    assert!(p.connections().is_empty());
    assert_eq!(p.stats().requests, 0);
}

#[tokio::test]
async fn faults_work_over_tls() {
    let pki = pki();
    let p = Proxy::start_tls(
        upstream(Duration::ZERO).await,
        ProxyConfig::default().with_fault(Fault::Respond { status: 503 }),
        tls(&pki, &[b"h2", b"http/1.1"]),
    )
    .unwrap();
    let http = client(&pki);
    timeout(BOUND, async {
        let answer = http.get(format!("{}/x", p.url())).send().await.unwrap();
        assert_eq!(answer.status(), 503);
        assert_eq!(answer.headers()["retry-after"], "0");
        assert!(answer.text().await.unwrap().contains("injected 503"));
        p.set_fault(Fault::Refuse);
        let refused = client(&pki).get(format!("{}/x", p.url())).send().await;
        assert!(refused.is_err());
    })
    .await
    .unwrap();
    let stats = p.stats();
    assert_eq!(stats.answered, 1);
    assert_eq!(stats.refused, 1);
    assert_eq!(stats.requests, 0, "the upstream saw nothing");
    assert_eq!(stats.connections, 0);
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_fails_the_handshake() {
    let pki = pki();
    let other = Pki::generate(&["127.0.0.1".to_owned()]).unwrap();
    let p = Proxy::start_tls(
        upstream(Duration::ZERO).await,
        ProxyConfig::default(),
        tls(&pki, &[b"h2", b"http/1.1"]),
    )
    .unwrap();
    let failed = timeout(BOUND, client(&other).get(p.url()).send())
        .await
        .unwrap();
    assert!(failed.is_err());
    let stats = p.stats();
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.tls_handshakes, 0);
    assert_eq!(stats.requests, 0);
}

#[tokio::test]
async fn plain_requests_are_recorded_too() {
    let p = Proxy::start(upstream(Duration::ZERO).await, ProxyConfig::default()).unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    timeout(BOUND, async {
        http.get(format!("{}/v1/plain?q=1", p.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    })
    .await
    .unwrap();
    let reqs = p.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/v1/plain?q=1");
    assert_eq!(reqs[0].protocol, Protocol::Http1);
    assert_eq!(reqs[0].status, Some(200));
    assert!(reqs[0].answered.is_some());
    let conns = p.connections();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].tls_done, None);
    assert_eq!(p.stats().tls_handshakes, 0);
}
