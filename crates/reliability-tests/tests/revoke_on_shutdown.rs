//! A resolution cancelled by the shutdown of its caller's runtime still revokes its Vault
//! token: the revoke runs on a thread of its own, bounded, and an embedder can wait for it
//! before exiting (`provider_vault::wait_for_revocations`); so does a resolution whose revoke
//! was still in flight (off the critical path) when the runtime went away.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// How many `revoke-self` requests `server` has received.
async fn revokes_received(server: &MockServer) -> usize {
    requests_to(server, "/v1/auth/token/revoke-self").await
}

async fn requests_to(server: &MockServer, to: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == to)
        .count()
}

/// A Vault whose login answers with `token`, whose read of `secret/ci/app` answers
/// `password` after `read_delay`, and whose revokes are counted.
async fn vault(token: &str, password: &str, read_delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v1/auth/jwt/login"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"auth": {"client_token": token, "lease_duration": 60}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/token/revoke-self"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/ci/app"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {"data": {"password": password}}}))
                .set_delay(read_delay),
        )
        .mount(&server)
        .await;
    server
}

/// Login answers, reads stall for 30 s.
async fn vault_with_stalled_read() -> MockServer {
    vault("hvs.shutdown", "late", Duration::from_secs(30)).await
}

#[test]
fn dropping_the_runtime_mid_resolution_still_revokes_the_token() {
    // The server lives on a runtime of its own, which outlives the caller's.
    let servers = tokio::runtime::Runtime::new().expect("server runtime");
    let server = servers.block_on(vault_with_stalled_read());
    let url = server.uri();
    let secrets = secrets(vec![(
        "DB_PASSWORD",
        vault_secret(&url, "secret", "ci/app", "password", &jwt("aud", "c2ln")),
    )]);

    for flavor in ["current_thread", "multi_thread"] {
        let before = servers.block_on(revokes_received(&server));
        let reads_before = servers.block_on(requests_to(&server, "/v1/secret/data/ci/app"));
        let caller = if flavor == "current_thread" {
            tokio::runtime::Builder::new_current_thread()
        } else {
            tokio::runtime::Builder::new_multi_thread()
        }
        .enable_all()
        .build()
        .expect("caller runtime");
        let resolver = resolver(&url, fast_options());
        let secrets = secrets.clone();
        let task = caller.spawn(async move {
            let _ = resolver.resolve(&secrets, &Default::default()).await;
        });
        // Drive the caller until its read is in flight.
        caller.block_on(async {
            for _ in 0..400 {
                if requests_to(&server, "/v1/secret/data/ci/app").await > reads_before {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("{flavor}: the read never started");
        });
        assert!(
            !task.is_finished(),
            "{flavor}: the read was still in flight"
        );
        // The caller shuts its runtime down: its tasks are dropped, nothing spawned on it runs.
        drop(caller);

        let pending = provider_vault::wait_for_revocations(Duration::from_secs(10));
        assert_eq!(pending, 0, "{flavor}: every revocation finished in time");
        assert_eq!(
            servers.block_on(revokes_received(&server)),
            before + 1,
            "{flavor}: the token of the dropped resolution was revoked"
        );
    }
}

/// Login and a read answer at once.
async fn vault_answering() -> MockServer {
    vault("hvs.deferred", "on-time", Duration::ZERO).await
}

#[test]
fn dropping_the_runtime_with_the_revoke_still_in_flight_still_revokes_the_token() {
    let servers = tokio::runtime::Runtime::new().expect("server runtime");
    let server = servers.block_on(vault_answering());
    let url = server.uri();
    let secrets = secrets(vec![(
        "DB_PASSWORD",
        vault_secret(&url, "secret", "ci/app", "password", &jwt("aud", "c2ln")),
    )]);
    // A current-thread caller: the revoke handed off at the end of the resolution has not
    // even started when `block_on` returns the values.
    let caller = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("caller runtime");
    let resolver = resolver(&url, fast_options());
    let resolution = caller
        .block_on(resolver.resolve(&secrets, &Default::default()))
        .unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(resolution.variables[0].value.expose(), "on-time");
    assert_eq!(resolution.in_flight(), 1, "the revoke is in flight");
    assert_eq!(servers.block_on(revokes_received(&server)), 0);
    // The caller exits without closing: its runtime drops the revoke's task.
    drop(resolution);
    drop(caller);

    let pending = provider_vault::wait_for_revocations(Duration::from_secs(10));
    assert_eq!(pending, 0, "the revocation finished in time");
    assert_eq!(
        servers.block_on(revokes_received(&server)),
        1,
        "the token was revoked, once"
    );
}
