//! Opt-in service-account impersonation end to end against the fakes: STS once, one
//! `generateAccessToken` per service account whatever the number of secrets, reads with the
//! impersonated token, the plan equal to what is sent, and the refusals with their fixes.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

mod common;

use auth_oidc::testing::GitlabClaims;
use common::{Harness, PROVIDER, SA_EMAIL, audience, gcp, gcp_as, payload, value_of};
use secrets_core::ErrorKind;
use secrets_resolver::Plan;
use serde_json::json;

#[tokio::test]
async fn a_value_only_the_service_account_may_read() {
    let h = Harness::start().await;
    // Without impersonation the federated principal is refused.
    let p = payload(json!({"S": gcp("sa-only", "latest")}), &h.token());
    let failure = h.resolver().resolve_payload(&p).await.unwrap_err();
    assert_eq!(failure.errors[0].kind(), ErrorKind::PermissionDenied);

    h.reset().await;
    let p = payload(
        json!({"S": gcp_as("sa-only", "latest", SA_EMAIL)}),
        &h.token(),
    );
    let resolution = h.resolver().resolve_payload(&p).await.unwrap();
    assert_eq!(value_of(&resolution, "S"), "gcp-sa-only");
    let requests = &resolution.report.requests;
    assert_eq!(requests.get("gcp_sts_exchange"), Some(&1), "{requests:?}");
    assert_eq!(requests.get("gcp_generate_access_token"), Some(&1));
    assert_eq!(requests.get("gcp_access"), Some(&1));
    assert_eq!(&Plan::of(&p.secrets).requests, requests, "check plans it");
    assert_eq!(
        h.count("gcp_generate_access_token").await,
        1,
        "the fake saw it"
    );
}

#[tokio::test]
async fn many_secrets_cost_one_generate_access_token() {
    let h = Harness::start().await;
    let secrets = json!({
        "SA": gcp_as("sa-only", "latest", SA_EMAIL),
        "SA_AGAIN": gcp_as("projects/123456789012/secrets/sa-only", "1", SA_EMAIL),
        "SA_PINNED": gcp_as("sa-only", "1", SA_EMAIL),
        "DB": gcp_as("db-password", "latest", SA_EMAIL),
        "API": gcp_as("api-key", "1", SA_EMAIL),
        "REGIONAL": gcp_as("projects/123456789012/locations/us-east1/secrets/regional-key", "1", SA_EMAIL),
        // The same version federated is another principal's read.
        "API_FEDERATED": gcp("api-key", "1"),
    });
    let p = payload(secrets, &h.token());
    let resolution = h.resolver().resolve_payload(&p).await.unwrap();
    assert_eq!(value_of(&resolution, "SA"), "gcp-sa-only");
    assert_eq!(value_of(&resolution, "SA_AGAIN"), "gcp-sa-only");
    assert_eq!(value_of(&resolution, "DB"), "gcp-db-password");
    assert_eq!(value_of(&resolution, "API"), "gcp-api-key-v1");
    assert_eq!(value_of(&resolution, "API_FEDERATED"), "gcp-api-key-v1");
    assert_eq!(value_of(&resolution, "REGIONAL"), "gcp-regional-v1");
    let requests = &resolution.report.requests;
    assert_eq!(requests.get("gcp_sts_exchange"), Some(&1), "{requests:?}");
    assert_eq!(requests.get("gcp_generate_access_token"), Some(&1));
    assert_eq!(
        requests.get("gcp_access"),
        Some(&6),
        "SA_AGAIN and SA_PINNED are one read"
    );
    let plan = Plan::of(&p.secrets);
    assert_eq!(&plan.requests, requests, "check plans what resolve does");
    assert_eq!(plan.logins, 2, "STS and generateAccessToken");
    assert_eq!(h.count("gcp_sts_exchange").await, 1);
    assert_eq!(h.count("gcp_generate_access_token").await, 1);
    assert_eq!(h.count("gcp_access").await, 6);
}

#[tokio::test]
async fn refused_and_unknown_service_accounts_name_the_variable_and_the_fix() {
    let h = Harness::start().await;
    let check = |failure: &secrets_resolver::ResolveFailure, token: &str, account: &str| {
        assert_eq!(failure.errors.len(), 2, "{failure}");
        for err in &failure.errors {
            assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
            let text = err.to_string();
            for t in [
                "failed to impersonate service account",
                account,
                "CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT",
                "roles/iam.workloadIdentityUser",
                "PERMISSION_DENIED",
            ] {
                assert!(text.contains(t), "{t:?} not in {text}");
            }
            assert!(!text.contains(token), "the token leaked: {text}");
        }
        let variables: Vec<_> = failure.errors.iter().filter_map(|e| e.variable()).collect();
        assert!(
            variables.contains(&"A") && variables.contains(&"B"),
            "{variables:?}"
        );
    };
    // Project 7's principal is not a member of the account.
    let other = h.mint(
        &GitlabClaims::new()
            .with_project("mygroup/other", 7)
            .with_audience(format!("https:{}", audience(PROVIDER))),
    );
    let p = payload(
        json!({"A": gcp_as("api-key", "1", SA_EMAIL), "B": gcp_as("db-password", "1", SA_EMAIL)}),
        &other,
    );
    let failure = h.resolver().resolve_payload(&p).await.unwrap_err();
    check(&failure, &other, SA_EMAIL);
    assert_eq!(
        h.count("gcp_generate_access_token").await,
        1,
        "one try, not retried"
    );
    assert_eq!(
        h.count("gcp_access").await,
        0,
        "nothing read without the token"
    );

    let unknown = "nobody@ci-secrets-test.iam.gserviceaccount.com";
    let token = h.token();
    let p = payload(
        json!({"A": gcp_as("api-key", "1", unknown), "B": gcp_as("db-password", "1", unknown),
               "OK": gcp("api-key", "1")}),
        &token,
    );
    let failure = h.resolver().resolve_payload(&p).await.unwrap_err();
    check(&failure, &token, unknown);
    assert!(failure.to_string().contains("as nobody@"), "{failure}");
}

#[tokio::test]
async fn a_failing_iam_credentials_is_retried() {
    let h = Harness::start().await;
    h.fault("gcp_generate_access_token", 503, 1).await;
    let p = payload(json!({"S": gcp_as("sa-only", "1", SA_EMAIL)}), &h.token());
    let resolution = h.resolver().resolve_payload(&p).await.unwrap();
    assert_eq!(value_of(&resolution, "S"), "gcp-sa-only");
    assert_eq!(h.count("gcp_generate_access_token").await, 2);
}

/// From `.gitlab-ci.yml`: the normaliser reads `CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT`
/// like the `GCP_*` variables (expanded by the runner's rules), and only where it is set.
#[tokio::test]
async fn the_variable_in_gitlab_ci_yml_opts_in() {
    use secrets_core::gitlab_ci::CiConfig;
    use std::collections::HashMap;
    let h = Harness::start().await;
    let yaml = |impersonate: &str| {
        format!(
            "variables:\n  GCP_PROJECT_NUMBER: \"123456789012\"\n  \
             GCP_WORKLOAD_IDENTITY_FEDERATION_POOL_ID: gitlab-pool\n  \
             GCP_WORKLOAD_IDENTITY_FEDERATION_PROVIDER_ID: {PROVIDER}\n{impersonate}\
             job:\n  id_tokens:\n    GCP_ID_TOKEN:\n      aud: x\n  secrets:\n    S:\n      \
             gcp_secret_manager:\n        name: sa-only\n      token: $GCP_ID_TOKEN\n      file: false\n"
        )
    };
    let secrets_of = |text: &str| {
        let config = CiConfig::from_yaml(text).unwrap();
        let job = config.job("job").unwrap();
        let settings: HashMap<String, String> = job
            .variables()
            .iter()
            .map(|v| (v.key.clone(), v.value.clone()))
            .collect();
        let secrets = job
            .secrets_payload(&|name| settings.get(name).cloned())
            .unwrap();
        serde_json::to_value(secrets).unwrap()
    };
    let with = secrets_of(&yaml(
        "  SA_NAME: secret-reader\n  CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT: \
         $SA_NAME@ci-secrets-test.iam.gserviceaccount.com\n",
    ));
    assert_eq!(
        with["S"]["gcp_secret_manager"]["server"]["impersonate_service_account"],
        "$SA_NAME@ci-secrets-test.iam.gserviceaccount.com"
    );
    let mut p = payload(with, &h.token());
    p.variables
        .push(secrets_core::JobVariable::new("SA_NAME", "secret-reader"));
    assert_eq!(
        Plan::of(&p.secrets)
            .requests
            .get("gcp_generate_access_token"),
        Some(&1)
    );
    let resolution = h.resolver().resolve_payload(&p).await.unwrap();
    assert_eq!(value_of(&resolution, "S"), "gcp-sa-only");
    assert_eq!(
        resolution.report.requests_of("gcp_generate_access_token"),
        1
    );

    let without = secrets_of(&yaml(""));
    assert!(
        without["S"]["gcp_secret_manager"]["server"]
            .get("impersonate_service_account")
            .is_none(),
        "{without}"
    );
    let p = payload(without, &h.token());
    assert!(
        !Plan::of(&p.secrets)
            .requests
            .contains_key("gcp_generate_access_token")
    );
    let failure = h.resolver().resolve_payload(&p).await.unwrap_err();
    assert_eq!(failure.errors[0].kind(), ErrorKind::PermissionDenied);
    assert_eq!(
        h.count("gcp_generate_access_token").await,
        1,
        "only the opted-in job"
    );
}
