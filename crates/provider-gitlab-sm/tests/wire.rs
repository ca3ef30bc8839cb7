//! Request shapes and faults against a mock OpenBao (wiremock): the inline-auth headers
//! (unpadded base64url, an empty namespace, never a token), one read per distinct path,
//! the validation that sends nothing, classification by `X-Vault-Inline-Auth-Failed`,
//! retries of 5xx and 429, and no JWT or value in any error.

use provider_gitlab_sm::{GitlabSecretsManagerBuilder, encode_parameter, requests::READ};
use secrets_core::{
    Error, ErrorKind, ProviderDescriptor as _, ResolveContext, Resolved, RetryPolicy, Secret,
    SecretProvider, SecretRequest,
};
use serde_json::json;
use std::time::Duration;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJjYW5hcnkiOiJKV1RDQU5BUlkifQ.c2lnbmF0dXJlLWNhbmFyeQ";
const NS: &str = "group_12/project_34";
const VALUE_CANARY: &str = "VALUE-CANARY-7f3a9c";

fn payload(url: &str, name: &str) -> serde_json::Value {
    json!({
        "server": {"url": url, "inline_auth": {
            "path": format!("{NS}/auth/pipeline_jwt/login"), "jwt": JWT, "role": "all_pipelines"}},
        "engine": {"name": "kv-v2", "path": format!("{NS}/secrets/kv")},
        "path": format!("explicit/{name}"),
        "field": "value",
    })
}

fn request(variable: &str, gsm: serde_json::Value) -> SecretRequest {
    let secret: Secret =
        serde_json::from_value(json!({"gitlab_secrets_manager": gsm, "file": false})).unwrap();
    SecretRequest {
        variable: variable.to_owned(),
        secret,
    }
}

fn ctx() -> ResolveContext {
    ResolveContext {
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 3,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        },
        ..ResolveContext::default()
    }
}

async fn resolve(requests: &[SecretRequest], ctx: &ResolveContext) -> Vec<Result<Resolved, Error>> {
    let provider = GitlabSecretsManagerBuilder::new().build().unwrap();
    provider.resolve(requests, ctx).await
}

fn kv2(value: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "data": {"data": {"value": value}, "metadata": {"version": 1}},
        "auth": null,
    }))
}

fn data_path(name: &str) -> String {
    format!("/v1/{NS}/secrets/kv/data/explicit/{name}")
}

fn no_token(request: &Request) -> bool {
    !request.headers.contains_key("x-vault-token")
}

fn error(result: &Result<Resolved, Error>) -> &Error {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

/// Neither the JWT nor its parts nor the value appear in an error.
fn assert_clean(err: &Error) {
    for text in [err.to_string(), format!("{err:?}")] {
        for secret in [JWT, "c2lnbmF0dXJlLWNhbmFyeQ", VALUE_CANARY] {
            assert!(!text.contains(secret), "leak in {text}");
        }
    }
}

#[tokio::test]
async fn one_read_per_distinct_path_with_exact_inline_auth_headers() {
    let server = MockServer::start().await;
    for (name, value) in [("DB", "db-pass"), ("API", "api-key")] {
        Mock::given(method("GET"))
            .and(path(data_path(name)))
            .and(header("x-vault-request", "true"))
            .and(header("x-vault-namespace", ""))
            .and(header(
                "x-vault-inline-auth-path",
                format!("{NS}/auth/pipeline_jwt/login").as_str(),
            ))
            .and(header(
                "x-vault-inline-auth-parameter-jwt",
                encode_parameter("jwt", JWT).as_str(),
            ))
            .and(header(
                "x-vault-inline-auth-parameter-role",
                encode_parameter("role", "all_pipelines").as_str(),
            ))
            .and(no_token)
            .respond_with(kv2(json!(value)))
            .expect(1)
            .mount(&server)
            .await;
    }
    let url = server.uri();
    let requests = [
        request("DB_1", payload(&url, "DB")),
        request("API", payload(&url, "API")),
        request("DB_2", payload(&url, "DB")),
    ];
    let ctx = ctx();
    let results = resolve(&requests, &ctx).await;
    let values: Vec<&str> = results
        .iter()
        .map(|r| r.as_ref().unwrap().value.expose())
        .collect();
    assert_eq!(values, ["db-pass", "api-key", "db-pass"]);
    assert_eq!(ctx.requests.get(READ), 2);
    let secrets: Vec<(&str, &Secret)> = requests
        .iter()
        .map(|r| (r.variable.as_str(), &r.secret))
        .collect();
    let plan = provider_gitlab_sm::DESCRIPTOR.plan(&secrets);
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].reads, 2);
    assert_eq!(plan[0].logins, 0);
    // The parameter headers carry no base64 padding (OpenBao answers 500 to padding).
    for r in server.received_requests().await.unwrap() {
        for h in [
            "x-vault-inline-auth-parameter-jwt",
            "x-vault-inline-auth-parameter-role",
        ] {
            assert!(!r.headers[h].to_str().unwrap().contains('='));
        }
    }
}

#[tokio::test]
async fn missing_inline_auth_parts_are_four_errors_and_no_request() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let gsm = json!({
        "server": {"url": server.uri()},
        "engine": {"name": "kv-v2", "path": format!("{NS}/secrets/kv")},
        "path": "explicit/DB", "field": "value",
    });
    let ctx = ctx();
    let results = resolve(&[request("DB_PASSWORD", gsm)], &ctx).await;
    let err = error(&results[0]);
    assert_eq!(err.kind(), ErrorKind::InvalidSpec);
    assert_eq!(err.variable(), Some("DB_PASSWORD"));
    let text = err.to_string();
    assert_eq!(text.matches("is required").count(), 4, "{text}");
    assert!(err.fix().is_some());
    assert_eq!(ctx.requests.get(READ), 0);
}

#[tokio::test]
async fn failures_are_classified_by_the_inline_auth_failed_header() {
    let server = MockServer::start().await;
    let cases: [(&str, u16, bool, &str, ErrorKind); 5] = [
        (
            "ROLE",
            400,
            true,
            "role \"nope\" could not be found",
            ErrorKind::Unauthenticated,
        ),
        (
            "AUD",
            400,
            true,
            "error validating token: invalid audience (aud) claim",
            ErrorKind::Unauthenticated,
        ),
        (
            "MOUNT",
            403,
            true,
            "permission denied",
            ErrorKind::Unauthenticated,
        ),
        (
            "POLICY",
            403,
            false,
            "1 error occurred:\n\t* permission denied\n\n",
            ErrorKind::PermissionDenied,
        ),
        ("GONE", 404, false, "", ErrorKind::NotFound),
    ];
    for (name, status, failed, message, _) in &cases {
        let errors: Vec<&str> = if message.is_empty() {
            vec![]
        } else {
            vec![*message]
        };
        let mut answer = ResponseTemplate::new(*status).set_body_json(json!({ "errors": errors }));
        if *failed {
            answer = answer.insert_header("x-vault-inline-auth-failed", "true");
        }
        Mock::given(method("GET"))
            .and(path(data_path(name)))
            .respond_with(answer)
            .expect(1)
            .mount(&server)
            .await;
    }
    let requests: Vec<SecretRequest> = cases
        .iter()
        .map(|(name, ..)| request(name, payload(&server.uri(), name)))
        .collect();
    let ctx = ctx();
    let results = resolve(&requests, &ctx).await;
    for ((name, .., kind), result) in cases.iter().zip(&results) {
        let err = error(result);
        assert_eq!(err.kind(), *kind, "{name}: {err}");
        assert_eq!(err.variable(), Some(*name));
        assert!(
            err.to_string().contains(&format!("explicit/{name}")),
            "{err}"
        );
        assert!(err.fix().is_some(), "{name}: no fix");
        assert_clean(err);
    }
    assert!(error(&results[0]).fix().unwrap().contains("all_pipelines"));
    assert!(error(&results[1]).fix().unwrap().contains(&server.uri()));
    assert!(error(&results[2]).fix().unwrap().contains("pipeline_jwt"));
    // Not retried: 4xx are final.
    assert_eq!(ctx.requests.get(READ), 5);
}

#[tokio::test]
async fn field_shapes() {
    let server = MockServer::start().await;
    for (name, value) in [
        ("NUM", json!(12345)),
        ("EMPTY", json!("")),
        ("CANARY", json!(VALUE_CANARY)),
    ] {
        Mock::given(method("GET"))
            .and(path(data_path(name)))
            .respond_with(kv2(value))
            .mount(&server)
            .await;
    }
    let mut other_field = payload(&server.uri(), "CANARY");
    other_field["field"] = json!("nope");
    let requests = [
        request("NUM", payload(&server.uri(), "NUM")),
        request("EMPTY", payload(&server.uri(), "EMPTY")),
        request("OTHER", other_field),
    ];
    let results = resolve(&requests, &ctx()).await;
    let err = error(&results[0]);
    assert_eq!(err.kind(), ErrorKind::InvalidSpec);
    assert!(
        err.to_string()
            .contains("invalid type number (expected string)")
    );
    assert!(!err.to_string().contains("12345"));
    assert_eq!(results[1].as_ref().unwrap().value.expose(), "");
    let err = error(&results[2]);
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_clean(err);
}

#[tokio::test]
async fn server_errors_and_throttling_are_retried_then_succeed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(data_path("DB")))
        .respond_with(
            ResponseTemplate::new(503).set_body_json(json!({"errors": ["Vault is sealed"]})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(data_path("DB")))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({"errors": ["rate limited"]})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(data_path("DB")))
        .respond_with(kv2(json!("after-retries")))
        .mount(&server)
        .await;
    let ctx = ctx();
    let results = resolve(&[request("DB", payload(&server.uri(), "DB"))], &ctx).await;
    assert_eq!(results[0].as_ref().unwrap().value.expose(), "after-retries");
    assert_eq!(ctx.requests.get(READ), 3);
}

#[tokio::test]
async fn a_persistent_5xx_is_a_dependency_failure_quoting_openbao_scrubbed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"errors": [format!("internal error near {JWT}")]})),
        )
        .mount(&server)
        .await;
    let ctx = ctx();
    let results = resolve(&[request("DB", payload(&server.uri(), "DB"))], &ctx).await;
    let err = error(&results[0]);
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        err.to_string().contains("internal error near <redacted>"),
        "{err}"
    );
    assert_clean(err);
    assert_eq!(ctx.requests.get(READ), 3);
}

#[tokio::test]
async fn a_malformed_inline_auth_500_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"errors": [
            "failed to perform inline authentication: failed raw url-safe base64 decoding header value"
        ]})))
        .expect(1)
        .mount(&server)
        .await;
    let ctx = ctx();
    let results = resolve(&[request("DB", payload(&server.uri(), "DB"))], &ctx).await;
    assert_eq!(error(&results[0]).kind(), ErrorKind::Unavailable);
    assert_eq!(ctx.requests.get(READ), 1);
}
