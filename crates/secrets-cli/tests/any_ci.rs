//! ID tokens outside GitLab, without secret-manager servers: the GitHub Actions token request
//! (shape, bearer, audience, answer) and its failures, the Buildkite agent's arguments, and
//! what `doctor` says about where a token came from.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

mod support;

use assert_cmd::Command;
use auth_oidc::testing::{GitlabClaims, IssuerKey, Minter};
use predicates::prelude::*;
use secrecy::ExposeSecret;
use std::path::{Path, PathBuf};
use support::{Answer, FakeActions, REQUEST_TOKEN};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/gitlab-ci")
        .join(name)
}

fn minter() -> Minter {
    Minter::new(
        "https://token.actions.githubusercontent.com",
        &IssuerKey::generate().unwrap(),
    )
}

fn mint_for(minter: Minter) -> impl Fn(&str) -> String + Send + Sync + 'static {
    move |aud| {
        minter
            .mint(&GitlabClaims::new().with_audience(aud))
            .unwrap()
            .expose_secret()
            .to_owned()
    }
}

fn cli() -> Command {
    let mut cmd = Command::cargo_bin("ci-secrets").unwrap();
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

fn on_github(url: &str, request_token: &str) -> Command {
    let mut cmd = cli();
    cmd.env("GITHUB_ACTIONS", "true")
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", url)
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", request_token);
    cmd
}

/// `resolve` of the Vault example with nothing listening for Vault: a token failure must stop
/// the command before that matters.
fn resolve_vault_example(cmd: &mut Command) -> &mut Command {
    cmd.env("VAULT_SERVER_URL", support::unreachable_url())
        .env("VAULT_AUTH_ROLE", "ci")
        .args([
            "resolve",
            "--ci-config",
            example("vault-short-form.yml").to_str().unwrap(),
            "--job",
            "job_using_vault",
        ])
}

#[test]
fn github_actions_token_request_has_the_documented_shape() {
    let fake = FakeActions::start(Answer::Token, mint_for(minter()));
    let out = on_github(&fake.url, REQUEST_TOKEN)
        .args([
            "doctor",
            "--ci-config",
            example("vault-short-form.yml").to_str().unwrap(),
            "--job",
            "job_using_vault",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "token from VAULT_ID_TOKEN (requested from the GitHub Actions token service, audience https://vault.example.com)",
        ))
        .stdout(predicate::str::contains("aud            https://vault.example.com"))
        .get_output()
        .clone();
    let seen = fake.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let request = &seen[0];
    assert_eq!(request.method, "GET");
    assert_eq!(request.path, "/_apis/idtoken");
    assert_eq!(
        request.param("api-version"),
        Some("2.0"),
        "GitHub's own query is kept"
    );
    assert_eq!(request.param("audience"), Some("https://vault.example.com"));
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("bearer {REQUEST_TOKEN}").as_str())
    );
    assert!(
        request
            .accept
            .as_deref()
            .unwrap_or_default()
            .contains("application/json")
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(REQUEST_TOKEN), "request token printed");

    // JSON names the source too; a variable already set is used as it is, no request.
    let token = mint_for(minter())("https://vault.example.com");
    let before = fake.seen().len();
    let out = on_github(&fake.url, REQUEST_TOKEN)
        .env("VAULT_ID_TOKEN", &token)
        .args([
            "doctor",
            "--token-var",
            "VAULT_ID_TOKEN",
            "--format",
            "json",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["token_source"], "environment");
    assert_eq!(fake.seen().len(), before);

    // --token-var with --audience requests that audience.
    on_github(&fake.url, REQUEST_TOKEN)
        .args([
            "doctor",
            "--token-var",
            "AWS_ID_TOKEN",
            "--audience",
            "sts.amazonaws.com",
            "--format",
            "json",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "\"token_source\": \"github-actions\"",
        ))
        .stdout(predicate::str::contains("\"aud\": \"sts.amazonaws.com\""));
    assert_eq!(
        fake.seen().last().unwrap().param("audience"),
        Some("sts.amazonaws.com")
    );
}

#[test]
fn a_wrong_request_token_fails_with_exit_2_and_says_what_to_grant() {
    let fake = FakeActions::start(Answer::Token, mint_for(minter()));
    let out = resolve_vault_example(&mut on_github(&fake.url, "not-the-request-token"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "VAULT_ID_TOKEN: the GitHub Actions token service at http://127.0.0.1:",
        ))
        .stderr(predicate::str::contains("HTTP 401"))
        .stderr(predicate::str::contains("permissions: id-token: write"))
        .stdout("")
        .get_output()
        .clone();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("not-the-request-token"));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("bad credentials"),
        "body echoed"
    );
    assert_eq!(fake.seen().len(), 1);
}

#[test]
fn an_unreachable_token_service_fails_with_exit_2() {
    resolve_vault_example(&mut on_github(&support::unreachable_url(), REQUEST_TOKEN))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "VAULT_ID_TOKEN: the GitHub Actions token service at http://127.0.0.1:",
        ))
        .stderr(predicate::str::contains("did not answer (cannot connect)"))
        .stdout("");
}

#[test]
fn an_empty_answer_fails_with_exit_2() {
    for answer in [Answer::EmptyValue, Answer::NoValue] {
        let fake = FakeActions::start(answer, |_| unreachable!());
        resolve_vault_example(&mut on_github(&fake.url, REQUEST_TOKEN))
            .assert()
            .code(2)
            .stderr(predicate::str::contains(
                "answered without a token (no `value`)",
            ))
            .stdout("");
        assert_eq!(fake.seen().len(), 1, "{answer:?}");
    }
}

#[test]
fn buildkite_agent_is_asked_with_the_declared_audience() {
    let dir = tempfile::tempdir().unwrap();
    let token = mint_for(minter())("sts.amazonaws.com");
    support::fake_buildkite_agent(dir.path(), Some(&token));
    let out = cli()
        .env("PATH", support::path_with(dir.path()))
        .env("BUILDKITE", "true")
        .args([
            "doctor",
            "--ci-config",
            example("aws-oidc.yml").to_str().unwrap(),
            "--job",
            "database-migration",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "token from AWS_ID_TOKEN (requested from buildkite-agent oidc request-token, audience sts.amazonaws.com)",
        ))
        .get_output()
        .stdout
        .clone();
    assert!(!String::from_utf8_lossy(&out).contains(&token));
    assert_eq!(
        support::agent_args(dir.path()),
        ["oidc", "request-token", "--audience", "sts.amazonaws.com"]
    );
}

#[test]
fn a_failing_buildkite_agent_fails_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    support::fake_buildkite_agent(dir.path(), None);
    resolve_vault_example(
        cli()
            .env("PATH", support::path_with(dir.path()))
            .env("BUILDKITE", "true"),
    )
    .assert()
    .code(2)
    .stderr(predicate::str::contains(
        "VAULT_ID_TOKEN: `buildkite-agent oidc request-token` failed",
    ))
    .stderr(predicate::str::contains("failed to get OIDC token"));
    assert_eq!(
        support::agent_args(dir.path()),
        [
            "oidc",
            "request-token",
            "--audience",
            "https://vault.example.com"
        ]
    );

    // No agent on PATH at all.
    let empty = tempfile::tempdir().unwrap();
    resolve_vault_example(cli().env("PATH", empty.path()).env("BUILDKITE", "true"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`buildkite-agent` is not on PATH"));
}

#[test]
fn without_a_token_source_the_error_names_github_and_buildkite() {
    resolve_vault_example(&mut cli())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("the ID token is empty"))
        .stderr(predicate::str::contains("GitHub Actions"))
        .stderr(predicate::str::contains("permissions: id-token: write"))
        .stderr(predicate::str::contains("Buildkite"));
    cli()
        .args([
            "check",
            "--ci-config",
            example("vault-short-form.yml").to_str().unwrap(),
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("expands to nothing"))
        .stdout(predicate::str::contains("id-token: write"))
        .stdout(predicate::str::contains("buildkite-agent"));
    cli()
        .args(["doctor", "--token-var", "VAULT_ID_TOKEN"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "VAULT_ID_TOKEN is not set in the environment and no CI here issues it",
        ));
}

#[test]
fn completions_and_the_man_page_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = cli()
            .args(["completions", shell])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("ci-secrets") && text.contains("resolve"),
            "{shell}"
        );
    }
    cli()
        .arg("man")
        .assert()
        .success()
        .stdout(predicate::str::contains(".TH ci-secrets 1"));
    cli().arg("--version").assert().success().stdout(
        predicate::str::is_match(
            r"^ci-secrets \d+\.\d+\.\d+ \(commit (?:[0-9a-f]{7,12}|unknown)\)\n$",
        )
        .unwrap(),
    );
}
