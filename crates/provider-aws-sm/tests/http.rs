//! HTTP-level tests against `wiremock`: the exact requests sent, the answers' mapping,
//! retries, batching and request counts. Nothing here touches the process environment: the
//! host environment is injected with `with_env_vars`.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

mod common;

use common::*;
use provider_aws_sm::{AwsSecretsManagerBuilder, AwsSecretsManagerProvider, NumberFormat};
use secrets_core::{ErrorKind, ResolveContext, Resolved, SecretProvider, SecretRequest};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use wiremock::matchers::{body_partial_json, body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const STATIC_KEY: &str = "AKIDSTATICEXAMPLE";
const STS_KEY: &str = "ASIASTSEXAMPLE";
const SESSION_TOKEN_CANARY: &str = "session-token-canary-55aa";
const SECRET_KEY_CANARY: &str = "secret-key-canary-66bb";
const ROLE: &str = "arn:aws:iam::123456789012:role/gitlab-secrets-role";

fn provider(env: Vec<(String, String)>) -> AwsSecretsManagerProvider {
    AwsSecretsManagerBuilder::new()
        .with_env_vars(env)
        .build()
        .unwrap()
}

/// The host environment of the default-chain tests: static keys, every endpoint on `uri`.
fn static_env(uri: &str) -> Vec<(String, String)> {
    vec![
        ("AWS_ENDPOINT_URL".into(), uri.into()),
        ("AWS_ACCESS_KEY_ID".into(), STATIC_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY_CANARY.into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ]
}

/// A host with no credentials at all (the OIDC path needs none).
fn bare_env(uri: &str) -> Vec<(String, String)> {
    vec![
        ("AWS_ENDPOINT_URL".into(), uri.into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ]
}

fn arn_of(id: &str) -> String {
    if id.starts_with("arn:") {
        id.to_owned()
    } else {
        format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{id}-AbCdEf")
    }
}

fn json_response(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.to_string(), "application/x-amz-json-1.1")
}

fn aws_error(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(
        json!({"__type": code, "message": "service message that must not be shown"}).to_string(),
        "application/x-amz-json-1.1",
    )
}

fn sm_target(op: &str) -> wiremock::matchers::HeaderExactMatcher {
    header("x-amz-target", format!("secretsmanager.{op}").as_str())
}

/// `GetSecretValue` of `id` answering `SecretString` = `value`.
async fn mount_get(server: &MockServer, id: &str, value: &str) {
    Mock::given(method("POST"))
        .and(sm_target("GetSecretValue"))
        .and(body_partial_json(json!({"SecretId": id})))
        .respond_with(json_response(json!({
            "ARN": arn_of(id), "Name": id, "SecretString": value, "VersionId": "v-current",
        })))
        .mount(server)
        .await;
}

/// `BatchGetSecretValue` answering every id in `SecretIdList` from `values`, and an
/// `Errors[]` entry (ResourceNotFoundException) for the others.
async fn mount_batch(server: &MockServer, values: BTreeMap<String, String>) {
    Mock::given(method("POST"))
        .and(sm_target("BatchGetSecretValue"))
        .respond_with(move |req: &Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            let mut found = Vec::new();
            let mut errors = Vec::new();
            for id in body["SecretIdList"].as_array().unwrap() {
                let id = id.as_str().unwrap();
                match values.get(id) {
                    Some(v) => found.push(json!({
                        "ARN": arn_of(id), "Name": id, "SecretString": v, "VersionId": "v1",
                    })),
                    None => errors.push(json!({
                        "SecretId": id, "ErrorCode": "ResourceNotFoundException",
                        "Message": "Secrets Manager can't find the specified secret.",
                    })),
                }
            }
            json_response(json!({"SecretValues": found, "Errors": errors}))
        })
        .mount(server)
        .await;
}

/// STS `AssumeRoleWithWebIdentity` answering temporary credentials.
async fn mount_sts(server: &MockServer) {
    Mock::given(method("POST"))
        .and(body_string_contains("Action=AssumeRoleWithWebIdentity"))
        .respond_with(sts_credentials())
        .mount(server)
        .await;
}

fn sts_credentials() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(
        format!(
            r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>{STS_KEY}</AccessKeyId>
      <SecretAccessKey>{SECRET_KEY_CANARY}</SecretAccessKey>
      <SessionToken>{SESSION_TOKEN_CANARY}</SessionToken>
      <Expiration>2100-01-01T00:00:00Z</Expiration>
    </Credentials>
    <SubjectFromWebIdentityToken>project_path:mygroup/myproject:ref_type:branch:ref:main</SubjectFromWebIdentityToken>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#
        ),
        "text/xml",
    )
}

/// Decodes an `application/x-www-form-urlencoded` body.
fn form(body: &[u8]) -> BTreeMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }
    std::str::from_utf8(body)
        .unwrap()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

async fn requests_with_target(server: &MockServer, op: &str) -> Vec<Request> {
    let target = format!("secretsmanager.{op}");
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| {
            r.headers
                .get("x-amz-target")
                .is_some_and(|v| v.to_str().unwrap() == target)
        })
        .collect()
}

async fn sts_requests(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("Action=AssumeRoleWithWebIdentity"))
        .collect()
}

fn json_body(r: &Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn authorization(r: &Request) -> String {
    r.headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn resolve(
    provider: &AwsSecretsManagerProvider,
    requests: &[SecretRequest],
    ctx: &ResolveContext,
) -> Vec<Result<Resolved, secrets_core::Error>> {
    provider.resolve(requests, ctx).await
}

fn value(result: &Result<Resolved, secrets_core::Error>) -> &str {
    match result {
        Ok(r) => r.value.expose(),
        Err(e) => panic!("expected a value, got {e}"),
    }
}

fn error(result: &Result<Resolved, secrets_core::Error>) -> &secrets_core::Error {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------
// The OIDC path: the exact STS request.

#[tokio::test]
async fn sts_request_is_the_runners_unsigned_form() {
    let server = MockServer::start().await;
    mount_sts(&server).await;
    mount_get(&server, "app-secrets/database", r#"{"password":"db-pass"}"#).await;
    let token = job_token();
    let ctx = ctx();
    let results = resolve(
        &provider(bare_env(&server.uri())),
        &[request(
            "DATABASE_PASSWORD",
            with_field(
                aws_oidc("app-secrets/database", "us-east-1", ROLE, &token),
                "password",
            ),
        )],
        &ctx,
    )
    .await;
    assert_eq!(value(&results[0]), "db-pass");

    let sts = sts_requests(&server).await;
    assert_eq!(sts.len(), 1);
    let sts = &sts[0];
    assert!(
        sts.headers.get("authorization").is_none(),
        "the STS call is unsigned"
    );
    assert!(sts.headers.get("x-amz-security-token").is_none());
    let params = form(&sts.body);
    let expected: BTreeMap<String, String> = [
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", ROLE),
        ("RoleSessionName", "1001-42-gitlab.example.com"),
        ("WebIdentityToken", token.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(params, expected, "no DurationSeconds, no policy, no tags");

    let gets = requests_with_target(&server, "GetSecretValue").await;
    assert_eq!(gets.len(), 1);
    let auth = authorization(&gets[0]);
    assert!(auth.contains(&format!("Credential={STS_KEY}/")), "{auth}");
    assert!(
        auth.contains("/us-east-1/secretsmanager/aws4_request"),
        "{auth}"
    );
    assert_eq!(
        gets[0].headers.get("x-amz-security-token").unwrap(),
        SESSION_TOKEN_CANARY
    );
    assert_eq!(
        ctx.requests.get(provider_aws_sm::requests::STS_ASSUME_ROLE),
        1
    );
    assert_eq!(ctx.requests.get(provider_aws_sm::requests::SM_GET), 1);
}

#[tokio::test]
async fn service_specific_endpoints_apply_on_the_oidc_path() {
    let sts_server = MockServer::start().await;
    let sm_server = MockServer::start().await;
    mount_sts(&sts_server).await;
    mount_get(&sm_server, "s", "v").await;
    let env = vec![
        ("AWS_ENDPOINT_URL_STS".into(), sts_server.uri()),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER".into(), sm_server.uri()),
        ("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:9".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
    let results = resolve(
        &provider(env),
        &[request("V", aws_oidc("s", "us-east-1", ROLE, &job_token()))],
        &ctx(),
    )
    .await;
    assert_eq!(value(&results[0]), "v");
    assert_eq!(sts_requests(&sts_server).await.len(), 1);
    assert_eq!(
        requests_with_target(&sm_server, "GetSecretValue")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn sts_refusal_shows_aud_sub_role_and_trust_policy_conditions() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("Action=AssumeRoleWithWebIdentity"))
        .respond_with(ResponseTemplate::new(403).set_body_raw(
            r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error><RequestId>r</RequestId></ErrorResponse>"#,
            "text/xml",
        ))
        .mount(&server)
        .await;
    let ctx = ctx();
    let token = job_token();
    let results = resolve(
        &provider(bare_env(&server.uri())),
        &[
            request("A", aws_oidc("a", "us-east-1", ROLE, &token)),
            request("B", aws_oidc("b", "us-east-1", ROLE, &token)),
        ],
        &ctx,
    )
    .await;
    for (result, variable) in results.iter().zip(["A", "B"]) {
        let err = error(result);
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        assert!(!err.is_retryable());
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{variable} (aws_secrets_manager ")),
            "{text}"
        );
        assert!(text.contains(ROLE), "{text}");
        assert!(text.contains("AccessDenied"), "{text}");
        assert!(text.contains("aud sts.amazonaws.com"), "{text}");
        assert!(
            text.contains("sub project_path:mygroup/myproject:ref_type:branch:ref:main"),
            "{text}"
        );
        assert!(text.contains("\"gitlab.example.com:aud\""), "{text}");
        assert!(text.contains("\"gitlab.example.com:sub\""), "{text}");
        assert!(text.contains("StringEquals"), "{text}");
        assert!(!text.contains(TOKEN_CANARY), "{text}");
        assert!(
            !text.contains("Not authorized"),
            "no raw service message: {text}"
        );
    }
    assert_eq!(
        ctx.requests.get(provider_aws_sm::requests::STS_ASSUME_ROLE),
        1,
        "one STS call per identity"
    );
    assert_eq!(ctx.requests.get(provider_aws_sm::requests::SM_GET), 0);
}

#[tokio::test]
async fn unreadable_tokens_fail_before_any_request() {
    // Expiry is checked once, by the resolver, with the resolution's clock (see
    // secrets-resolver's request_counts tests); an empty or malformed token fails here.
    let server = MockServer::start().await;
    let ctx = ctx();
    let results = resolve(
        &provider(bare_env(&server.uri())),
        &[
            request("EMPTY", aws_oidc("s", "us-east-1", ROLE, "")),
            request(
                "GARBAGE",
                aws_oidc("s", "us-east-1", ROLE, "not-a-jwt-canary"),
            ),
        ],
        &ctx,
    )
    .await;
    for r in &results {
        let err = error(r);
        assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
        assert!(!err.to_string().contains("canary"), "{err}");
    }
    assert!(error(&results[0]).to_string().contains("empty"));
    assert!(server.received_requests().await.unwrap().is_empty());
    assert_eq!(ctx.requests.total(), 0);
}

#[tokio::test]
async fn jwt_without_role_fails_with_zero_requests() {
    let server = MockServer::start().await;
    let ctx = ctx();
    let mut s = aws("s", "us-east-1");
    s.server.jwt = job_token().into();
    let results = resolve(
        &provider(static_env(&server.uri())),
        &[request("V", s)],
        &ctx,
    )
    .await;
    let err = error(&results[0]);
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert_eq!(
        err.message(),
        "Role ARN is required when using JWT for AWS authentication"
    );
    assert!(err.fix().unwrap().contains("AWS_ROLE_ARN"));
    assert!(err.fix().unwrap().contains("AWS_ID_TOKEN"));
    assert!(server.received_requests().await.unwrap().is_empty());
    assert_eq!(ctx.requests.total(), 0);
}

// ---------------------------------------------------------------------------------------
// Secrets Manager requests.

#[tokio::test]
async fn get_secret_value_bodies_and_targets() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(sm_target("GetSecretValue"))
        .respond_with(json_response(json!({"Name": "x", "SecretString": "v"})))
        .mount(&server)
        .await;
    let mut by_id = aws("prod-app-secrets/database", "us-east-1");
    by_id.version_id = Some("01234567-89ab-cdef-0123-456789abcdef".into());
    let mut by_stage = aws("prod-app-secrets/database", "us-east-1");
    by_stage.version_stage = Some("AWSCURRENT".into());
    let mut empty_versions = aws("plain", "us-east-1");
    empty_versions.version_id = Some(String::new());
    empty_versions.version_stage = Some(String::new());
    let cross = "arn:aws:secretsmanager:us-east-1:987654321098:secret:shared-api-keys-AbCdEf";
    let p = provider(static_env(&server.uri()));
    for (secret, expected) in [
        (
            by_id,
            json!({"SecretId": "prod-app-secrets/database",
                   "VersionId": "01234567-89ab-cdef-0123-456789abcdef"}),
        ),
        (
            by_stage,
            json!({"SecretId": "prod-app-secrets/database", "VersionStage": "AWSCURRENT"}),
        ),
        (empty_versions, json!({"SecretId": "plain"})),
        (aws(cross, "us-east-1"), json!({"SecretId": cross})),
    ] {
        server.reset().await;
        Mock::given(method("POST"))
            .and(sm_target("GetSecretValue"))
            .respond_with(json_response(json!({"Name": "x", "SecretString": "v"})))
            .mount(&server)
            .await;
        let results = resolve(&p, &[request("V", secret)], &ctx()).await;
        assert_eq!(value(&results[0]), "v");
        let gets = requests_with_target(&server, "GetSecretValue").await;
        assert_eq!(gets.len(), 1);
        assert_eq!(
            json_body(&gets[0]),
            expected,
            "empty strings are sent as absent"
        );
        assert_eq!(
            gets[0].headers.get("content-type").unwrap(),
            "application/x-amz-json-1.1"
        );
        let auth = authorization(&gets[0]);
        assert!(auth.starts_with("AWS4-HMAC-SHA256 "), "{auth}");
        assert!(
            auth.contains(&format!("Credential={STATIC_KEY}/")),
            "{auth}"
        );
    }
}

#[tokio::test]
async fn per_secret_region_is_in_the_sigv4_scope() {
    let server = MockServer::start().await;
    mount_get(&server, "eu-app-secrets/database", r#"{"password":"eu"}"#).await;
    mount_get(&server, "us-app-secrets/database", r#"{"password":"us"}"#).await;
    let mut eu = with_field(aws("eu-app-secrets/database", "us-east-1"), "password");
    eu.region = Some("eu-west-1".into());
    let us = with_field(aws("us-app-secrets/database", "us-east-1"), "password");
    let p = AwsSecretsManagerBuilder::new()
        .with_env_vars(static_env(&server.uri()))
        .with_batching(false)
        .build()
        .unwrap();
    let results = resolve(&p, &[request("EU", eu), request("US", us)], &ctx()).await;
    assert_eq!(value(&results[0]), "eu");
    assert_eq!(value(&results[1]), "us");
    for r in requests_with_target(&server, "GetSecretValue").await {
        let id = json_body(&r)["SecretId"].as_str().unwrap().to_owned();
        let region = if id.starts_with("eu-") {
            "eu-west-1"
        } else {
            "us-east-1"
        };
        let auth = authorization(&r);
        assert!(
            auth.contains(&format!("/{region}/secretsmanager/aws4_request")),
            "{id}: {auth}"
        );
    }
}

#[tokio::test]
async fn the_arn_region_is_called_and_noted() {
    let server = MockServer::start().await;
    let arn = "arn:aws:secretsmanager:eu-west-1:987654321098:secret:shared-api-keys-AbCdEf";
    mount_get(&server, arn, r#"{"production_key":"k"}"#).await;
    let results = resolve(
        &provider(static_env(&server.uri())),
        &[request(
            "K",
            with_field(aws(arn, "us-east-1"), "production_key"),
        )],
        &ctx(),
    )
    .await;
    let resolved = results[0].as_ref().unwrap();
    assert_eq!(resolved.value.expose(), "k");
    assert_eq!(resolved.notes.len(), 1);
    assert!(
        resolved.notes[0].contains("eu-west-1"),
        "{:?}",
        resolved.notes
    );
    let gets = requests_with_target(&server, "GetSecretValue").await;
    assert!(authorization(&gets[0]).contains("/eu-west-1/secretsmanager/aws4_request"));
}

#[tokio::test]
async fn retries_5xx_and_throttling_then_succeeds() {
    for failure in [
        aws_error(500, "InternalServiceError"),
        aws_error(400, "ThrottlingException"),
        ResponseTemplate::new(503),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(sm_target("GetSecretValue"))
            .respond_with(failure)
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        mount_get(&server, "flaky", "ok").await;
        let ctx = ctx();
        let results = resolve(
            &provider(static_env(&server.uri())),
            &[request("V", aws("flaky", "us-east-1"))],
            &ctx,
        )
        .await;
        assert_eq!(value(&results[0]), "ok");
        assert_eq!(
            ctx.requests.get(provider_aws_sm::requests::SM_GET),
            2,
            "each attempt is counted"
        );
    }
}

#[tokio::test]
async fn persistent_5xx_is_unavailable_after_every_attempt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(aws_error(500, "InternalServiceError"))
        .mount(&server)
        .await;
    let ctx = ctx();
    let results = resolve(
        &provider(static_env(&server.uri())),
        &[request("V", aws("down", "us-east-1"))],
        &ctx,
    )
    .await;
    let err = error(&results[0]);
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_retryable());
    assert!(
        err.to_string()
            .contains("GetSecretValue in us-east-1 failed: InternalServiceError (HTTP 500)"),
        "{err}"
    );
    assert_eq!(ctx.requests.get(provider_aws_sm::requests::SM_GET), 3);
}

#[tokio::test]
async fn configuration_errors_are_not_retried() {
    for (code, kind) in [
        ("ResourceNotFoundException", ErrorKind::NotFound),
        ("AccessDeniedException", ErrorKind::PermissionDenied),
        ("DecryptionFailure", ErrorKind::PermissionDenied),
        ("InvalidRequestException", ErrorKind::InvalidSpec),
        ("InvalidParameterException", ErrorKind::InvalidSpec),
        ("ValidationException", ErrorKind::InvalidSpec),
        ("UnrecognizedClientException", ErrorKind::Unauthenticated),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(aws_error(400, code))
            .mount(&server)
            .await;
        let ctx = ctx();
        let results = resolve(
            &provider(static_env(&server.uri())),
            &[request(
                "DB_PASSWORD",
                aws("app-secrets/database", "us-east-1"),
            )],
            &ctx,
        )
        .await;
        let err = error(&results[0]);
        assert_eq!(err.kind(), kind, "{code}: {err}");
        assert!(!err.is_retryable(), "{code}");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "DB_PASSWORD (aws_secrets_manager app-secrets/database in us-east-1): "
            ),
            "{text}"
        );
        assert!(text.contains(code), "{text}");
        assert!(!text.contains("service message"), "{text}");
        assert_eq!(
            ctx.requests.get(provider_aws_sm::requests::SM_GET),
            1,
            "{code}"
        );
    }
}

#[tokio::test]
async fn attempts_time_out_and_are_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            json_response(json!({"SecretString": "late"})).set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let mut ctx = ctx();
    ctx.request_timeout = Duration::from_millis(200);
    ctx.retry.max_attempts = 2;
    let results = resolve(
        &provider(static_env(&server.uri())),
        &[request("V", aws("slow", "us-east-1"))],
        &ctx,
    )
    .await;
    let err = error(&results[0]);
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(ctx.requests.get(provider_aws_sm::requests::SM_GET), 2);
}

// ---------------------------------------------------------------------------------------
// Batching.

#[tokio::test]
async fn batch_errors_map_to_their_secret() {
    let server = MockServer::start().await;
    mount_batch(
        &server,
        BTreeMap::from([
            (
                "app-secrets/database".to_owned(),
                r#"{"password":"p","username":"u"}"#.to_owned(),
            ),
            (
                "app-secrets/api".to_owned(),
                r#"{"api_key":"k"}"#.to_owned(),
            ),
        ]),
    )
    .await;
    let ctx = ctx();
    let results = resolve(
        &provider(static_env(&server.uri())),
        &[
            request(
                "PASSWORD",
                with_field(aws("app-secrets/database", "us-east-1"), "password"),
            ),
            request(
                "USER",
                with_field(aws("app-secrets/database", "us-east-1"), "username"),
            ),
            request("MISSING", aws("app-secrets/missing", "us-east-1")),
            request(
                "API_KEY",
                with_field(aws("app-secrets/api", "us-east-1"), "api_key"),
            ),
        ],
        &ctx,
    )
    .await;
    assert_eq!(value(&results[0]), "p");
    assert_eq!(value(&results[1]), "u");
    let err = error(&results[2]);
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().starts_with("MISSING (aws_secrets_manager app-secrets/missing in us-east-1): BatchGetSecretValue in us-east-1 failed: ResourceNotFoundException"), "{err}");
    assert_eq!(value(&results[3]), "k");

    let batches = requests_with_target(&server, "BatchGetSecretValue").await;
    assert_eq!(batches.len(), 1);
    assert_eq!(
        json_body(&batches[0]),
        json!({"SecretIdList": ["app-secrets/database", "app-secrets/missing", "app-secrets/api"]}),
        "distinct ids only"
    );
    assert_eq!(ctx.requests.get(provider_aws_sm::requests::SM_BATCH_GET), 1);
    assert_eq!(ctx.requests.get(provider_aws_sm::requests::SM_GET), 0);
}

#[tokio::test]
async fn denied_batch_falls_back_to_single_reads() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(sm_target("BatchGetSecretValue"))
        .respond_with(aws_error(400, "AccessDeniedException"))
        .mount(&server)
        .await;
    mount_get(&server, "a", "va").await;
    mount_get(&server, "b", "vb").await;
    let ctx = ctx();
    let results = resolve(
        &provider(static_env(&server.uri())),
        &[
            request("A", aws("a", "us-east-1")),
            request("B", aws("b", "us-east-1")),
        ],
        &ctx,
    )
    .await;
    assert_eq!(value(&results[0]), "va");
    assert_eq!(value(&results[1]), "vb");
    let notes = &results[0].as_ref().unwrap().notes;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("BatchGetSecretValue was refused")),
        "{notes:?}"
    );
    assert_eq!(ctx.requests.get(provider_aws_sm::requests::SM_BATCH_GET), 1);
    assert_eq!(ctx.requests.get(provider_aws_sm::requests::SM_GET), 2);
}

#[tokio::test]
async fn ids_left_out_of_a_batch_answer_are_read_alone() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(sm_target("BatchGetSecretValue"))
        .respond_with(json_response(json!({"SecretValues": [
            {"ARN": arn_of("a"), "Name": "a", "SecretString": "va"}
        ], "Errors": []})))
        .mount(&server)
        .await;
    mount_get(&server, "b", "vb").await;
    let ctx = ctx();
    let results = resolve(
        &provider(static_env(&server.uri())),
        &[
            request("A", aws("a", "us-east-1")),
            request("B", aws("b", "us-east-1")),
        ],
        &ctx,
    )
    .await;
    assert_eq!(value(&results[0]), "va");
    assert_eq!(value(&results[1]), "vb");
    assert_eq!(ctx.requests.get(provider_aws_sm::requests::SM_GET), 1);
}

#[tokio::test]
async fn thirty_secrets_one_role_cost_one_sts_call_and_two_batches() {
    let server = MockServer::start().await;
    mount_sts(&server).await;
    let values: BTreeMap<String, String> = (0..30)
        .map(|i| {
            (
                format!("bulk/{i:02}"),
                format!(r#"{{"value":"bulk-value-{i:02}"}}"#),
            )
        })
        .collect();
    mount_batch(&server, values).await;
    let token = job_token();
    let requests: Vec<SecretRequest> = (0..30)
        .map(|i| {
            request(
                &format!("BULK_{i:02}"),
                with_field(
                    aws_oidc(&format!("bulk/{i:02}"), "us-east-1", ROLE, &token),
                    "value",
                ),
            )
        })
        .collect();
    let ctx = ctx();
    let results = resolve(&provider(bare_env(&server.uri())), &requests, &ctx).await;
    for (i, r) in results.iter().enumerate() {
        assert_eq!(value(r), format!("bulk-value-{i:02}"));
    }
    assert_eq!(
        ctx.requests.get(provider_aws_sm::requests::STS_ASSUME_ROLE),
        1
    );
    assert_eq!(ctx.requests.get(provider_aws_sm::requests::SM_BATCH_GET), 2);
    assert_eq!(ctx.requests.get(provider_aws_sm::requests::SM_GET), 0);
    let mut sizes: Vec<usize> = requests_with_target(&server, "BatchGetSecretValue")
        .await
        .iter()
        .map(|r| json_body(r)["SecretIdList"].as_array().unwrap().len())
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [10, 20]);
}

#[tokio::test]
async fn two_identities_cost_two_sts_calls() {
    let server = MockServer::start().await;
    mount_sts(&server).await;
    mount_get(&server, "eu-app-secrets/database", r#"{"password":"eu"}"#).await;
    mount_get(&server, "us-app-secrets/database", r#"{"password":"us"}"#).await;
    mount_get(&server, "app-secrets/api", r#"{"api_key":"k"}"#).await;
    let job = job_token();
    let eu_token = token(
        "sts.amazonaws.com",
        "project_path:mygroup/myproject:ref_type:branch:ref:main",
        4_102_444_801,
    );
    let mut eu = with_field(
        aws_oidc("eu-app-secrets/database", "us-east-1", ROLE, &eu_token),
        "password",
    );
    eu.region = Some("eu-west-1".into());
    eu.role_arn = Some("arn:aws:iam::123456789012:role/eu-deployment-role".into());
    eu.role_session_name = Some("gitlab-eu-deployment".into());
    let us = with_field(
        aws_oidc("us-app-secrets/database", "us-east-1", ROLE, &job),
        "password",
    );
    let api = with_field(
        aws_oidc("app-secrets/api", "us-east-1", ROLE, &job),
        "api_key",
    );
    let p = AwsSecretsManagerBuilder::new()
        .with_env_vars(bare_env(&server.uri()))
        .with_batching(false)
        .build()
        .unwrap();
    let ctx = ctx();
    let results = resolve(
        &p,
        &[request("EU", eu), request("US", us), request("API", api)],
        &ctx,
    )
    .await;
    assert_eq!(value(&results[0]), "eu");
    assert_eq!(value(&results[1]), "us");
    assert_eq!(value(&results[2]), "k");
    assert_eq!(
        ctx.requests.get(provider_aws_sm::requests::STS_ASSUME_ROLE),
        2
    );
    let sts = sts_requests(&server).await;
    let mut roles: Vec<(String, String)> = sts
        .iter()
        .map(|r| {
            let f = form(&r.body);
            (f["RoleArn"].clone(), f["RoleSessionName"].clone())
        })
        .collect();
    roles.sort();
    assert_eq!(
        roles,
        [
            (
                "arn:aws:iam::123456789012:role/eu-deployment-role".to_owned(),
                "gitlab-eu-deployment".to_owned()
            ),
            (ROLE.to_owned(), "1001-42-gitlab.example.com".to_owned()),
        ]
    );
    // STS is called in each identity's region.
    let eu_get = requests_with_target(&server, "GetSecretValue")
        .await
        .into_iter()
        .find(|r| json_body(r)["SecretId"] == "eu-app-secrets/database")
        .unwrap();
    assert!(authorization(&eu_get).contains("/eu-west-1/secretsmanager/aws4_request"));
}

// ---------------------------------------------------------------------------------------
// The runner's AWS checklist (runner-semantics §8).

#[tokio::test]
async fn runner_checklist_values_and_fields() {
    let server = MockServer::start().await;
    let answers: &[(&str, Value)] = &[
        ("string", json!({"SecretString": "plain text"})),
        ("date", json!({"SecretString": r#"{"Date":"2020-08-24"}"#})),
        ("hello", json!({"SecretBinary": "aGVsbG8gd29ybGQ="})),
        ("bytes", json!({"SecretBinary": "AP8QIH8="})),
        ("novalue", json!({"Name": "novalue"})),
        (
            "numbers",
            json!({"SecretString": r#"{"n":3,"answer":42,"big":1000000,"off":false,"obj":{"a":1},"arr":[1],"nul":null}"#}),
        ),
        ("invalid", json!({"SecretString": "not json at all"})),
        ("quoted", json!({"SecretString": "\"ok\""})),
    ];
    for (id, body) in answers {
        Mock::given(method("POST"))
            .and(sm_target("GetSecretValue"))
            .and(body_partial_json(json!({"SecretId": id})))
            .respond_with(json_response(body.clone()))
            .mount(&server)
            .await;
    }
    let p = AwsSecretsManagerBuilder::new()
        .with_env_vars(static_env(&server.uri()))
        .with_batching(false)
        .build()
        .unwrap();
    let cases = [
        request("STRING", aws("string", "us-east-1")),
        request("DATE", with_field(aws("date", "us-east-1"), "Date")),
        request("HELLO", aws("hello", "us-east-1")),
        request("BYTES", aws("bytes", "us-east-1")),
        request("NOVALUE", aws("novalue", "us-east-1")),
        request("N", with_field(aws("numbers", "us-east-1"), "n")),
        request("ANSWER", with_field(aws("numbers", "us-east-1"), "answer")),
        request("BIG", with_field(aws("numbers", "us-east-1"), "big")),
        request("OFF", with_field(aws("numbers", "us-east-1"), "off")),
        request("OBJ", with_field(aws("numbers", "us-east-1"), "obj")),
        request("ARR", with_field(aws("numbers", "us-east-1"), "arr")),
        request("NUL", with_field(aws("numbers", "us-east-1"), "nul")),
        request("MISSING", with_field(aws("date", "us-east-1"), "Nope")),
        request("INVALID", with_field(aws("invalid", "us-east-1"), "f")),
        request("BINFIELD", with_field(aws("hello", "us-east-1"), "f")),
        request("QUOTED", aws("quoted", "us-east-1")),
    ];
    let ctx = ctx();
    let r = resolve(&p, &cases, &ctx).await;
    assert_eq!(value(&r[0]), "plain text");
    assert_eq!(value(&r[1]), "2020-08-24");
    assert_eq!(value(&r[2]), "aGVsbG8gd29ybGQ=");
    assert_eq!(value(&r[3]), "AP8QIH8=");
    assert_eq!(error(&r[4]).message(), "secret contains no value");
    assert_eq!(value(&r[5]), "3");
    assert_eq!(value(&r[6]), "42");
    assert_eq!(
        value(&r[7]),
        "1000000",
        "the JSON literal, not the runner's 1e+06"
    );
    assert_eq!(value(&r[8]), "false");
    for (i, field) in [(9, "obj"), (10, "arr"), (11, "nul")] {
        assert_eq!(
            error(&r[i]).message(),
            format!(
                "key '{field}' in aws secrets manager response for secret 'numbers' is not a string, number or boolean"
            )
        );
    }
    let missing = error(&r[12]);
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    assert_eq!(
        missing.message(),
        "key 'Nope' not found in AWS Secrets Manager response for secret 'date'"
    );
    assert!(
        error(&r[13])
            .message()
            .starts_with("failed to parse JSON for secret 'invalid'")
    );
    assert!(!error(&r[13]).to_string().contains("not json at all"));
    assert!(
        error(&r[14])
            .message()
            .starts_with("failed to parse JSON for secret 'hello'")
    );
    assert_eq!(value(&r[15]), "\"ok\"");
    // One GetSecretValue per distinct secret (8 for 16 variables): `numbers` serves seven
    // variables, `date` and `hello` two each.
    assert_eq!(ctx.requests.get(provider_aws_sm::requests::SM_GET), 8);
}

#[tokio::test]
async fn runner_float_format_is_opt_in() {
    let server = MockServer::start().await;
    mount_get(&server, "json/mixed", r#"{"big":1000000,"float":1.5}"#).await;
    let p = AwsSecretsManagerBuilder::new()
        .with_env_vars(static_env(&server.uri()))
        .with_number_format(NumberFormat::RunnerFloat)
        .build()
        .unwrap();
    let r = resolve(
        &p,
        &[
            request("BIG", with_field(aws("json/mixed", "us-east-1"), "big")),
            request("FLOAT", with_field(aws("json/mixed", "us-east-1"), "float")),
        ],
        &ctx(),
    )
    .await;
    assert_eq!(value(&r[0]), "1e+06");
    assert_eq!(value(&r[1]), "1.5");
}

#[tokio::test]
async fn id_and_stage_conflict_is_rejected_locally() {
    let server = MockServer::start().await;
    let mut both = aws("prod-app-secrets/database", "us-east-1");
    both.version_id = Some("01234567-89ab-cdef-0123-456789abcdef".into());
    both.version_stage = Some("AWSCURRENT".into());
    let ctx = ctx();
    let r = resolve(
        &provider(static_env(&server.uri())),
        &[request("V", both)],
        &ctx,
    )
    .await;
    let err = error(&r[0]);
    assert_eq!(err.kind(), ErrorKind::InvalidSpec);
    assert!(
        err.message().contains("version_id and version_stage"),
        "{err}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
    assert_eq!(ctx.requests.total(), 0);
}

// ---------------------------------------------------------------------------------------
// The ways to get credentials (seed 003).

#[tokio::test]
async fn shared_profile_file() {
    let server = MockServer::start().await;
    mount_get(&server, "s", "v").await;
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    let config = dir.path().join("config");
    std::fs::write(
        &credentials,
        "[default]\naws_access_key_id = AKIDDEFAULTPROFILE\naws_secret_access_key = x\n\
         [ci]\naws_access_key_id = AKIDCIPROFILE\naws_secret_access_key = profile-secret\n",
    )
    .unwrap();
    std::fs::write(&config, "[profile ci]\nregion = eu-central-1\n").unwrap();
    let env = vec![
        ("AWS_ENDPOINT_URL".into(), server.uri()),
        (
            "AWS_SHARED_CREDENTIALS_FILE".into(),
            credentials.display().to_string(),
        ),
        ("AWS_CONFIG_FILE".into(), config.display().to_string()),
        ("AWS_PROFILE".into(), "ci".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
    let r = resolve(
        &provider(env),
        &[request("V", aws("s", "us-east-1"))],
        &ctx(),
    )
    .await;
    assert_eq!(value(&r[0]), "v");
    let auth = authorization(&requests_with_target(&server, "GetSecretValue").await[0]);
    assert!(auth.contains("Credential=AKIDCIPROFILE/"), "{auth}");
    assert!(
        auth.contains("/us-east-1/secretsmanager/"),
        "AWS_REGION wins over the profile: {auth}"
    );
}

#[tokio::test]
async fn web_identity_token_file_irsa() {
    let server = MockServer::start().await;
    mount_sts(&server).await;
    mount_get(&server, "s", "v").await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let irsa_token = token(
        "sts.amazonaws.com",
        "system:serviceaccount:ci:runner",
        4_102_444_800,
    );
    std::fs::write(&token_file, &irsa_token).unwrap();
    let env = vec![
        ("AWS_ENDPOINT_URL".into(), server.uri()),
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE".into(),
            token_file.display().to_string(),
        ),
        (
            "AWS_ROLE_ARN".into(),
            "arn:aws:iam::123456789012:role/irsa-runner".into(),
        ),
        ("AWS_ROLE_SESSION_NAME".into(), "irsa-session".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
    let ctx = ctx();
    let r = resolve(&provider(env), &[request("V", aws("s", "us-east-1"))], &ctx).await;
    assert_eq!(value(&r[0]), "v");
    let sts = sts_requests(&server).await;
    assert_eq!(sts.len(), 1);
    let params = form(&sts[0].body);
    assert_eq!(
        params["RoleArn"],
        "arn:aws:iam::123456789012:role/irsa-runner"
    );
    assert_eq!(params["RoleSessionName"], "irsa-session");
    assert_eq!(params["WebIdentityToken"], irsa_token);
    let auth = authorization(&requests_with_target(&server, "GetSecretValue").await[0]);
    assert!(auth.contains(&format!("Credential={STS_KEY}/")), "{auth}");
    // aws-config's own STS call is not ours to count.
    assert_eq!(
        ctx.requests.get(provider_aws_sm::requests::STS_ASSUME_ROLE),
        0
    );
}

#[tokio::test]
async fn instance_profile_through_imds() {
    let imds = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/latest/api/token"))
        .and(header("x-aws-ec2-metadata-token-ttl-seconds", "21600"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("imds-session-token")
                .insert_header("x-aws-ec2-metadata-token-ttl-seconds", "21600"),
        )
        .mount(&imds)
        .await;
    Mock::given(method("GET"))
        .and(path("/latest/meta-data/iam/security-credentials/"))
        .and(header("x-aws-ec2-metadata-token", "imds-session-token"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ci-runner-role"))
        .mount(&imds)
        .await;
    Mock::given(method("GET"))
        .and(path(
            "/latest/meta-data/iam/security-credentials/ci-runner-role",
        ))
        .and(header("x-aws-ec2-metadata-token", "imds-session-token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(
                json!({
                    "Code": "Success",
                    "LastUpdated": "2026-01-01T00:00:00Z",
                    "Type": "AWS-HMAC",
                    "AccessKeyId": "ASIAIMDSEXAMPLE",
                    "SecretAccessKey": "imds-secret",
                    "Token": "imds-token",
                    "Expiration": "2100-01-01T00:00:00Z",
                })
                .to_string(),
            ),
        )
        .mount(&imds)
        .await;
    let server = MockServer::start().await;
    mount_get(&server, "s", "v").await;
    let env = vec![
        ("AWS_ENDPOINT_URL".into(), server.uri()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT".into(), imds.uri()),
    ];
    let r = resolve(
        &provider(env),
        &[request("V", aws("s", "us-east-1"))],
        &ctx(),
    )
    .await;
    assert_eq!(value(&r[0]), "v");
    let get = &requests_with_target(&server, "GetSecretValue").await[0];
    assert!(authorization(get).contains("Credential=ASIAIMDSEXAMPLE/"));
    assert_eq!(
        get.headers.get("x-amz-security-token").unwrap(),
        "imds-token"
    );
}

#[tokio::test]
async fn no_credentials_is_a_configuration_error_without_requests() {
    let server = MockServer::start().await;
    let ctx = ctx();
    let r = resolve(
        &provider(bare_env(&server.uri())),
        &[request("V", aws("s", "us-east-1"))],
        &ctx,
    )
    .await;
    let err = error(&r[0]);
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("cannot load AWS credentials for region us-east-1"),
        "{text}"
    );
    assert!(text.contains("runner manager"), "{text}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------
// Hygiene.

#[tokio::test]
async fn canaries_never_show_in_errors_or_results() {
    const VALUE_CANARY: &str = "value-canary-0123";
    let server = MockServer::start().await;
    mount_get(
        &server,
        "json",
        &format!(r#"{{"ok":"{VALUE_CANARY}","obj":{{"k":"{VALUE_CANARY}"}}}}"#),
    )
    .await;
    mount_get(&server, "text", &format!("{VALUE_CANARY} not json")).await;
    Mock::given(method("POST"))
        .and(sm_target("GetSecretValue"))
        .and(body_partial_json(json!({"SecretId": "gone"})))
        .respond_with(ResponseTemplate::new(400).set_body_raw(
            json!({"__type": "ResourceNotFoundException", "message": VALUE_CANARY}).to_string(),
            "application/x-amz-json-1.1",
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("Action=AssumeRoleWithWebIdentity"))
        .respond_with(ResponseTemplate::new(400).set_body_raw(
            format!(r#"<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>{VALUE_CANARY}</Message></Error></ErrorResponse>"#),
            "text/xml",
        ))
        .mount(&server)
        .await;
    let token = job_token();
    let p = AwsSecretsManagerBuilder::new()
        .with_env_vars(static_env(&server.uri()))
        .with_batching(false)
        .build()
        .unwrap();
    let r = resolve(
        &p,
        &[
            request("OK", with_field(aws("json", "us-east-1"), "ok")),
            request("OBJ", with_field(aws("json", "us-east-1"), "obj")),
            request("MISSING", with_field(aws("json", "us-east-1"), "nope")),
            request("TEXT", with_field(aws("text", "us-east-1"), "f")),
            request("GONE", aws("gone", "us-east-1")),
            request("STS", aws_oidc("json", "us-east-1", ROLE, &token)),
            request("JWT", {
                let mut s = aws("json", "us-east-1");
                s.server.jwt = token.clone().into();
                s
            }),
        ],
        &ctx(),
    )
    .await;
    assert_eq!(value(&r[0]), VALUE_CANARY);
    assert_eq!(error(&r[5]).kind(), ErrorKind::Unauthenticated);
    let shown = format!("{r:?} {r:#?} {p:?}")
        + &r.iter()
            .filter_map(|x| x.as_ref().err())
            .map(|e| format!("{e} | {e:?} | {:?}", std::error::Error::source(e)))
            .collect::<String>();
    for canary in [
        VALUE_CANARY,
        TOKEN_CANARY,
        token.as_str(),
        SECRET_KEY_CANARY,
        SESSION_TOKEN_CANARY,
    ] {
        assert!(!shown.contains(canary), "{canary} leaked: {shown}");
    }
}
