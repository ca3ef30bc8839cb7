//! Leaks: the fixture's secret values and the ID tokens (the canaries) never reach logs at
//! TRACE, error messages, `Debug` of errors and results, on successes and failures.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

mod common;

use auth_oidc::testing::GitlabClaims;
use canary_capture::logs;
use common::*;
use secrets_core::SecretProvider as _;

#[tokio::test]
async fn no_value_or_token_in_logs_errors_or_debug() {
    let logs = logs();
    let h = Harness::start().await;
    let jwt = h.token();
    let other = h.mint(
        &GitlabClaims::new()
            .with_audience("api://AzureADTokenExchange")
            .with_branch("leak"),
    );
    h.fakes
        .counters()
        .set_fault(cloud_fakes::Kind::AzureGet, 503, 1);
    let reqs = requests(vec![
        ("DB", secret(CLIENT, &jwt, "db-password", None)),
        (
            "V1",
            secret(
                CLIENT,
                &jwt,
                "db-password",
                Some("0123456789abcdef0123456789abcdef"),
            ),
        ),
        ("DISABLED", secret(CLIENT, &jwt, "disabled-secret", None)),
        ("RESTRICTED", secret(CLIENT, &jwt, "restricted", None)),
        ("NO_MATCH", secret(CLIENT, &other, "api-key", None)),
    ]);
    let provider = h.provider();
    let ctx = ctx();
    let out = provider.resolve(&reqs, &ctx).await;
    assert_eq!(
        out[0].as_ref().unwrap().value.expose(),
        "azure-db-password-v2"
    );
    assert!(out[4].is_err());

    let mut seen = logs.text();
    for r in &out {
        match r {
            Ok(resolved) => seen.push_str(&format!("{resolved:?}")),
            Err(e) => seen.push_str(&format!("{e} {e:?}")),
        }
    }
    seen.push_str(&format!("{provider:?} {reqs:?}"));
    assert!(
        seen.contains("retrying"),
        "the capture saw the retry: {seen}"
    );
    for canary in [
        "azure-db-password-v1",
        "azure-db-password-v2",
        "azure-disabled",
        "azure-restricted",
        jwt.as_str(),
        other.as_str(),
    ] {
        assert!(!seen.contains(canary), "leaked {canary}");
    }
    // No bearer token either: nothing after "Bearer " in the capture.
    assert!(!seen.contains("Bearer ey"), "leaked a bearer token");
}
