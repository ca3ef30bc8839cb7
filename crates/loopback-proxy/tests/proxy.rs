//! The proxy against local servers: delays, counting, faults, shutdown. Every wait is bounded.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

use loopback_proxy::{Fault, Proxy, ProxyConfig};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

const BOUND: Duration = Duration::from_secs(10);

/// An echo server on loopback.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A minimal HTTP/1.1 keep-alive server: reads each request (Content-Length or chunked
/// bodies), answers `200` with a body of `body_len` bytes.
async fn http_server(body_len: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve(s, body_len));
        }
    });
    addr
}

async fn serve(mut s: TcpStream, body_len: usize) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Consume complete requests from `buf`.
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let mut used = end + 4;
            if head.contains("transfer-encoding: chunked") {
                match find(&buf[used..], b"0\r\n\r\n") {
                    Some(at) => used += at + 5,
                    None => break,
                }
            } else if let Some(len) = head
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
            let body = "x".repeat(body_len);
            let response = format!("HTTP/1.1 200 OK\r\nContent-Length: {body_len}\r\n\r\n{body}");
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

/// Reads one response with a Content-Length body.
async fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return String::from_utf8_lossy(&buf[..end + 4 + len]).into_owned();
            }
        }
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn proxy(upstream: SocketAddr, delay_ms: u64) -> Proxy {
    Proxy::start(
        upstream,
        ProxyConfig::default().with_delay(Duration::from_millis(delay_ms)),
    )
    .unwrap()
}

#[tokio::test]
async fn a_round_trip_costs_2d_and_a_new_connection_2d_more() {
    let p = proxy(echo_server().await, 40);
    assert!(p.url().starts_with("http://127.0.0.1:"));
    timeout(BOUND, async {
        let start = Instant::now();
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        s.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        s.read_exact(&mut got).await.unwrap();
        let first = start.elapsed();
        assert_eq!(&got, b"ping");
        // Connect (2d) + request (d) + response (d) = 160 ms.
        assert!(first >= Duration::from_millis(158), "{first:?}");
        assert!(first < Duration::from_millis(400), "{first:?}");

        let start = Instant::now();
        s.write_all(b"pong").await.unwrap();
        s.read_exact(&mut got).await.unwrap();
        let second = start.elapsed();
        assert_eq!(&got, b"pong");
        assert!(second >= Duration::from_millis(78), "{second:?}");
        assert!(second < Duration::from_millis(300), "{second:?}");
    })
    .await
    .unwrap();
    assert_eq!(p.stats().connections, 1);
}

#[tokio::test]
async fn a_stream_is_delayed_not_serialised_and_keeps_its_order() {
    let p = proxy(echo_server().await, 100);
    timeout(BOUND, async {
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        // Warm the connection (pays the connect cost).
        s.write_all(b"0").await.unwrap();
        let mut one = [0u8; 1];
        s.read_exact(&mut one).await.unwrap();

        let start = Instant::now();
        for b in b"abcde" {
            s.write_all(&[*b]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut got = [0u8; 5];
        s.read_exact(&mut got).await.unwrap();
        let elapsed = start.elapsed();
        assert_eq!(&got, b"abcde");
        // The last byte was written at ~80 ms and comes back 200 ms later; a proxy that
        // slept per chunk would take 5 × 200 ms.
        assert!(elapsed >= Duration::from_millis(270), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(600), "{elapsed:?}");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn counts_keep_alive_requests_and_pipelined_ones_in_flight() {
    let p = proxy(http_server(3).await, 0);
    timeout(BOUND, async {
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        s.write_all(b"PUT /v1/auth/jwt/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            .await
            .unwrap();
        assert!(read_response(&mut s).await.ends_with("xxx"));
        s.write_all(b"GET /v1/a HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        read_response(&mut s).await;
        let stats = p.stats();
        assert_eq!((stats.connections, stats.requests), (1, 2));
        assert_eq!(stats.max_in_flight, 1);

        p.reset_stats();
        // Three pipelined requests in one write, one of them chunked.
        s.write_all(
            b"GET /v1/b HTTP/1.1\r\n\r\n\
POST /v1/c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n\
GET /v1/d HTTP/1.1\r\n\r\n",
        )
        .await
        .unwrap();
        // Read the three answers whole: they may arrive in one segment.
        let one = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nxxx".len();
        let mut three = vec![0u8; 3 * one];
        s.read_exact(&mut three).await.unwrap();
        let stats = p.stats();
        assert_eq!(stats.connections, 0, "no new connection since the reset");
        assert_eq!(stats.requests, 3);
        assert_eq!(stats.responses, 3);
        assert_eq!(stats.max_in_flight, 3);
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn refuse_closes_new_connections_at_once() {
    let p = Proxy::start(
        http_server(1).await,
        ProxyConfig::default().with_fault(Fault::Refuse),
    )
    .unwrap();
    timeout(BOUND, async {
        // The reset may even beat the end of `connect`.
        if let Ok(mut s) = TcpStream::connect(p.addr()).await {
            let _ = s.write_all(b"GET / HTTP/1.1\r\n\r\n").await;
            let mut buf = [0u8; 16];
            let read = s.read(&mut buf).await;
            assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        }
        assert_eq!(p.stats().refused, 1);
        assert_eq!(p.stats().connections, 0);

        p.set_fault(Fault::None);
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(read_response(&mut s).await.ends_with('x'));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn reset_mid_response_cuts_the_answer() {
    let p = Proxy::start(
        http_server(1000).await,
        ProxyConfig::default().with_fault(Fault::ResetMidResponse { after_bytes: 20 }),
    )
    .unwrap();
    assert_eq!(p.fault(), Fault::ResetMidResponse { after_bytes: 20 });
    timeout(BOUND, async {
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let error = loop {
            match s.read(&mut buf).await {
                Ok(0) => break None,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break Some(e.kind()),
            }
        };
        assert!(got.len() <= 20, "{} bytes", got.len());
        assert_eq!(
            error,
            Some(std::io::ErrorKind::ConnectionReset),
            "a reset, not a clean close"
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn truncate_mid_response_closes_cleanly() {
    let p = Proxy::start(
        http_server(1000).await,
        ProxyConfig::default().with_fault(Fault::TruncateResponse { after_bytes: 30 }),
    )
    .unwrap();
    timeout(BOUND, async {
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got)
            .await
            .expect("a clean close, not a reset");
        assert_eq!(got.len(), 30);
        assert!(got.starts_with(b"HTTP/1.1 200"));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn respond_answers_new_connections_without_the_upstream() {
    let p = Proxy::start(
        http_server(5).await,
        ProxyConfig::default().with_fault(Fault::Respond { status: 503 }),
    )
    .unwrap();
    timeout(BOUND, async {
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).await.unwrap();
        assert!(got.starts_with("HTTP/1.1 503 "), "{got}");
        assert!(got.contains("Retry-After: 0\r\n"), "{got}");
        assert!(
            got.ends_with(r#"{"errors":["injected 503 from loopback-proxy"]}"#),
            "{got}"
        );
        let stats = p.stats();
        assert_eq!(
            (stats.answered, stats.connections, stats.requests),
            (1, 0, 0)
        );
        p.set_fault(Fault::None);
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(read_response(&mut s).await.ends_with("xxxxx"));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn stalled_responses_resume_when_the_fault_is_cleared() {
    let p = Proxy::start(
        http_server(2).await,
        ProxyConfig::default().with_fault(Fault::StallResponses),
    )
    .unwrap();
    timeout(BOUND, async {
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let waited = timeout(Duration::from_millis(300), s.read(&mut buf)).await;
        assert!(waited.is_err(), "nothing arrives while stalled");
        assert_eq!(p.stats().requests, 1, "the request reached the upstream");
        p.set_fault(Fault::None);
        assert!(read_response(&mut s).await.ends_with("xx"));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn drop_stops_the_listener_and_closes_connections() {
    let p = proxy(echo_server().await, 0);
    let addr = p.addr();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    timeout(BOUND, s.read_exact(&mut one))
        .await
        .unwrap()
        .unwrap();
    drop(p);
    let read = timeout(BOUND, s.read(&mut one)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(TcpStream::connect(addr).await.is_err());
}

#[test]
fn set_delay_and_debug() {
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p = Proxy::start(upstream.local_addr().unwrap(), ProxyConfig::default()).unwrap();
    p.set_delay(Duration::from_millis(5));
    assert_eq!(p.delay(), Duration::from_millis(5));
    assert_eq!(p.upstream(), upstream.local_addr().unwrap());
    let printed = format!("{p:?}");
    assert!(printed.contains("5ms"), "{printed}");
}
