//! Secrets hygiene: no value, ID token or Vault token in any error, `Debug` or log line.
//! Alone in its test binary so that its log capture sees every event.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

mod common;

use common::*;
use secrets_core::SecretProvider;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn canary_values_and_tokens_never_leak() {
    const CANARY_VALUE: &str = "canary-value-7f3a9c";
    const CANARY_VAULT_TOKEN: &str = "s.canary-vault-token-5e1d";
    let canary_jwt = id_token_with(now() + 300, "canary-jwt-marker");

    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v1/auth/jwt/login"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"auth": {"client_token": CANARY_VAULT_TOKEN}})),
        )
        .mount(&server)
        .await;
    let canary_body =
        json!({"data": {"data": {"ok": CANARY_VALUE, "obj": {"k": CANARY_VALUE}}, "metadata": {}}});
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/ok"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&canary_body))
        .mount(&server)
        .await;
    // Failures whose bodies carry the canaries.
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/denied"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "errors": [format!("permission denied for {CANARY_VAULT_TOKEN}")],
            "data": {"leak": CANARY_VALUE}})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/broken"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(format!("{{\"data\": {CANARY_VALUE}")),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/down"))
        .respond_with(ResponseTemplate::new(500).set_body_string(CANARY_VALUE))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/token/revoke-self"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(errors(&[&format!("cannot revoke {CANARY_VAULT_TOKEN}")])),
        )
        .mount(&server)
        .await;

    let requests: Vec<_> = [
        ("ok", "ok"),
        ("ok", "obj"),
        ("ok", "missing"),
        ("denied", "f"),
        ("broken", "f"),
        ("down", "f"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (p, f))| {
        Spec::new(&server, p, f)
            .jwt(&canary_jwt)
            .request(&format!("V{i}"))
    })
    .collect();
    let provider = provider();
    let results = provider.resolve(&requests, &ctx()).await;
    assert_eq!(value(&results[0]), CANARY_VALUE);
    assert_eq!(value(&results[1]), format!("map[k:{CANARY_VALUE}]"));

    let mut printed = format!("{results:?} {results:#?} {provider:?} {requests:?}");
    for r in &results {
        if let Err(e) = r {
            printed.push_str(&format!("{e} {e:?} {:?}", std::error::Error::source(e)));
        }
    }
    printed.push_str(&String::from_utf8_lossy(&logs.0.lock().unwrap()));
    assert!(
        printed.contains("DEBUG") || printed.contains("WARN"),
        "the subscriber captured logs"
    );
    for canary in [
        CANARY_VALUE,
        CANARY_VAULT_TOKEN,
        &canary_jwt,
        "canary-jwt-marker",
    ] {
        assert!(!printed.contains(canary), "{canary} leaked:\n{printed}");
    }
    // The quoted server message survived, scrubbed.
    let denied = error(&results[3]).to_string();
    assert!(
        denied.contains("permission denied for <redacted>"),
        "{denied}"
    );
}
