//! Through the resolver, against the fake: twenty secrets of one identity cost one token
//! and one read per distinct secret, `check`'s plan is what `resolve` did, and the variables
//! are those of GitLab Runner's algorithm reproduced (a new client, a token and a read per
//! secret, one after the other).
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

mod common;

use common::*;
use provider_azure_kv::AzureKeyVaultProvider;
use secrets_core::{JobPayload, JobVariable, SecretProvider as _, SecretRequest, Variables};
use secrets_resolver::{Plan, ResolveOptions, Resolver};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

const READS: [(&str, Option<&str>, &str); 4] = [
    ("db-password", None, "azure-db-password-v2"),
    (
        "db-password",
        Some("0123456789abcdef0123456789abcdef"),
        "azure-db-password-v1",
    ),
    ("api-key", None, "azure-api-key"),
    ("old-disabled", None, "azure-old-disabled-v2"),
];

fn azure_secret(name: &str, version: Option<&str>) -> Value {
    json!({"azure_key_vault": {"name": name, "version": version,
        "server": {"url": VAULT, "client_id": CLIENT, "tenant_id": TENANT, "jwt": "$AZURE_JWT"}},
        "file": false})
}

#[tokio::test]
async fn twenty_secrets_cost_one_token_and_four_reads_with_the_runners_values() {
    let h = Harness::start().await;
    let secrets: serde_json::Map<String, Value> = (0..20)
        .map(|i| {
            let (name, version, _) = READS[i % 4];
            (format!("AZ{i:02}"), azure_secret(name, version))
        })
        .collect();
    let variables = vec![JobVariable {
        key: "AZURE_JWT".into(),
        value: h.token(),
        masked: true,
        ..JobVariable::default()
    }];
    let payload: JobPayload =
        serde_json::from_value(json!({"secrets": secrets, "variables": variables})).unwrap();

    let resolver = Resolver::builder()
        .with_provider(Arc::new(h.provider()))
        .with_options(ResolveOptions::default())
        .build();
    let resolution = resolver.resolve_payload(&payload).await.unwrap();
    let requests = &resolution.report.requests;
    assert_eq!(
        &Plan::of(&payload.secrets).requests,
        requests,
        "check plans what resolve does"
    );
    assert_eq!(requests.get("azure_token"), Some(&1), "{requests:?}");
    assert_eq!(requests.get("azure_get"), Some(&4), "{requests:?}");
    assert_eq!(requests.get("azure_challenge"), None, "{requests:?}");
    let ours: BTreeMap<String, String> = resolution
        .variables
        .iter()
        .map(|v| (v.key.clone(), v.value.expose().to_owned()))
        .collect();
    for (i, (_, _, value)) in (0..20).map(|i| (i, READS[i % 4])) {
        assert_eq!(ours[&format!("AZ{i:02}")], value);
    }

    // The runner's algorithm: a new provider (client, token) per secret, sequentially.
    h.fakes.counters().reset();
    let vars = Variables::new(payload.variables.clone());
    let lookup = |name: &str| vars.get(name).map(|v| v.into_owned());
    let mut theirs = BTreeMap::new();
    for (key, secret) in &payload.secrets {
        let mut expanded = secret.clone();
        expanded.expand_variables(&lookup);
        let provider: AzureKeyVaultProvider = h.provider();
        let request = SecretRequest {
            variable: key.clone(),
            secret: expanded,
        };
        let resolved = provider
            .resolve(std::slice::from_ref(&request), &ctx())
            .await
            .pop()
            .unwrap()
            .unwrap();
        theirs.insert(key.clone(), resolved.value.expose().to_owned());
    }
    assert_eq!(ours, theirs, "the runner's variables");
    let fake = h.fakes.counters();
    assert_eq!(fake.get(cloud_fakes::Kind::AzureToken), 20);
    assert_eq!(fake.get(cloud_fakes::Kind::AzureGet), 20);
}
