//! The `CONNECT` proxy in front of the Azure listener: a client with no name override reaches
//! the fake under the real host names through it (as `HTTPS_PROXY` makes the shipped binary
//! do); anything but the Azure names is refused.

mod common;

use common::{Harness, TENANT, VAULT_HOST};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A client that resolves nothing itself: every https request goes through the proxy.
fn proxied(h: &Harness) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(h.fakes.ca_pem().as_bytes()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .proxy(reqwest::Proxy::https(h.fakes.azure_proxy_url()).unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_azure_names_are_tunnelled_to_the_fake() {
    let h = Harness::start().await;
    let client = proxied(&h);
    let discovery = client
        .get(format!(
            "https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(discovery.status(), 200);
    // The vault answers with its challenge: the request reached the fake's Key Vault.
    let challenge = client
        .get(format!(
            "https://{VAULT_HOST}/secrets/db-password?api-version=7.5"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(challenge.status(), 401);
    assert!(
        challenge
            .headers()
            .get("www-authenticate")
            .is_some_and(|v| v.to_str().unwrap().contains(TENANT))
    );
    assert_eq!(h.fakes.counters().get(cloud_fakes::Kind::AzureDiscovery), 1);
    assert_eq!(h.fakes.counters().get(cloud_fakes::Kind::AzureChallenge), 1);
}

#[tokio::test]
async fn other_hosts_and_methods_are_refused() {
    let h = Harness::start().await;
    let addr = h
        .fakes
        .azure_proxy_url()
        .trim_start_matches("http://")
        .to_owned();
    for (request, status) in [
        (
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
            "403",
        ),
        (
            "CONNECT login.microsoftonline.com:80 HTTP/1.1\r\nHost: x\r\n\r\n",
            "403",
        ),
        (
            "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
            "405",
        ),
    ] {
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{request:?}: {answer}"
        );
    }
    // A client pointed at the proxy cannot reach anything else through it.
    let err = proxied(&h)
        .get("https://example.com/")
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
}
