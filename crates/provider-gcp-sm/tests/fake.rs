//! End to end through the resolver against the protocol-exact Google fakes (`cloud-fakes`,
//! in-process, with a local OIDC issuer): values, versions, regional and cross-project names,
//! every classified error with its fix, request counts and the plan, faults and retries.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

mod common;

use auth_oidc::testing::GitlabClaims;
use common::{Harness, PROVIDER, audience, gcp, gcp_with, payload, value_of};
use secrets_core::ErrorKind;
use secrets_resolver::Plan;
use serde_json::{Value, json};

#[tokio::test]
async fn many_secrets_cost_one_exchange_and_one_read_per_version() {
    let h = Harness::start().await;
    let secrets = json!({
        "LATEST": gcp("api-key", "latest"),
        "V1": gcp("api-key", "1"),
        "V1_AGAIN": gcp("projects/123456789012/secrets/api-key", "1"),
        "DB": gcp("db-password", "latest"),
        "MULTI": gcp("multi", "latest"),
        "MULTI1": gcp("multi", "1"),
        "CROSS": gcp("projects/ci-secrets-test/secrets/api-key", "2"),
        "REGIONAL": gcp("projects/123456789012/locations/us-east1/secrets/regional-key", "latest"),
        "REGIONAL1": gcp("projects/123456789012/locations/us-east1/secrets/regional-key", "1"),
        "P42": gcp("project-42-only", "latest"),
    });
    let p = payload(secrets, &h.token());
    let resolution = h.resolver().resolve_payload(&p).await.unwrap();
    assert_eq!(value_of(&resolution, "LATEST"), "gcp-api-key-v2");
    assert_eq!(value_of(&resolution, "V1"), "gcp-api-key-v1");
    assert_eq!(value_of(&resolution, "V1_AGAIN"), "gcp-api-key-v1");
    assert_eq!(value_of(&resolution, "DB"), "gcp-db-password");
    assert_eq!(value_of(&resolution, "MULTI"), "gcp-multi-v4");
    assert_eq!(value_of(&resolution, "MULTI1"), "gcp-multi-v1");
    assert_eq!(value_of(&resolution, "CROSS"), "gcp-api-key-v2");
    assert_eq!(value_of(&resolution, "REGIONAL"), "gcp-regional-v2");
    assert_eq!(value_of(&resolution, "REGIONAL1"), "gcp-regional-v1");
    assert_eq!(value_of(&resolution, "P42"), "gcp-project-42");

    let requests = &resolution.report.requests;
    assert_eq!(requests.get("gcp_sts_exchange"), Some(&1), "{requests:?}");
    assert_eq!(
        requests.get("gcp_access"),
        Some(&9),
        "V1 and V1_AGAIN are one read"
    );
    assert_eq!(
        &Plan::of(&p.secrets).requests,
        requests,
        "check plans what resolve does"
    );
    assert_eq!(h.count("gcp_sts_exchange").await, 1, "what the fake saw");
    assert_eq!(h.count("gcp_access").await, 9);
    let sts = h.counts().await;
    assert_eq!(sts["gcp_generate_access_token"].as_u64().unwrap_or(0), 0);
}

#[tokio::test]
async fn two_providers_are_two_exchanges() {
    let h = Harness::start().await;
    let token = h.mint(&GitlabClaims::new().with_audience("https://gcp.example.com"));
    let p = payload(
        json!({"A": gcp_with("api-key", "1", "gitlab-custom-aud"), "B": gcp_with("db-password", "1", "gitlab-custom-aud")}),
        &token,
    );
    let resolution = h.resolver().resolve_payload(&p).await.unwrap();
    assert_eq!(resolution.report.requests_of("gcp_sts_exchange"), 1);
    assert_eq!(value_of(&resolution, "B"), "gcp-db-password");

    let p = payload(
        json!({"A": gcp("api-key", "1"), "B": gcp_with("api-key", "1", "gitlab-custom-aud")}),
        &h.token(),
    );
    let plan = Plan::of(&p.secrets);
    assert_eq!(plan.requests["gcp_sts_exchange"], 2);
    assert_eq!(plan.identities.len(), 2);
}

/// One failing secret of the job, with what the error must say.
async fn fails(h: &Harness, secret: Value, token: &str, kind: ErrorKind, texts: &[&str]) {
    let p = payload(json!({"S": secret, "OK": gcp("api-key", "1")}), token);
    let failure = h.resolver().resolve_payload(&p).await.unwrap_err();
    let err = failure
        .errors
        .iter()
        .find(|e| e.variable() == Some("S"))
        .unwrap_or_else(|| panic!("no error for S: {failure}"));
    assert_eq!(err.kind(), kind, "{err}");
    let text = err.to_string();
    for t in texts {
        assert!(text.contains(t), "{t:?} not in {text}");
    }
    assert!(!text.contains(token), "the token leaked: {text}");
}

#[tokio::test]
async fn secret_manager_errors_name_the_resource_and_the_fix() {
    let h = Harness::start().await;
    let token = h.token();
    let resource = |s: &str, v: &str| format!("projects/123456789012/secrets/{s}/versions/{v}");
    for (secret, version, kind, texts) in [
        (
            "does-not-exist",
            "latest",
            ErrorKind::NotFound,
            vec!["NOT_FOUND", "check the secret name"],
        ),
        ("api-key", "9", ErrorKind::NotFound, vec!["NOT_FOUND"]),
        (
            "multi",
            "2",
            ErrorKind::NotFound,
            vec!["FAILED_PRECONDITION", "disabled or destroyed"],
        ),
        (
            "multi",
            "3",
            ErrorKind::NotFound,
            vec!["FAILED_PRECONDITION"],
        ),
        (
            "latest-disabled",
            "latest",
            ErrorKind::NotFound,
            vec!["FAILED_PRECONDITION"],
        ),
        (
            "restricted",
            "latest",
            ErrorKind::PermissionDenied,
            vec!["PERMISSION_DENIED", "roles/secretmanager.secretAccessor"],
        ),
        (
            "no-crc",
            "latest",
            ErrorKind::Unexpected,
            vec!["no payload.dataCrc32c checksum"],
        ),
        (
            "bad-crc",
            "latest",
            ErrorKind::Unexpected,
            vec!["data corruption detected"],
        ),
        (
            "binary",
            "latest",
            ErrorKind::InvalidConfig,
            vec!["(4 bytes) is not UTF-8", "base64"],
        ),
    ] {
        let r = resource(secret, version);
        let mut texts = texts;
        texts.push(&r);
        texts.push("S (gcp_secret_manager");
        fails(&h, gcp(secret, version), &token, kind, &texts).await;
    }
}

#[tokio::test]
async fn sts_errors_are_classified_with_their_fixes() {
    let h = Harness::start().await;
    let token = h.token();
    // The attribute condition admits only namespace_path othergroup.
    let strict =
        h.mint(&GitlabClaims::new().with_audience(format!("https:{}", audience("gitlab-strict"))));
    let p = payload(
        json!({"S": gcp_with("api-key", "1", "gitlab-strict")}),
        &strict,
    );
    let failure = h.resolver().resolve_payload(&p).await.unwrap_err();
    let text = failure.errors[0].to_string();
    assert_eq!(
        failure.errors[0].kind(),
        ErrorKind::Unauthenticated,
        "{text}"
    );
    for t in [
        "unauthorized_client",
        "attribute condition",
        "failed to exchange sts token",
    ] {
        assert!(text.contains(t), "{t:?} not in {text}");
    }
    fails(
        &h,
        gcp_with("api-key", "1", "gitlab-disabled"),
        &token,
        ErrorKind::InvalidConfig,
        &[
            "invalid_target",
            "GCP_WORKLOAD_IDENTITY_FEDERATION_PROVIDER_ID",
        ],
    )
    .await;
    fails(
        &h,
        gcp_with("api-key", "1", "no-such-provider"),
        &token,
        ErrorKind::InvalidConfig,
        &["invalid_target"],
    )
    .await;
    // A token for another audience, alone in the job so that every secret uses it.
    let wrong = h.mint(&GitlabClaims::new().with_audience("https://wrong.example.com"));
    let p = payload(json!({"S": gcp("api-key", "1")}), &wrong);
    let failure = h.resolver().resolve_payload(&p).await.unwrap_err();
    let err = &failure.errors[0];
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
    assert!(err.to_string().contains("invalid_grant"), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("https:{}", audience(PROVIDER))),
        "{err}"
    );
    // A branch name that makes `sub` longer than 127 bytes.
    let long = h.mint(
        &GitlabClaims::new()
            .with_audience(format!("https:{}", audience(PROVIDER)))
            .with_branch("feature/".to_owned() + &"x".repeat(100)),
    );
    let p = payload(json!({"S": gcp("api-key", "1")}), &long);
    let failure = h.resolver().resolve_payload(&p).await.unwrap_err();
    let err = &failure.errors[0];
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("invalid_request") && text.contains("127"),
        "{text}"
    );
    assert!(
        text.contains("map google.subject to a shorter claim"),
        "{text}"
    );
}

#[tokio::test]
async fn an_expired_token_fails_before_any_request() {
    let h = Harness::start().await;
    let expired = h.mint(
        &GitlabClaims::new()
            .with_audience(format!("https:{}", audience(PROVIDER)))
            .expired(),
    );
    let p = payload(json!({"S": gcp("api-key", "1")}), &expired);
    let failure = h.resolver().resolve_payload(&p).await.unwrap_err();
    assert!(
        failure.errors[0].to_string().contains("expired"),
        "{failure}"
    );
    assert_eq!(h.count("gcp_sts_exchange").await, 0);
    assert_eq!(failure.report.requests_of("gcp_sts_exchange"), 0);
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried() {
    let h = Harness::start().await;
    h.fault("gcp_sts_exchange", 503, 1).await;
    h.fault("gcp_access", 429, 1).await;
    let p = payload(json!({"S": gcp("api-key", "1")}), &h.token());
    let resolution = h.resolver().resolve_payload(&p).await.unwrap();
    assert_eq!(value_of(&resolution, "S"), "gcp-api-key-v1");
    assert_eq!(resolution.report.requests_of("gcp_sts_exchange"), 2);
    assert_eq!(resolution.report.requests_of("gcp_access"), 2);
    assert_eq!(h.count("gcp_access").await, 2);

    h.reset().await;
    h.fault("gcp_access", 500, 20).await;
    let failure = h.resolver().resolve_payload(&p).await.unwrap_err();
    let err = &failure.errors[0];
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("INTERNAL"), "{err}");
}

/// GitLab Runner's algorithm reproduced (runner-semantics §2.3): each secret on its own and
/// in turn, with a new provider, so one STS exchange and one access per secret. Same
/// variables; 21 requests instead of 40 for 20 secrets.
#[tokio::test]
async fn twenty_secrets_against_the_runner_algorithm() {
    use provider_gcp_sm::GcpSecretManagerBuilder;
    use secrets_core::{ResolveContext, SecretProvider, SecretRequest, Variables};

    let h = Harness::start().await;
    let names = ["api-key", "db-password", "multi", "project-42-only"];
    let secrets: serde_json::Map<String, Value> = (0..20)
        .map(|i| {
            (
                format!("S{i:02}"),
                gcp(names[i % 4], if i < 4 { "latest" } else { "1" }),
            )
        })
        .collect();
    let p = payload(Value::Object(secrets), &h.token());
    let ours = h.resolver().resolve_payload(&p).await.unwrap();
    assert_eq!(ours.report.requests_of("gcp_sts_exchange"), 1);
    assert_eq!(
        ours.report.requests_of("gcp_access"),
        8,
        "4 names at latest and at 1"
    );
    assert_eq!(&Plan::of(&p.secrets).requests, &ours.report.requests);

    h.reset().await;
    let vars = Variables::new(p.variables.clone());
    let lookup = |name: &str| vars.get(name).map(|v| v.into_owned());
    let mut runner = Vec::new();
    for (key, secret) in &p.secrets {
        let mut expanded = secret.clone();
        expanded.expand_variables(&lookup);
        let provider = GcpSecretManagerBuilder::new()
            .with_env(h.env())
            .build()
            .unwrap();
        let request = SecretRequest {
            variable: key.clone(),
            secret: expanded,
        };
        let resolved = provider
            .resolve(std::slice::from_ref(&request), &ResolveContext::default())
            .await
            .pop()
            .unwrap()
            .unwrap();
        runner.push((key.clone(), resolved.value.expose().to_owned()));
    }
    assert_eq!(h.count("gcp_sts_exchange").await, 20);
    assert_eq!(h.count("gcp_access").await, 20);
    let ours: Vec<(String, String)> = ours
        .variables
        .iter()
        .map(|v| (v.key.clone(), v.value.expose().to_owned()))
        .collect();
    assert_eq!(ours, runner, "the runner's variables");
}
