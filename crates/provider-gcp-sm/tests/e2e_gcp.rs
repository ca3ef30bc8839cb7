//! The Google fakes `cargo xtask services up` started, reached from the env file as the demo
//! reaches them: gcloud's endpoint overrides, ID tokens of the running issuer. Skips (and
//! says why) unless `CI_SECRETS_E2E_ENV` is set (`cargo xtask e2e`).

use auth_oidc::testing::{E2eEnv, GitlabClaims};
use cloud_fakes::env::{FakesEnv, defaults};
use provider_gcp_sm::{GcpSecretManagerBuilder, SECRETMANAGER_OVERRIDE, STS_OVERRIDE};
use secrecy::ExposeSecret as _;
use secrets_core::{Environment, JobPayload, JobVariable};
use secrets_resolver::{Plan, ResolveOptions, Resolver};
use serde_json::json;
use std::sync::Arc;

fn secret(name: &str, version: &str) -> serde_json::Value {
    json!({"gcp_secret_manager": {"name": name, "version": version, "server": {
        "project_number": defaults::GCP_PROJECT_NUMBER,
        "workload_identity_federation_pool_id": defaults::GCP_POOL,
        "workload_identity_federation_provider_id": defaults::GCP_PROVIDER,
        "jwt": "$GCP_ID_TOKEN"}}, "file": false})
}

#[tokio::test]
async fn resolves_against_the_running_fakes() {
    let Some(e2e) = E2eEnv::for_test("resolves_against_the_running_fakes") else {
        return;
    };
    let Some(fakes) = FakesEnv::from_env() else {
        return;
    };
    let audience = format!(
        "https://iam.googleapis.com/projects/{}/locations/global/workloadIdentityPools/{}/providers/{}",
        defaults::GCP_PROJECT_NUMBER,
        defaults::GCP_POOL,
        defaults::GCP_PROVIDER
    );
    let token = e2e
        .minter()
        .mint(&GitlabClaims::new().with_audience(audience))
        .unwrap();
    let env: Environment = [
        (STS_OVERRIDE, fakes.gcp_sts_url()),
        (SECRETMANAGER_OVERRIDE, fakes.gcp_secretmanager_url()),
    ]
    .into_iter()
    .collect();
    let provider = GcpSecretManagerBuilder::new()
        .with_env(env)
        .build()
        .unwrap();
    let resolver = Resolver::builder()
        .with_provider(Arc::new(provider))
        .with_options(ResolveOptions::default())
        .build();
    let payload: JobPayload = serde_json::from_value(json!({
        "secrets": {
            "A": secret("api-key", "latest"),
            "B": secret("db-password", "1"),
            "R": secret("projects/123456789012/locations/us-east1/secrets/regional-key", "1"),
        },
        "variables": [JobVariable::new("GCP_ID_TOKEN", token.expose_secret())],
    }))
    .unwrap();
    let resolution = resolver.resolve_payload(&payload).await.unwrap();
    let values: Vec<&str> = resolution
        .variables
        .iter()
        .map(|v| v.value.expose())
        .collect();
    assert_eq!(
        values,
        ["gcp-api-key-v2", "gcp-db-password", "gcp-regional-v1"]
    );
    assert_eq!(resolution.report.requests_of("gcp_sts_exchange"), 1);
    assert_eq!(resolution.report.requests_of("gcp_access"), 3);
    assert_eq!(
        Plan::of(&payload.secrets).requests,
        resolution.report.requests
    );
}
