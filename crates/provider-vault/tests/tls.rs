//! TLS against a local HTTPS Vault stand-in with a private CA: the settings read from the
//! environment shim (`VAULT_*`, `BAO_*`), the explicit CA bundle, mutual TLS, and the error
//! that tells how to trust an unknown CA.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

mod common;

use common::*;
use provider_vault::VaultProviderBuilder;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use secrets_core::{ErrorKind, SecretProvider};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};

struct Pki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    server_der: CertificateDer<'static>,
    server_key: Vec<u8>,
    client_pem: String,
    client_key_pem: String,
}

/// A CA, a server certificate for `vault.test` and `localhost`, and a client certificate.
fn pki() -> Pki {
    pki_for(&["vault.test", "localhost"])
}

/// A CA, a server certificate for `names` only, and a client certificate.
fn pki_for(names: &[&str]) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "provider-vault test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let mut server_params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["runner".to_owned()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();

    Pki {
        ca_pem: ca_cert.pem(),
        ca_der: ca_cert.der().clone(),
        server_der: server_cert.der().clone(),
        server_key: server_key.serialize_der(),
        client_pem: client_cert.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

/// Serves a tiny Vault over TLS: login, one kv-v2 secret, revoke.
async fn serve(pki: &Pki, client_auth: bool) -> SocketAddr {
    serve_routed(pki, client_auth, false).await.0
}

/// The `Host` headers a server saw, in order.
type Hosts = Arc<std::sync::Mutex<Vec<String>>>;

/// [`serve`], recording every request's `Host`; with `by_name`, as a proxy that routes by
/// name: only requests whose `Host` is `127.0.0.1:<its port>` reach Vault, any other name
/// gets `421 Misdirected Request`.
async fn serve_routed(pki: &Pki, client_auth: bool, by_name: bool) -> (SocketAddr, Hosts) {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if client_auth {
        let mut roots = RootCertStore::empty();
        roots.add(pki.ca_der.clone()).unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key.clone()));
    let config = builder
        .with_single_cert(vec![pki.server_der.clone()], key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hosts = Hosts::default();
    let route = by_name.then(|| addr.to_string());
    let seen = hosts.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let (seen, route) = (seen.clone(), route.clone());
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = answer(&mut tls, &seen, route.as_deref()).await;
                }
            });
        }
    });
    (addr, hosts)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// HTTP/1.1 with keep-alive, just enough for the provider's three calls; records each
/// `Host` in `hosts` and, with a `route`, answers only requests for that host.
async fn answer<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    hosts: &std::sync::Mutex<Vec<String>>,
    route: Option<&str>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let length = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..head_end + length);
        let host = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("host").then(|| v.trim().to_owned())
            })
            .unwrap_or_default();
        hosts.lock().unwrap().push(host.clone());
        let mut first = head.lines().next().unwrap_or_default().split(' ');
        let (method, path) = (
            first.next().unwrap_or_default(),
            first.next().unwrap_or_default(),
        );
        let misdirected = route.is_some_and(|r| r != host);
        let (status, body) = match (method, path) {
            _ if misdirected => ("421 Misdirected Request", r#"{"errors":["no route"]}"#),
            ("PUT", "/v1/auth/jwt/login") => ("200 OK", r#"{"auth":{"client_token":"s.tls"}}"#),
            ("GET", "/v1/secret/data/ci/app") => (
                "200 OK",
                r#"{"data":{"data":{"password":"over-tls"},"metadata":{}}}"#,
            ),
            ("POST", "/v1/auth/token/revoke-self") => ("204 No Content", ""),
            _ => ("404 Not Found", r#"{"errors":[]}"#),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).await?;
        stream.flush().await?;
    }
}

fn env(pairs: Vec<(&'static str, String)>) -> secrets_core::Environment {
    pairs.into_iter().collect()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

async fn read_with(
    builder: VaultProviderBuilder,
    url: &str,
) -> Result<String, secrets_core::Error> {
    let provider = builder.build()?;
    let ctx = ctx();
    let mut results = provider
        .resolve(
            &[Spec::at(url, "ci/app", "password").request("PASSWORD")],
            &ctx,
        )
        .await;
    results.remove(0).map(|r| r.value.expose().to_owned())
}

#[tokio::test]
async fn an_unknown_ca_says_how_to_trust_the_server() {
    let pki = pki();
    let addr = serve(&pki, false).await;
    let url = format!("https://localhost:{}", addr.port());
    let provider = VaultProviderBuilder::new().build().unwrap();
    let ctx = ctx();
    let results = provider
        .resolve(
            &[Spec::at(&url, "ci/app", "password").request("PASSWORD")],
            &ctx,
        )
        .await;
    let err = error(&results[0]);
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(text.contains("PASSWORD"), "{text}");
    assert!(text.contains("TLS with https://localhost:"), "{text}");
    assert!(text.contains("certificate"), "{text}");
    assert!(text.contains("VAULT_CACERT"), "{text}");
    assert_eq!(
        ctx.requests.get(provider_vault::requests::LOGIN),
        1,
        "a TLS failure is not retried"
    );
}

#[tokio::test]
async fn private_cas_from_every_source_are_trusted() {
    let pki = pki();
    let addr = serve(&pki, false).await;
    let url = format!("https://localhost:{}", addr.port());
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write(dir.path(), "ca.pem", &pki.ca_pem);
    let ca_dir = dir.path().join("cas");
    std::fs::create_dir(&ca_dir).unwrap();
    write(&ca_dir, "ca.pem", &pki.ca_pem);
    let ca_dir = ca_dir.to_str().unwrap().to_owned();

    let sources: Vec<(&str, VaultProviderBuilder)> = vec![
        (
            "explicit bundle",
            VaultProviderBuilder::new().with_ca_bundle(pki.ca_pem.clone()),
        ),
        (
            "VAULT_CACERT",
            VaultProviderBuilder::new().with_env(env(vec![("VAULT_CACERT", ca_file.clone())])),
        ),
        (
            "BAO_CACERT over VAULT_CACERT",
            VaultProviderBuilder::new().with_env(env(vec![
                ("BAO_CACERT", ca_file.clone()),
                ("VAULT_CACERT", "/nonexistent.pem".to_owned()),
            ])),
        ),
        (
            "VAULT_CACERT_BYTES",
            VaultProviderBuilder::new()
                .with_env(env(vec![("VAULT_CACERT_BYTES", pki.ca_pem.clone())])),
        ),
        (
            "VAULT_CAPATH",
            VaultProviderBuilder::new().with_env(env(vec![("VAULT_CAPATH", ca_dir.clone())])),
        ),
        (
            "VAULT_SKIP_VERIFY",
            VaultProviderBuilder::new()
                .with_env(env(vec![("VAULT_SKIP_VERIFY", "true".to_owned())])),
        ),
    ];
    for (what, builder) in sources {
        match read_with(builder, &url).await {
            Ok(value) => assert_eq!(value, "over-tls", "{what}"),
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

#[tokio::test]
async fn the_tls_server_name_replaces_the_url_host_for_verification() {
    let pki = pki();
    let addr = serve(&pki, false).await;
    // The certificate names vault.test and localhost, not 127.0.0.1.
    let url = format!("https://127.0.0.1:{}", addr.port());
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write(dir.path(), "ca.pem", &pki.ca_pem);

    let without =
        VaultProviderBuilder::new().with_env(env(vec![("VAULT_CACERT", ca_file.clone())]));
    let err = read_with(without, &url).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    assert!(err.to_string().contains("VAULT_TLS_SERVER_NAME"), "{err}");

    let with = VaultProviderBuilder::new().with_env(env(vec![
        ("VAULT_CACERT", ca_file),
        ("VAULT_TLS_SERVER_NAME", "vault.test".to_owned()),
    ]));
    assert_eq!(read_with(with, &url).await.unwrap(), "over-tls");
}

/// `VAULT_TLS_SERVER_NAME` behind a proxy that routes by name: the certificate holds only
/// `vault.internal`, the URL is the address; the name changes what is verified, never `Host`.
#[tokio::test]
async fn the_tls_server_name_is_verified_without_changing_host() {
    let pki = pki_for(&["vault.internal"]);
    let (addr, hosts) = serve_routed(&pki, false, true).await;
    let url = format!("https://127.0.0.1:{}", addr.port());
    let dir = tempfile::tempdir().unwrap();
    let ca_file = write(dir.path(), "ca.pem", &pki.ca_pem);

    let with = VaultProviderBuilder::new().with_env(env(vec![
        ("VAULT_CACERT", ca_file.clone()),
        ("VAULT_TLS_SERVER_NAME", "vault.internal".to_owned()),
    ]));
    assert_eq!(read_with(with, &url).await.unwrap(), "over-tls");
    let seen = hosts.lock().unwrap().clone();
    // Login, read, revoke, each with the URL's host and port.
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.iter().all(|h| *h == addr.to_string()), "{seen:?}");

    // Without the setting: a certificate-name error that names the fix, and no request sent.
    let without =
        VaultProviderBuilder::new().with_env(env(vec![("VAULT_CACERT", ca_file.clone())]));
    let err = read_with(without, &url).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    let text = err.to_string();
    assert!(text.contains("not valid for name \"127.0.0.1\""), "{text}");
    assert!(text.contains("vault.internal"), "{text}");
    assert!(text.contains("set VAULT_TLS_SERVER_NAME"), "{text}");
    assert_eq!(
        hosts.lock().unwrap().len(),
        3,
        "nothing sent over a failed handshake"
    );

    // Another name than the certificate's fails the same way, naming that name.
    let wrong = VaultProviderBuilder::new().with_env(env(vec![
        ("VAULT_CACERT", ca_file.clone()),
        ("VAULT_TLS_SERVER_NAME", "vault.other".to_owned()),
    ]));
    let err = read_with(wrong, &url).await.unwrap_err();
    assert!(err.to_string().contains("\"vault.other\""), "{err}");

    // The name does not bypass the roots: the system store does not know this CA.
    let system = VaultProviderBuilder::new().with_env(env(vec![(
        "VAULT_TLS_SERVER_NAME",
        "vault.internal".to_owned(),
    )]));
    let err = read_with(system, &url).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    assert!(err.to_string().contains("VAULT_CACERT"), "{err}");

    // Every CA source and VAULT_SKIP_VERIFY work with the name.
    let ca_dir = dir.path().join("cas");
    std::fs::create_dir(&ca_dir).unwrap();
    write(&ca_dir, "ca.pem", &pki.ca_pem);
    let name = || ("VAULT_TLS_SERVER_NAME", "vault.internal".to_owned());
    let sources: Vec<(&str, VaultProviderBuilder)> = vec![
        (
            "explicit bundle",
            VaultProviderBuilder::new()
                .with_ca_bundle(pki.ca_pem.clone())
                .with_env(env(vec![name()])),
        ),
        (
            "VAULT_CACERT_BYTES",
            VaultProviderBuilder::new().with_env(env(vec![
                ("VAULT_CACERT_BYTES", pki.ca_pem.clone()),
                name(),
            ])),
        ),
        (
            "VAULT_CAPATH",
            VaultProviderBuilder::new().with_env(env(vec![
                ("VAULT_CAPATH", ca_dir.to_str().unwrap().to_owned()),
                name(),
            ])),
        ),
        (
            "VAULT_SKIP_VERIFY",
            VaultProviderBuilder::new().with_env(env(vec![
                ("VAULT_SKIP_VERIFY", "true".to_owned()),
                ("VAULT_TLS_SERVER_NAME", "vault.other".to_owned()),
            ])),
        ),
    ];
    for (what, builder) in sources {
        match read_with(builder, &url).await {
            Ok(value) => assert_eq!(value, "over-tls", "{what}"),
            Err(e) => panic!("{what}: {e}"),
        }
    }
    let seen = hosts.lock().unwrap().clone();
    assert!(seen.iter().all(|h| *h == addr.to_string()), "{seen:?}");
}

#[tokio::test]
async fn the_tls_server_name_keeps_the_client_certificate() {
    let pki = pki_for(&["vault.internal"]);
    let (addr, hosts) = serve_routed(&pki, true, true).await;
    let url = format!("https://127.0.0.1:{}", addr.port());
    let dir = tempfile::tempdir().unwrap();
    let cert = write(dir.path(), "client.pem", &pki.client_pem);
    let key = write(dir.path(), "client-key.pem", &pki.client_key_pem);
    let name = || ("VAULT_TLS_SERVER_NAME", "vault.internal".to_owned());

    let without = VaultProviderBuilder::new()
        .with_ca_bundle(pki.ca_pem.clone())
        .with_env(env(vec![name()]));
    assert!(
        read_with(without, &url).await.is_err(),
        "no client certificate"
    );
    assert!(hosts.lock().unwrap().is_empty());

    let with = VaultProviderBuilder::new()
        .with_ca_bundle(pki.ca_pem.clone())
        .with_env(env(vec![
            ("VAULT_CLIENT_CERT", cert),
            ("VAULT_CLIENT_KEY", key),
            name(),
        ]));
    assert_eq!(read_with(with, &url).await.unwrap(), "over-tls");
    assert_eq!(hosts.lock().unwrap().len(), 3);
}

#[test]
fn an_invalid_tls_server_name_fails_the_build() {
    let err = VaultProviderBuilder::new()
        .with_env(env(vec![("BAO_TLS_SERVER_NAME", "not a host".to_owned())]))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    assert!(err.to_string().contains("BAO_TLS_SERVER_NAME"), "{err}");
}

#[tokio::test]
async fn mutual_tls_uses_the_client_certificate() {
    let pki = pki();
    let addr = serve(&pki, true).await;
    let url = format!("https://localhost:{}", addr.port());
    let dir = tempfile::tempdir().unwrap();
    let cert = write(dir.path(), "client.pem", &pki.client_pem);
    let key = write(dir.path(), "client-key.pem", &pki.client_key_pem);

    let without = VaultProviderBuilder::new().with_ca_bundle(pki.ca_pem.clone());
    let err = read_with(without, &url).await.unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::InvalidConfig | ErrorKind::Unavailable
        ),
        "{err}"
    );

    let with = VaultProviderBuilder::new()
        .with_ca_bundle(pki.ca_pem.clone())
        .with_env(env(vec![
            ("VAULT_CLIENT_CERT", cert),
            ("VAULT_CLIENT_KEY", key),
        ]));
    assert_eq!(read_with(with, &url).await.unwrap(), "over-tls");
}

#[tokio::test]
async fn unusable_tls_files_fail_the_build_naming_variable_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = write(dir.path(), "not.pem", "hello");
    let cases = vec![
        (
            vec![("VAULT_CACERT", "/nonexistent/ca.pem".to_owned())],
            "VAULT_CACERT=/nonexistent/ca.pem",
        ),
        (vec![("BAO_CACERT", not_pem.clone())], "BAO_CACERT"),
        (
            vec![("VAULT_CAPATH", "/nonexistent/dir".to_owned())],
            "VAULT_CAPATH=/nonexistent/dir",
        ),
        (
            vec![
                ("VAULT_CLIENT_CERT", not_pem.clone()),
                ("VAULT_CLIENT_KEY", not_pem.clone()),
            ],
            "VAULT_CLIENT_CERT",
        ),
        (vec![("VAULT_CLIENT_KEY", not_pem)], "VAULT_CLIENT_CERT"),
    ];
    for (pairs, text) in cases {
        let err = VaultProviderBuilder::new()
            .with_env(env(pairs))
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
        assert!(err.to_string().contains(text), "{text}: {err}");
    }
}
