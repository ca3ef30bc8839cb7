//! Faults: refused connections, resets mid-answer, stalls, 5xx and 429 bursts, AWS
//! throttling, truncated, malformed and oversized answers, for both providers through the
//! resolver. Each test asserts either "retried and succeeded within the budget" or "failed
//! within the deadline with a classified error naming the variable, and nothing returned";
//! each is bounded by [`common::HANG`].
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

mod common;

use common::*;
use secrets_core::ErrorKind;
use secrets_resolver::Resolution;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use wiremock::matchers::{header, method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const VAULT_TOKEN: &str = "hvs.reliability-vault-token";

async fn bounded<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG, fut)
        .await
        .expect("the test hung past its bound")
}

fn login_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "auth": {"client_token": VAULT_TOKEN, "policies": ["ci-read"], "lease_duration": 60}
    }))
}

fn kv2(data: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "data": {"data": data, "metadata": {"version": 1, "deletion_time": "", "destroyed": false}}
    }))
}

/// A Vault mock that logs in and revokes; reads are mounted by each test.
async fn vault_mock() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v1/auth/jwt/login"))
        .respond_with(login_ok())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/token/revoke-self"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    server
}

/// A Vault mock whose read answers only after 30 s (past every deadline in these tests).
async fn vault_with_stalled_read() -> MockServer {
    let server = vault_mock().await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/ci/app"))
        .respond_with(kv2(json!({"password": "late"})).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    server
}

/// How many `revoke-self` requests `server` has received.
async fn revokes_received(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/v1/auth/token/revoke-self")
        .count()
}

fn one_vault(url: &str, variable: &str) -> secrets_core::Secrets {
    secrets(vec![(
        variable,
        vault_secret(url, "secret", "ci/app", "password", &jwt("aud", "c2ln")),
    )])
}

fn value_of<'a>(resolution: &'a Resolution, variable: &str) -> &'a str {
    resolution
        .variables
        .iter()
        .find(|v| v.key == variable)
        .unwrap_or_else(|| panic!("{variable} missing"))
        .value
        .expose()
}

/// The raw-server answers of a healthy Vault for `path`, with `read` deciding reads.
fn raw_vault(
    read: impl Fn(usize) -> Action + Send + Sync + 'static,
) -> impl Fn(usize, &RawRequest) -> Action + Send + Sync + 'static {
    let reads = AtomicUsize::new(0);
    move |_, req| match (req.method.as_str(), req.path.as_str()) {
        ("PUT", "/v1/auth/jwt/login") => Action::json(
            200,
            json!({"auth": {"client_token": VAULT_TOKEN, "lease_duration": 60}}),
        ),
        ("POST", "/v1/auth/token/revoke-self") => Action::Respond {
            status: 204,
            content_type: "application/json",
            body: Vec::new(),
        },
        ("GET", _) => read(reads.fetch_add(1, Ordering::SeqCst)),
        _ => Action::json(404, json!({"errors": []})),
    }
}

fn kv2_body(value: &str) -> Vec<u8> {
    json!({"data": {"data": {"password": value}, "metadata": {"version": 1}}})
        .to_string()
        .into_bytes()
}

// ---------------------------------------------------------------------------------------
// Vault

#[tokio::test]
async fn vault_connection_refused_fails_fast_naming_the_variable() {
    bounded(async {
        let url = format!("http://127.0.0.1:{}", unused_port());
        let started = Instant::now();
        let result = resolver(&url, fast_options())
            .resolve(&one_vault(&url, "DB_PASSWORD"), &Default::default())
            .await;
        let failed = expect_failure(&result, "DB_PASSWORD", ErrorKind::Unavailable);
        assert!(
            failed.message.contains("cannot connect"),
            "{}",
            failed.message
        );
        assert!(
            failed.message.contains(&url),
            "names the server: {}",
            failed.message
        );
        assert!(failed.retryable);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let report = &result.unwrap_err().report;
        assert_eq!(
            report.requests_of("vault_login"),
            3,
            "the login was retried"
        );
        assert_eq!(report.requests_of("vault_read"), 0);
    })
    .await;
}

#[tokio::test]
async fn vault_reset_mid_answer_is_retried_and_succeeds() {
    bounded(async {
        let server = RawServer::start(raw_vault(|n| {
            let body = kv2_body("value-after-a-reset");
            if n == 0 {
                Action::ResetAfter {
                    status: 200,
                    after: 80,
                    body,
                }
            } else {
                Action::Respond {
                    status: 200,
                    content_type: "application/json",
                    body,
                }
            }
        }))
        .await;
        let url = server.url();
        let resolution = resolver(&url, fast_options())
            .resolve(&one_vault(&url, "DB_PASSWORD"), &Default::default())
            .await
            .expect("a reset is retried");
        assert_eq!(value_of(&resolution, "DB_PASSWORD"), "value-after-a-reset");
        assert_eq!(resolution.report.requests_of("vault_read"), 2);
    })
    .await;
}

#[tokio::test]
async fn vault_reset_every_time_fails_unavailable_with_nothing_returned() {
    bounded(async {
        let server = RawServer::start(raw_vault(|_| Action::ResetAfter {
            status: 200,
            after: 80,
            body: kv2_body("never-delivered-value"),
        }))
        .await;
        let url = server.url();
        let result = resolver(&url, fast_options())
            .resolve(&one_vault(&url, "DB_PASSWORD"), &Default::default())
            .await;
        let failed = expect_failure(&result, "DB_PASSWORD", ErrorKind::Unavailable);
        assert!(
            !failed.message.contains("never-delivered"),
            "{}",
            failed.message
        );
        assert_eq!(result.unwrap_err().report.requests_of("vault_read"), 3);
    })
    .await;
}

#[tokio::test]
async fn vault_stall_past_the_request_timeout_fails_within_the_budget() {
    bounded(async {
        let server = RawServer::start(raw_vault(|_| Action::Stall)).await;
        let url = server.url();
        let started = Instant::now();
        let result = resolver(&url, fast_options())
            .resolve(&one_vault(&url, "DB_PASSWORD"), &Default::default())
            .await;
        let elapsed = started.elapsed();
        let failed = expect_failure(&result, "DB_PASSWORD", ErrorKind::Unavailable);
        assert!(failed.message.contains("no answer"), "{}", failed.message);
        // 3 attempts of 1 s each, plus small backoffs.
        assert!(elapsed >= Duration::from_secs(3), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(7), "{elapsed:?}");
    })
    .await;
}

#[tokio::test]
async fn the_deadline_bounds_a_resolution_whose_server_stalls() {
    bounded(async {
        let server = RawServer::start(|_, _| Action::Stall).await;
        let url = server.url();
        let options = fast_options()
            .with_request_timeout(Duration::from_secs(30))
            .with_deadline(Duration::from_secs(2));
        let started = Instant::now();
        let result = resolver(&url, options)
            .resolve(&one_vault(&url, "DB_PASSWORD"), &Default::default())
            .await;
        let elapsed = started.elapsed();
        let failed = expect_failure(&result, "DB_PASSWORD", ErrorKind::Unavailable);
        assert!(failed.message.contains("deadline"), "{}", failed.message);
        assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    })
    .await;
}

#[tokio::test]
async fn the_deadline_stops_reads_but_the_vault_token_is_still_revoked() {
    bounded(async {
        let server = vault_with_stalled_read().await;
        let url = server.uri();
        let options = fast_options()
            .with_request_timeout(Duration::from_secs(20))
            .with_deadline(Duration::from_secs(1));
        let started = Instant::now();
        let result = resolver(&url, options)
            .resolve(&one_vault(&url, "DB_PASSWORD"), &Default::default())
            .await;
        let elapsed = started.elapsed();
        let failed = expect_failure(&result, "DB_PASSWORD", ErrorKind::Unavailable);
        assert!(failed.message.contains("deadline"), "{}", failed.message);
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        assert_eq!(
            revokes_received(&server).await,
            1,
            "the token outlived the resolution"
        );
        let report = &result.as_ref().expect_err("failed").report;
        assert_eq!(report.requests_of("vault_revoke"), 1);
    })
    .await;
}

#[tokio::test]
async fn a_cancelled_resolution_still_revokes_its_vault_token() {
    bounded(async {
        let server = vault_with_stalled_read().await;
        let url = server.uri();
        let resolver = resolver(&url, fast_options());
        let secrets = one_vault(&url, "DB_PASSWORD");
        let variables = Default::default();
        // The caller gives up (a cancelled job) while the read is in flight.
        let cancelled = tokio::time::timeout(
            Duration::from_millis(500),
            resolver.resolve(&secrets, &variables),
        )
        .await;
        assert!(cancelled.is_err(), "the read was still in flight");
        let revoked = async {
            while revokes_received(&server).await == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), revoked)
            .await
            .expect("the token of the cancelled resolution was revoked");
    })
    .await;
}

#[tokio::test]
async fn vault_5xx_burst_is_retried_and_succeeds() {
    bounded(async {
        let server = vault_mock().await;
        Mock::given(method("GET"))
            .and(path("/v1/secret/data/ci/app"))
            .respond_with(ResponseTemplate::new(503).set_body_json(json!({"errors": ["busy"]})))
            .up_to_n_times(2)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/secret/data/ci/app"))
            .respond_with(kv2(json!({"password": "after-503s"})))
            .mount(&server)
            .await;
        let url = server.uri();
        let resolution = resolver(&url, fast_options())
            .resolve(&one_vault(&url, "DB_PASSWORD"), &Default::default())
            .await
            .expect("503s are retried");
        assert_eq!(value_of(&resolution, "DB_PASSWORD"), "after-503s");
        assert_eq!(resolution.report.requests_of("vault_read"), 3);
    })
    .await;
}

#[tokio::test]
async fn vault_persistent_5xx_fails_after_the_attempts_naming_variable_and_server() {
    bounded(async {
        let server = vault_mock().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(500).set_body_json(json!({"errors": ["internal error"]})),
            )
            .mount(&server)
            .await;
        let url = server.uri();
        let result = resolver(&url, fast_options())
            .resolve(&one_vault(&url, "DB_PASSWORD"), &Default::default())
            .await;
        let failed = expect_failure(&result, "DB_PASSWORD", ErrorKind::Unavailable);
        assert!(failed.message.contains("status 500"), "{}", failed.message);
        assert!(failed.message.contains("ci/app"), "{}", failed.message);
        let report = result.unwrap_err().report;
        assert_eq!(report.requests_of("vault_read"), 3);
        assert_eq!(
            report.requests_of("vault_revoke"),
            1,
            "the token is still revoked"
        );
    })
    .await;
}

#[tokio::test]
async fn vault_429_burst_is_retried_and_succeeds() {
    bounded(async {
        let server = vault_mock().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(429).set_body_json(json!({"errors": ["rate limit"]})),
            )
            .up_to_n_times(2)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(kv2(json!({"password": "after-429s"})))
            .mount(&server)
            .await;
        let url = server.uri();
        let resolution = resolver(&url, fast_options())
            .resolve(&one_vault(&url, "DB_PASSWORD"), &Default::default())
            .await
            .expect("429s are retried");
        assert_eq!(value_of(&resolution, "DB_PASSWORD"), "after-429s");
    })
    .await;
}

#[tokio::test]
async fn vault_persistent_429_fails_rate_limited() {
    bounded(async {
        let server = vault_mock().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(429).set_body_json(json!({"errors": ["rate limit"]})),
            )
            .mount(&server)
            .await;
        let url = server.uri();
        let result = resolver(&url, fast_options())
            .resolve(&one_vault(&url, "DB_PASSWORD"), &Default::default())
            .await;
        let failed = expect_failure(&result, "DB_PASSWORD", ErrorKind::RateLimited);
        assert!(failed.retryable);
    })
    .await;
}

#[tokio::test]
async fn vault_sealed_is_not_retried() {
    bounded(async {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .respond_with(
                ResponseTemplate::new(503).set_body_json(json!({"errors": ["Vault is sealed"]})),
            )
            .mount(&server)
            .await;
        let url = server.uri();
        let result = resolver(&url, fast_options())
            .resolve(&one_vault(&url, "DB_PASSWORD"), &Default::default())
            .await;
        let failed = expect_failure(&result, "DB_PASSWORD", ErrorKind::Unavailable);
        assert!(failed.message.contains("sealed"), "{}", failed.message);
        assert!(!failed.retryable);
        assert_eq!(result.unwrap_err().report.requests_of("vault_login"), 1);
    })
    .await;
}

#[tokio::test]
async fn vault_truncated_and_malformed_answers_fail_unexpected_without_quoting_them() {
    bounded(async {
        let value = canary("truncated");
        let truncated = format!(r#"{{"data": {{"data": {{"password": "{value}", "other"#);
        for (body, variable) in [
            (truncated.as_str(), "TRUNCATED"),
            ("<html>bad gateway</html>", "HTML"),
            ("", "EMPTY"),
            (r#"{"data": {"data": "not-a-map"}}"#, "NOT_A_MAP"),
        ] {
            let server = vault_mock().await;
            Mock::given(method("GET"))
                .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
                .mount(&server)
                .await;
            let url = server.uri();
            let result = resolver(&url, fast_options())
                .resolve(&one_vault(&url, variable), &Default::default())
                .await;
            let kind = if variable == "NOT_A_MAP" {
                ErrorKind::InvalidSpec
            } else {
                ErrorKind::Unexpected
            };
            let failed = expect_failure(&result, variable, kind);
            assert!(!failed.message.contains(&value), "{}", failed.message);
            assert!(!format!("{result:?}").contains(&value));
        }
    })
    .await;
}

#[tokio::test]
async fn vault_login_answer_without_a_token_fails_unexpected() {
    bounded(async {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"auth": null})))
            .mount(&server)
            .await;
        let url = server.uri();
        let result = resolver(&url, fast_options())
            .resolve(&one_vault(&url, "DB_PASSWORD"), &Default::default())
            .await;
        let failed = expect_failure(&result, "DB_PASSWORD", ErrorKind::Unexpected);
        assert!(
            failed.message.contains("client_token"),
            "{}",
            failed.message
        );
    })
    .await;
}

/// 64 MiB: far above anything Vault or Secrets Manager sends for a secret (Vault's own request
/// limit is 32 MiB, a Secrets Manager value at most 64 KiB).
const OVERSIZED: usize = 64 << 20;

/// Time enough to read the whole oversized answer: the request timeout must not be what
/// stops it.
fn patient_options() -> secrets_resolver::ResolveOptions {
    let mut options = fast_options();
    options.request_timeout = Duration::from_secs(40);
    options.deadline = Duration::from_secs(50);
    options.retry.max_attempts = 1;
    options
}

#[tokio::test]
async fn vault_oversized_answer_is_refused() {
    bounded(async {
        let server = RawServer::start(raw_vault(|_| Action::Respond {
            status: 200,
            content_type: "application/json",
            body: kv2_body(&"x".repeat(OVERSIZED)),
        }))
        .await;
        let url = server.url();
        let started = Instant::now();
        let result = resolver(&url, patient_options())
            .resolve(&one_vault(&url, "DB_PASSWORD"), &Default::default())
            .await;
        let failed = expect_failure(&result, "DB_PASSWORD", ErrorKind::Unexpected);
        assert!(!failed.retryable, "{}", failed.message);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "refused early, not read whole"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// AWS Secrets Manager

fn sm_target(op: &str) -> wiremock::matchers::HeaderExactMatcher {
    header("x-amz-target", format!("secretsmanager.{op}").as_str())
}

fn aws_json(status: u16, body: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.to_string(), "application/x-amz-json-1.1")
}

fn aws_error(status: u16, code: &str) -> ResponseTemplate {
    aws_json(
        status,
        json!({"__type": code, "message": "service message"}),
    )
}

/// Answers `GetSecretValue` and `BatchGetSecretValue` of any id with `value`.
#[derive(Clone)]
struct SmAnswers {
    value: String,
}

impl Respond for SmAnswers {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let arn =
            |id: &str| format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{id}-AbCdEf");
        let target = request
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if target.ends_with("BatchGetSecretValue") {
            let values: Vec<_> = body["SecretIdList"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|id| id.as_str())
                .map(|id| json!({"ARN": arn(id), "Name": id, "SecretString": self.value, "VersionId": "v1"}))
                .collect();
            aws_json(200, json!({"SecretValues": values, "Errors": []}))
        } else {
            let id = body["SecretId"].as_str().unwrap_or_default();
            aws_json(
                200,
                json!({"ARN": arn(id), "Name": id, "SecretString": self.value, "VersionId": "v1"}),
            )
        }
    }
}

fn one_aws(variable: &str) -> secrets_core::Secrets {
    secrets(vec![(variable, aws_secret("app/db", None, "us-east-1"))])
}

#[tokio::test]
async fn aws_connection_refused_fails_unavailable_naming_the_variable() {
    bounded(async {
        let url = format!("http://127.0.0.1:{}", unused_port());
        let started = Instant::now();
        let result = resolver(&url, fast_options())
            .resolve(&one_aws("API_KEY"), &Default::default())
            .await;
        let failed = expect_failure(&result, "API_KEY", ErrorKind::Unavailable);
        assert!(failed.message.contains("app/db"), "{}", failed.message);
        assert!(started.elapsed() < Duration::from_secs(5));
    })
    .await;
}

#[tokio::test]
async fn aws_throttling_burst_is_retried_and_succeeds() {
    bounded(async {
        for throttle in [
            aws_error(400, "ThrottlingException"),
            aws_error(429, "TooManyRequestsException"),
            aws_error(500, "InternalServiceError"),
            aws_error(503, "ServiceUnavailable"),
        ] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(throttle)
                .up_to_n_times(2)
                .mount(&server)
                .await;
            Mock::given(method("POST"))
                .respond_with(SmAnswers {
                    value: "after-throttling".into(),
                })
                .mount(&server)
                .await;
            let resolution = resolver(&server.uri(), fast_options())
                .resolve(&one_aws("API_KEY"), &Default::default())
                .await
                .expect("throttling and 5xx are retried");
            assert_eq!(value_of(&resolution, "API_KEY"), "after-throttling");
            assert_eq!(
                server.received_requests().await.unwrap_or_default().len(),
                3
            );
        }
    })
    .await;
}

#[tokio::test]
async fn aws_persistent_throttling_fails_rate_limited_naming_the_variable() {
    bounded(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(aws_error(400, "ThrottlingException"))
            .mount(&server)
            .await;
        let result = resolver(&server.uri(), fast_options())
            .resolve(&one_aws("API_KEY"), &Default::default())
            .await;
        let failed = expect_failure(&result, "API_KEY", ErrorKind::RateLimited);
        assert!(
            failed.message.contains("ThrottlingException"),
            "{}",
            failed.message
        );
        assert!(
            !failed.message.contains("service message"),
            "{}",
            failed.message
        );
    })
    .await;
}

#[tokio::test]
async fn aws_truncated_and_malformed_answers_fail_without_quoting_them() {
    bounded(async {
        let value = canary("awstruncated");
        let truncated =
            format!(r#"{{"SecretValues": [{{"Name": "app/db", "SecretString": "{value}"#);
        for (body, variable) in [
            (truncated.as_str(), "TRUNCATED"),
            ("<html>bad gateway</html>", "HTML"),
        ] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(
                    ResponseTemplate::new(200).set_body_raw(body, "application/x-amz-json-1.1"),
                )
                .mount(&server)
                .await;
            let result = resolver(&server.uri(), fast_options())
                .resolve(&one_aws(variable), &Default::default())
                .await;
            let failed = expect_failure(&result, variable, ErrorKind::Unexpected);
            assert!(!failed.message.contains(&value), "{}", failed.message);
            assert!(!format!("{result:?}").contains(&value));
        }
    })
    .await;
}

#[tokio::test]
async fn aws_field_of_a_value_that_is_not_json_fails_without_quoting_it() {
    bounded(async {
        let value = canary("notjson");
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(SmAnswers {
                value: format!("{{\"password\": \"{value}\""),
            })
            .mount(&server)
            .await;
        let result = resolver(&server.uri(), fast_options())
            .resolve(
                &secrets(vec![(
                    "PASSWORD",
                    aws_secret("app/db", Some("password"), "us-east-1"),
                )]),
                &Default::default(),
            )
            .await;
        let failed = expect_failure(&result, "PASSWORD", ErrorKind::InvalidSpec);
        assert!(!failed.message.contains(&value), "{}", failed.message);
    })
    .await;
}

#[tokio::test]
async fn aws_reset_mid_answer_fails_unavailable_naming_the_variable() {
    bounded(async {
        let server = RawServer::start(|_, _| Action::ResetAfter {
            status: 200,
            after: 90,
            body: br#"{"ARN": "arn:aws:secretsmanager:us-east-1:1:secret:app/db-AbCdEf", "Name": "app/db", "SecretString": "never-delivered-value"}"#.to_vec(),
        })
        .await;
        let result = resolver(&server.url(), fast_options())
            .resolve(&one_aws("API_KEY"), &Default::default())
            .await;
        let failed = expect_failure(&result, "API_KEY", ErrorKind::Unavailable);
        assert!(!failed.message.contains("never-delivered"), "{}", failed.message);
    })
    .await;
}

#[tokio::test]
async fn aws_reset_once_is_retried_and_succeeds() {
    bounded(async {
        // One current-version secret is read with GetSecretValue.
        let server = RawServer::start(|n, _| {
            let body = br#"{"ARN": "arn:aws:secretsmanager:us-east-1:1:secret:app/db-AbCdEf", "Name": "app/db", "SecretString": "after-a-reset"}"#.to_vec();
            if n == 0 {
                Action::ResetAfter { status: 200, after: 60, body }
            } else {
                Action::Respond { status: 200, content_type: "application/x-amz-json-1.1", body }
            }
        })
        .await;
        let resolution = resolver(&server.url(), fast_options())
            .resolve(&one_aws("API_KEY"), &Default::default())
            .await
            .expect("a reset is retried");
        assert_eq!(value_of(&resolution, "API_KEY"), "after-a-reset");
    })
    .await;
}

#[tokio::test]
async fn aws_stall_past_the_request_timeout_fails_within_the_budget() {
    bounded(async {
        let server = RawServer::start(|_, _| Action::Stall).await;
        let started = Instant::now();
        let result = resolver(&server.url(), fast_options())
            .resolve(&one_aws("API_KEY"), &Default::default())
            .await;
        let elapsed = started.elapsed();
        let failed = expect_failure(&result, "API_KEY", ErrorKind::Unavailable);
        assert!(failed.message.contains("timed out"), "{}", failed.message);
        assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
    })
    .await;
}

#[tokio::test]
async fn aws_oversized_answer_is_refused() {
    bounded(async {
        let huge = "x".repeat(OVERSIZED);
        let server = RawServer::start(move |_, _| Action::Respond {
            status: 200,
            content_type: "application/x-amz-json-1.1",
            body: json!({"ARN": "arn:aws:secretsmanager:us-east-1:1:secret:app/db-AbCdEf", "Name": "app/db", "SecretString": huge})
                .to_string()
                .into_bytes(),
        })
        .await;
        let result = resolver(&server.url(), patient_options())
            .resolve(&one_aws("API_KEY"), &Default::default())
            .await;
        let failure = expect_failure(&result, "API_KEY", ErrorKind::Unexpected);
        assert!(failure.message.contains("larger than 4194304 bytes"), "{}", failure.message);
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Mixed providers, throttling under load, concurrency.

#[tokio::test]
async fn one_failing_provider_fails_the_whole_resolution_and_reports_every_failure() {
    bounded(async {
        let vault = vault_mock().await;
        Mock::given(method("GET"))
            .respond_with(kv2(json!({"password": "vault-value"})))
            .mount(&vault)
            .await;
        let aws_url = format!("http://127.0.0.1:{}", unused_port());
        let url = vault.uri();
        let all = secrets(vec![
            (
                "GOOD",
                vault_secret(&url, "secret", "ci/app", "password", &jwt("aud", "c2ln")),
            ),
            ("BAD_AWS", aws_secret("app/db", None, "us-east-1")),
            (
                "BAD_FIELD",
                vault_secret(&url, "secret", "ci/app", "nope", &jwt("aud", "c2ln")),
            ),
        ]);
        let result = resolver(&aws_url, fast_options())
            .resolve(&all, &Default::default())
            .await;
        expect_failure(&result, "BAD_AWS", ErrorKind::Unavailable);
        expect_failure(&result, "BAD_FIELD", ErrorKind::NotFound);
        let failure = result.unwrap_err();
        assert_eq!(failure.report.failures().count(), 2);
        assert!(!failure.to_string().contains("vault-value"));
    })
    .await;
}

/// Answers 429 to the first `throttled` reads, then the secret named by the path.
struct ThrottleFirst {
    seen: AtomicUsize,
    throttled: usize,
}

impl Respond for ThrottleFirst {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if self.seen.fetch_add(1, Ordering::SeqCst) < self.throttled {
            return ResponseTemplate::new(429)
                .set_body_json(json!({"errors": ["rate limit quota exceeded"]}));
        }
        let name = request.url.path().rsplit('/').next().unwrap_or_default();
        kv2(json!({"password": format!("value-{name}")}))
    }
}

#[tokio::test]
async fn a_throttling_server_makes_the_resolver_back_off_and_succeed() {
    bounded(async {
        let server = vault_mock().await;
        let throttled = 12;
        Mock::given(method("GET"))
            .and(path_regex("^/v1/secret/data/load/"))
            .respond_with(ThrottleFirst {
                seen: AtomicUsize::new(0),
                throttled,
            })
            .mount(&server)
            .await;
        let url = server.uri();
        let token = jwt("aud", "c2ln");
        let names: Vec<String> = (0..40).map(|i| format!("S{i:02}")).collect();
        let all = secrets(
            names
                .iter()
                .map(|n| {
                    (
                        n.as_str(),
                        vault_secret(&url, "secret", &format!("load/{n}"), "password", &token),
                    )
                })
                .collect(),
        );
        let mut options = fast_options();
        options.retry.max_attempts = 6;
        options.retry.min_delay = Duration::from_millis(20);
        options.retry.max_delay = Duration::from_millis(100);
        let started = Instant::now();
        let resolution = resolver(&url, options)
            .resolve(&all, &Default::default())
            .await
            .expect("throttling is absorbed by backoff");
        for n in &names {
            assert_eq!(value_of(&resolution, n), format!("value-{n}"));
        }
        assert_eq!(
            resolution.report.requests_of("vault_read"),
            40 + throttled as u64
        );
        assert!(
            started.elapsed() >= Duration::from_millis(20),
            "it backed off"
        );
    })
    .await;
}

#[tokio::test]
async fn aws_throttling_under_load_backs_off_and_succeeds() {
    bounded(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(sm_target("GetSecretValue"))
            .respond_with(aws_error(400, "ThrottlingException"))
            .up_to_n_times(10)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(SmAnswers { value: "v".into() })
            .mount(&server)
            .await;
        // Version-pinned secrets are read one by one (GetSecretValue).
        let names: Vec<String> = (0..30).map(|i| format!("P{i:02}")).collect();
        let all = secrets(
            names
                .iter()
                .map(|n| {
                    let mut s = aws_secret(&format!("pinned/{n}"), None, "us-east-1");
                    s.aws_secrets_manager.as_mut().unwrap().version_stage =
                        Some("AWSCURRENT".into());
                    (n.as_str(), s)
                })
                .collect(),
        );
        let mut options = fast_options();
        options.retry.max_attempts = 6;
        let resolution = resolver(&server.uri(), options)
            .resolve(&all, &Default::default())
            .await
            .expect("throttling is absorbed by backoff");
        assert_eq!(resolution.variables.len(), 30);
        assert_eq!(resolution.report.requests_of("sm_get"), 40);
    })
    .await;
}

#[tokio::test]
async fn in_flight_requests_never_exceed_max_concurrency() {
    bounded(async {
        // Vault: 30 distinct reads, each answered after 40 ms, through a counting proxy.
        let server = vault_mock().await;
        Mock::given(method("GET"))
            .respond_with(kv2(json!({"password": "v"})).set_delay(Duration::from_millis(40)))
            .mount(&server)
            .await;
        let proxy = CountingProxy::start(*server.address()).await;
        let url = proxy.url();
        let token = jwt("aud", "c2ln");
        let names: Vec<String> = (0..30).map(|i| format!("V{i:02}")).collect();
        let all = secrets(
            names
                .iter()
                .map(|n| {
                    (
                        n.as_str(),
                        vault_secret(&url, "secret", &format!("c/{n}"), "password", &token),
                    )
                })
                .collect(),
        );
        let mut options = fast_options();
        options.max_concurrency = 3;
        let mut resolution = resolver(&url, options)
            .resolve(&all, &Default::default())
            .await
            .expect("resolves");
        assert_eq!(resolution.variables.len(), 30);
        // The revoke is off the critical path: counted once closed.
        resolution.close().await;
        let stats = proxy.stats();
        let max = stats.max_in_flight.load(Ordering::SeqCst);
        assert_eq!(
            stats.requests.load(Ordering::SeqCst),
            32,
            "login, 30 reads, revoke"
        );
        assert!(max <= 3, "{max} requests in flight, limit 3");
        assert!(max >= 2, "reads are concurrent ({max})");

        // AWS: 30 version-pinned reads (one GetSecretValue each).
        let aws = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(SmAnswers { value: "v".into() }.clone_delayed())
            .mount(&aws)
            .await;
        let proxy = CountingProxy::start(*aws.address()).await;
        let all = secrets(
            names
                .iter()
                .map(|n| {
                    let mut s = aws_secret(&format!("pinned/{n}"), None, "us-east-1");
                    s.aws_secrets_manager.as_mut().unwrap().version_stage =
                        Some("AWSCURRENT".into());
                    (n.as_str(), s)
                })
                .collect(),
        );
        let mut options = fast_options();
        options.max_concurrency = 3;
        let resolution = resolver(&proxy.url(), options)
            .resolve(&all, &Default::default())
            .await
            .expect("resolves");
        assert_eq!(resolution.variables.len(), 30);
        let max = proxy.stats().max_in_flight.load(Ordering::SeqCst);
        assert!(max <= 3, "{max} AWS requests in flight, limit 3");
        assert!(max >= 2, "AWS reads are concurrent ({max})");
    })
    .await;
}

/// [`SmAnswers`] answering after 40 ms.
struct Delayed(SmAnswers);

impl Respond for Delayed {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.respond(request).set_delay(Duration::from_millis(40))
    }
}

impl SmAnswers {
    fn clone_delayed(self) -> Delayed {
        Delayed(self)
    }
}
