//! `ci-secrets get` inputs refused before any request: exit 2 with what to fix.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

use assert_cmd::Command;
use predicates::prelude::*;

fn get(args: &[&str], env: &[(&str, &str)]) -> assert_cmd::assert::Assert {
    let mut cmd = Command::cargo_bin("ci-secrets").unwrap();
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .arg("get")
        .args(args);
    cmd.assert()
}

#[test]
fn bad_references_and_missing_settings_exit_2() {
    get(&["my-secrets", "--spread"], &[])
        .code(2)
        .stderr(predicate::str::contains("has no provider keyword"));
    get(&["aws_secrets_manager:my-secrets", "--spread"], &[])
        .code(2)
        .stderr(predicate::str::contains("AWS_REGION is not set"));
    get(&["vault:production/db@ops"], &[])
        .code(2)
        .stderr(predicate::str::contains("VAULT_SERVER_URL is not set"));
    get(&["aws_secrets_manager:a#b#c", "--region", "eu-west-1"], &[]).code(2);
    get(
        &["aws_secrets_manager:x", "--spread"],
        &[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ],
    )
    .code(2)
    .stderr(predicate::str::contains("the ID token is empty"));
    get(&["aws_secrets_manager:x", "--prefix", "P"], &[]).code(2);
}
