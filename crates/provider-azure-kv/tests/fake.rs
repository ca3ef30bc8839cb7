//! End to end against the Azure fake over TLS with the test CA: latest and pinned versions,
//! one token for several secrets and no challenge (the plan's counts are the report's),
//! each classified error with its variable, secret and fix, injected faults retried.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

mod common;

use auth_oidc::testing::GitlabClaims;
use cloud_fakes::Kind;
use common::*;
use provider_azure_kv::DESCRIPTOR;
use secrets_core::{ErrorKind, ProviderDescriptor as _, SecretProvider as _};
use std::collections::BTreeMap;

#[tokio::test]
async fn latest_and_pinned_with_one_token_and_no_challenge() {
    let h = Harness::start().await;
    let jwt = h.token();
    let reqs = requests(vec![
        ("DB", secret(CLIENT, &jwt, "db-password", None)),
        (
            "DB_V1",
            secret(
                CLIENT,
                &jwt,
                "db-password",
                Some("0123456789abcdef0123456789abcdef"),
            ),
        ),
        ("API", secret(CLIENT, &jwt, "api-key", None)),
        ("DB_AGAIN", secret(CLIENT, &jwt, "DB-Password", None)),
        ("OLD", secret(CLIENT, &jwt, "old-disabled", None)),
    ]);
    let ctx = ctx();
    let out = h.provider().resolve(&reqs, &ctx).await;
    let values: Vec<&str> = out
        .iter()
        .map(|r| r.as_ref().unwrap().value.expose())
        .collect();
    assert_eq!(
        values,
        [
            "azure-db-password-v2",
            "azure-db-password-v1",
            "azure-api-key",
            "azure-db-password-v2",
            "azure-old-disabled-v2"
        ]
    );
    let counts: BTreeMap<&str, u64> = ctx.requests.snapshot();
    assert_eq!(counts.get("azure_token"), Some(&1));
    assert_eq!(counts.get("azure_get"), Some(&4));
    assert_eq!(counts.get("azure_challenge"), None);
    let fake = h.fakes.counters();
    assert_eq!(fake.get(Kind::AzureToken), 1);
    assert_eq!(fake.get(Kind::AzureGet), 4);
    assert_eq!(fake.get(Kind::AzureChallenge), 0);
    assert_eq!(fake.get(Kind::AzureDiscovery), 0);

    // The plan, offline, says the same.
    let pairs: Vec<(&str, &secrets_core::Secret)> = reqs
        .iter()
        .map(|r| (r.variable.as_str(), &r.secret))
        .collect();
    let plan = DESCRIPTOR.plan(&pairs);
    assert_eq!(plan.len(), 1);
    let planned: BTreeMap<&str, u64> = plan[0]
        .requests
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(planned, counts);
}

#[tokio::test]
async fn each_error_names_the_variable_the_secret_and_the_fix() {
    let h = Harness::start().await;
    let jwt = h.token();
    let other_branch = h.mint(
        &GitlabClaims::new()
            .with_audience("api://AzureADTokenExchange")
            .with_branch("feature"),
    );
    let expired = h.mint(
        &GitlabClaims::new()
            .with_audience("api://AzureADTokenExchange")
            .expired(),
    );
    let reqs = requests(vec![
        ("OK", secret(CLIENT, &jwt, "api-key", None)),
        ("MISSING", secret(CLIENT, &jwt, "no-such-secret", None)),
        (
            "NO_VERSION",
            secret(
                CLIENT,
                &jwt,
                "api-key",
                Some("ffffffffffffffffffffffffffffffff"),
            ),
        ),
        ("DISABLED", secret(CLIENT, &jwt, "disabled-secret", None)),
        ("RESTRICTED", secret(CLIENT, &jwt, "restricted", None)),
        ("NO_ROLE", secret(CLIENT_NO_ROLE, &jwt, "api-key", None)),
        ("NO_MATCH", secret(CLIENT, &other_branch, "api-key", None)),
        (
            "NO_APP",
            secret(
                "aaaaaaaa-0000-4000-8000-00000000dead",
                &jwt,
                "api-key",
                None,
            ),
        ),
        ("EXPIRED", secret(CLIENT, &expired, "api-key", None)),
        ("LITERAL", secret(CLIENT, "$AZURE_JWT", "api-key", None)),
    ]);
    let ctx = ctx();
    let out = h.provider().resolve(&reqs, &ctx).await;
    assert_eq!(out[0].as_ref().unwrap().value.expose(), "azure-api-key");
    let rows: &[(&str, ErrorKind, &str, &str)] = &[
        (
            "MISSING",
            ErrorKind::NotFound,
            "SecretNotFound",
            "name and version",
        ),
        (
            "NO_VERSION",
            ErrorKind::NotFound,
            "SecretNotFound",
            "name and version",
        ),
        (
            "DISABLED",
            ErrorKind::PermissionDenied,
            "SecretDisabled",
            "enable the version",
        ),
        (
            "RESTRICTED",
            ErrorKind::PermissionDenied,
            "ForbiddenByRbac",
            "Key Vault Secrets User",
        ),
        (
            "NO_ROLE",
            ErrorKind::PermissionDenied,
            "ForbiddenByRbac",
            "Key Vault Secrets User",
        ),
        (
            "NO_MATCH",
            ErrorKind::PermissionDenied,
            "AADSTS70021",
            "subject project_path:mygroup/myproject:ref_type:branch:ref:feature",
        ),
        (
            "NO_APP",
            ErrorKind::InvalidConfig,
            "AADSTS700016",
            "AZURE_CLIENT_ID",
        ),
        (
            "EXPIRED",
            ErrorKind::Unauthenticated,
            "AADSTS700024",
            "rerun the job",
        ),
        (
            "LITERAL",
            ErrorKind::Unauthenticated,
            "not a JWT",
            "token: $AZURE_JWT",
        ),
    ];
    for (i, (variable, kind, message, fix)) in rows.iter().enumerate() {
        let err = out[i + 1].as_ref().unwrap_err();
        let text = err.to_string();
        assert_eq!(err.kind(), *kind, "{variable}: {text}");
        assert_eq!(err.variable(), Some(*variable));
        assert!(
            err.reference()
                .unwrap()
                .starts_with("azure_key_vault secret "),
            "{text}"
        );
        assert!(text.contains(message), "{variable}: {text}");
        assert!(err.fix().unwrap_or("").contains(fix), "{variable}: {text}");
        for canary in [
            "azure-",
            jwt.as_str(),
            expired.as_str(),
            other_branch.as_str(),
        ] {
            assert!(
                !format!("{text} {err:?}").contains(canary),
                "{variable}: {text}"
            );
        }
    }
    // NO_MATCH also shows the issuer and the audience the token has.
    let no_match = out[6].as_ref().unwrap_err().to_string();
    assert!(no_match.contains(h.issuer.url()), "{no_match}");
    assert!(
        no_match.contains("audience api://AzureADTokenExchange"),
        "{no_match}"
    );
    // Tokens: CLIENT (ok), CLIENT_NO_ROLE, the other branch, the unknown app, the expired
    // token; the literal `$AZURE_JWT` sends nothing.
    assert_eq!(ctx.requests.snapshot()["azure_token"], 5);
}

#[tokio::test]
async fn injected_faults_are_retried() {
    let h = Harness::start().await;
    let jwt = h.token();
    h.fakes.counters().set_fault(Kind::AzureToken, 429, 1);
    h.fakes.counters().set_fault(Kind::AzureGet, 503, 1);
    let reqs = requests(vec![("DB", secret(CLIENT, &jwt, "db-password", None))]);
    let ctx = ctx();
    let out = h.provider().resolve(&reqs, &ctx).await;
    assert_eq!(
        out[0].as_ref().unwrap().value.expose(),
        "azure-db-password-v2"
    );
    let counts = ctx.requests.snapshot();
    assert_eq!((counts["azure_token"], counts["azure_get"]), (2, 2));

    // A fault that outlasts the retries: a retryable Unavailable naming the variable.
    h.fakes.counters().set_fault(Kind::AzureGet, 500, 10);
    let ctx = common::ctx();
    let out = h.provider().resolve(&reqs, &ctx).await;
    let err = out[0].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_retryable());
    assert_eq!(err.variable(), Some("DB"));
    assert_eq!(ctx.requests.snapshot()["azure_get"], 3);
}

#[tokio::test]
async fn tls_without_the_test_ca_is_refused() {
    let h = Harness::start().await;
    let addr = h.fakes.azure_addr();
    let provider = provider_azure_kv::AzureKeyVaultBuilder::new()
        .with_resolve_for_tests("login.microsoftonline.com", addr)
        .with_resolve_for_tests(VAULT_HOST, addr)
        .build()
        .unwrap();
    let jwt = h.token();
    let ctx = ctx();
    let out = provider
        .resolve(
            &requests(vec![("DB", secret(CLIENT, &jwt, "db-password", None))]),
            &ctx,
        )
        .await;
    let err = out[0].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    assert!(err.to_string().contains("TLS"), "{err}");
}
