//! An HTTP `CONNECT` proxy in front of the Azure listener: `CONNECT login.microsoftonline.com:443`
//! and `CONNECT <vault>.vault.azure.net:443` are tunnelled to the fake's TLS listener, anything
//! else is refused.
//!
//! This is how an unmodified client reaches the Azure fake under the real host names: the
//! standard `HTTPS_PROXY` variable (which reqwest, curl and Azure's SDKs honour) names this
//! proxy, and the client trusts the test CA through its usual CA-bundle setting
//! (`SSL_CERT_FILE` for `ci-secrets` on Linux). The client resolves nothing itself: with a
//! proxy, the proxy connects. No DNS override is needed in the client, so the shipped binary
//! has none.

use crate::azure::{LOGIN_HOST, VAULT_SUFFIX};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The longest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client gets to send its `CONNECT`.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `CONNECT host:port` is tunnelled to the Azure listener: Entra's host or a vault
/// host, on port 443.
pub fn routes(host: &str, port: u16) -> bool {
    let host = host.to_ascii_lowercase();
    let vault = host
        .strip_suffix(VAULT_SUFFIX)
        .is_some_and(|name| !name.is_empty() && !name.contains('.'));
    port == 443 && (host == LOGIN_HOST || vault)
}

/// What the proxy makes of a request head.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Tunnel to the Azure listener.
    Tunnel,
    /// Answer with this status and reason, and close.
    Refuse(u16, &'static str),
}

/// Judges the request line of `head`.
fn judge(head: &[u8]) -> Verdict {
    let line = head
        .split(|&b| b == b'\n')
        .next()
        .map(|l| String::from_utf8_lossy(l).trim().to_owned())
        .unwrap_or_default();
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Verdict::Refuse(400, "Bad Request");
    };
    if method != "CONNECT" {
        return Verdict::Refuse(405, "Method Not Allowed");
    }
    let Some((host, port)) = target.rsplit_once(':') else {
        return Verdict::Refuse(400, "Bad Request");
    };
    match port.parse::<u16>() {
        Ok(port) if routes(host, port) => Verdict::Tunnel,
        _ => Verdict::Refuse(403, "Forbidden"),
    }
}

/// Accepts connections on `listener` forever, tunnelling allowed ones to `azure`.
pub(crate) async fn serve(listener: TcpListener, azure: SocketAddr) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(connection(client, azure));
    }
}

async fn connection(mut client: TcpStream, azure: SocketAddr) {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    let read_head = async {
        loop {
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                return Some(end + 4);
            }
            if head.len() > MAX_HEAD {
                return None;
            }
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    };
    let Ok(Some(end)) = tokio::time::timeout(HEAD_TIMEOUT, read_head).await else {
        return;
    };
    let refuse = |status: u16, reason: &str| {
        let body = "this proxy tunnels only CONNECT login.microsoftonline.com:443 and \
                    CONNECT <vault>.vault.azure.net:443 (cloud-fakes)\n";
        format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    match judge(&head[..end]) {
        Verdict::Refuse(status, reason) => {
            let _ = client.write_all(refuse(status, reason).as_bytes()).await;
            let _ = client.shutdown().await;
        }
        Verdict::Tunnel => {
            let Ok(mut upstream) = TcpStream::connect(azure).await else {
                let _ = client
                    .write_all(refuse(502, "Bad Gateway").as_bytes())
                    .await;
                return;
            };
            if client
                .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
            // Bytes the client sent after the head (it may not wait for the 200).
            if upstream.write_all(&head[end..]).await.is_err() {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_azure_names_on_443_are_tunnelled() {
        assert!(routes("login.microsoftonline.com", 443));
        assert!(routes("ci-secrets-test.vault.azure.net", 443));
        assert!(routes("CI-Secrets-Test.Vault.Azure.Net", 443));
        assert!(!routes("ci-secrets-test.vault.azure.net", 80));
        assert!(!routes(".vault.azure.net", 443));
        assert!(!routes("a.b.vault.azure.net", 443));
        assert!(!routes("vault.azure.net", 443));
        assert!(!routes("example.com", 443));
        assert!(!routes("login.microsoftonline.com.evil.test", 443));
    }

    #[test]
    fn request_lines() {
        let j = |s: &str| judge(s.as_bytes());
        assert_eq!(
            j("CONNECT login.microsoftonline.com:443 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Verdict::Tunnel
        );
        assert_eq!(
            j("GET http://example.com/ HTTP/1.1\r\n\r\n"),
            Verdict::Refuse(405, "Method Not Allowed")
        );
        assert_eq!(
            j("CONNECT example.com:443 HTTP/1.1\r\n\r\n"),
            Verdict::Refuse(403, "Forbidden")
        );
        assert_eq!(
            j("CONNECT nohost HTTP/1.1\r\n\r\n"),
            Verdict::Refuse(400, "Bad Request")
        );
        assert_eq!(j("\r\n\r\n"), Verdict::Refuse(400, "Bad Request"));
    }
}
