//! The Vault token's revoke is off the critical path: the resolution returns with the values
//! while the revoke is in flight, and `close` waits for it. A failed resolution revokes
//! before it returns. Counts, never times: the revoke's answer is held back long enough that
//! it cannot be done when the resolution returns.

#![cfg(feature = "vault")]

use base64::Engine as _;
use secrets_core::{JobPayload, JobVariable};
use secrets_resolver::{ResolveOptions, Resolver};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const REVOKE: &str = "/v1/auth/token/revoke-self";

fn id_token() -> String {
    let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.sig",
        b(r#"{"alg":"RS256"}"#),
        b(r#"{"aud":"https://vault.example.com","sub":"s","exp":4102444800}"#)
    )
}

fn payload(url: &str, paths: &[&str]) -> JobPayload {
    let secrets: serde_json::Map<String, Value> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                format!("V{i}"),
                json!({"vault": {"server": {"url": url,
                    "auth": {"name": "jwt", "path": "jwt", "data": {"jwt": "$VAULT_ID_TOKEN"}}},
                    "engine": {"name": "kv-v2", "path": "secret"}, "path": p, "field": "f"}}),
            )
        })
        .collect();
    let variables = vec![JobVariable::new("VAULT_ID_TOKEN", id_token())];
    serde_json::from_value(json!({"secrets": secrets, "variables": variables})).unwrap()
}

/// Login, `secret/data/ok` answers, anything else is not found; the revoke answers after
/// `revoke_delay`.
async fn vault(revoke_delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v1/auth/jwt/login"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"auth": {"client_token": "s.token", "lease_duration": 60}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/ok"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": {"data": {"f": "v"}}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(REVOKE))
        .respond_with(ResponseTemplate::new(204).set_delay(revoke_delay))
        .mount(&server)
        .await;
    server
}

fn resolver() -> Resolver {
    Resolver::builder()
        .with_provider(Arc::new(
            provider_vault::VaultProvider::builder().build().unwrap(),
        ))
        .with_options(ResolveOptions::default())
        .build()
}

async fn revokes(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == REVOKE)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_values_come_back_while_the_revoke_is_in_flight_and_close_waits_for_it() {
    // Held back far longer than a resolution against a local server takes.
    let server = vault(Duration::from_secs(3)).await;
    let mut resolution = resolver()
        .resolve_payload(&payload(&server.uri(), &["ok"]))
        .await
        .unwrap();
    assert_eq!(resolution.variables[0].value.expose(), "v");
    assert_eq!(resolution.in_flight(), 1, "the revoke is still in flight");
    assert_eq!(resolution.report.requests_of("vault_revoke"), 0);
    assert_eq!(resolution.report.requests_of("vault_read"), 1);
    // It goes out on its own while the caller holds the values, before any close.
    for _ in 0..200 {
        if revokes(&server).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        revokes(&server).await,
        1,
        "the revoke was sent before close"
    );
    assert_eq!(resolution.in_flight(), 1, "and is not answered yet");

    resolution.close().await;
    assert_eq!(resolution.in_flight(), 0);
    assert_eq!(resolution.report.requests_of("vault_revoke"), 1);
    assert_eq!(revokes(&server).await, 1, "the server saw one revoke");
    resolution.close().await;
    assert_eq!(revokes(&server).await, 1, "closing twice revokes once");
}

#[tokio::test]
async fn closing_concurrently_with_using_the_variables_waits_for_the_revoke() {
    let server = vault(Duration::from_millis(300)).await;
    let resolution = resolver()
        .resolve_payload(&payload(&server.uri(), &["ok"]))
        .await
        .unwrap();
    let closing = resolution.closing();
    let used = async { resolution.variables[0].value.expose().to_owned() };
    let (value, ()) = tokio::join!(used, closing);
    assert_eq!(value, "v");
    assert_eq!(resolution.in_flight(), 0);
    assert_eq!(revokes(&server).await, 1);
}

// On a current-thread runtime a spawned revoke cannot even start before the test yields:
// the count shows that the failure waited for it.
#[tokio::test(flavor = "current_thread")]
async fn a_failed_resolution_has_revoked_when_it_returns() {
    let server = vault(Duration::from_millis(200)).await;
    let failure = resolver()
        .resolve_payload(&payload(&server.uri(), &["ok", "missing"]))
        .await
        .unwrap_err();
    assert_eq!(failure.errors.len(), 1);
    assert_eq!(failure.report.requests_of("vault_revoke"), 1);
    assert_eq!(revokes(&server).await, 1);
}

#[tokio::test]
async fn a_dropped_resolution_still_revokes_in_the_background() {
    let server = vault(Duration::from_millis(200)).await;
    let resolution = resolver()
        .resolve_payload(&payload(&server.uri(), &["ok"]))
        .await
        .unwrap();
    let closing = resolution.closing();
    drop(resolution);
    closing.await;
    assert_eq!(revokes(&server).await, 1);
}
