//! `ci-secrets` on GitHub Actions and Buildkite against the real OpenBao and LocalStack: the
//! job's `id_tokens:` are not in the environment and come from a local fake of the Actions
//! token service (or a stand-in `buildkite-agent`) that hands out tokens from the local issuer.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

mod support;

use assert_cmd::Command;
use auth_oidc::testing::{E2eEnv, GitlabClaims};
use secrecy::ExposeSecret;
use std::path::{Path, PathBuf};
use support::{Answer, FakeActions, REQUEST_TOKEN};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/gitlab-ci")
        .join(name)
}

fn minting(env: &E2eEnv) -> impl Fn(&str) -> String + Send + Sync + 'static {
    let minter = env.minter();
    move |aud| {
        minter
            .mint(&GitlabClaims::new().with_audience(aud))
            .unwrap()
            .expose_secret()
            .to_owned()
    }
}

/// A runner host's environment pointed at the local services, with no ID token in it.
fn cli(env: &E2eEnv) -> Command {
    let mut cmd = Command::cargo_bin("ci-secrets").unwrap();
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("VAULT_SERVER_URL", env.vault_addr())
        .env("VAULT_AUTH_ROLE", "ci")
        .env("AWS_ENDPOINT_URL", env.aws_endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test");
    cmd
}

fn resolved(out: &[u8]) -> Vec<(String, String)> {
    let doc: serde_json::Value = serde_json::from_slice(out).unwrap();
    doc["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["key"].as_str().unwrap().to_owned(),
                v["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn resolve_json(cmd: &mut Command, file: &str, job: &str) -> Vec<(String, String)> {
    let out = cmd
        .args([
            "resolve",
            "--ci-config",
            example(file).to_str().unwrap(),
            "--job",
            job,
            "--format",
            "json",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(REQUEST_TOKEN), "request token logged");
    assert!(stderr.contains("requested from"), "{stderr}");
    resolved(&out.stdout)
}

#[test]
fn a_github_actions_job_resolves_vault_and_aws_secrets() {
    let Some(env) = E2eEnv::for_test("a_github_actions_job_resolves_vault_and_aws_secrets") else {
        return;
    };
    let fake = FakeActions::start(Answer::Token, minting(&env));
    let github = |env: &E2eEnv| {
        let mut cmd = cli(env);
        cmd.env("GITHUB_ACTIONS", "true")
            .env("ACTIONS_ID_TOKEN_REQUEST_URL", &fake.url)
            .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN);
        cmd
    };

    let vault = resolve_json(&mut github(&env), "vault-file-false.yml", "job_using_vault");
    assert_eq!(
        vault,
        [(
            "DATABASE_PASSWORD".to_owned(),
            "this-is-a-password".to_owned()
        )]
    );
    let aws = resolve_json(&mut github(&env), "aws-oidc.yml", "database-migration");
    assert_eq!(
        aws,
        [("DATABASE_PASSWORD".to_owned(), "db-pass-1234".to_owned())]
    );
    let audiences: Vec<_> = fake
        .seen()
        .iter()
        .map(|s| s.param("audience").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        audiences,
        ["https://vault.example.com", "sts.amazonaws.com"]
    );

    // `--format github`, as in examples/github-actions: masks on stdout, values in $GITHUB_ENV.
    let dir = tempfile::tempdir().unwrap();
    let github_env = dir.path().join("github_env");
    let out = github(&env)
        .env("GITHUB_ENV", &github_env)
        .args([
            "resolve",
            "--ci-config",
            example("vault-file-false.yml").to_str().unwrap(),
            "--job",
            "job_using_vault",
            "--format",
            "github",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(String::from_utf8_lossy(&out).contains("::add-mask::this-is-a-password"));
    let written = std::fs::read_to_string(&github_env).unwrap();
    assert!(
        written.starts_with("DATABASE_PASSWORD<<ghadelimiter_"),
        "{written:.40}"
    );
    assert!(written.contains("\nthis-is-a-password\n"));
}

#[test]
fn a_buildkite_job_resolves_vault_and_aws_secrets() {
    let Some(env) = E2eEnv::for_test("a_buildkite_job_resolves_vault_and_aws_secrets") else {
        return;
    };
    let mint = minting(&env);
    for (file, job, aud, key, value) in [
        (
            "vault-file-false.yml",
            "job_using_vault",
            "https://vault.example.com",
            "DATABASE_PASSWORD",
            "this-is-a-password",
        ),
        (
            "aws-oidc.yml",
            "database-migration",
            "sts.amazonaws.com",
            "DATABASE_PASSWORD",
            "db-pass-1234",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        support::fake_buildkite_agent(dir.path(), Some(&mint(aud)));
        let got = resolve_json(
            cli(&env)
                .env("PATH", support::path_with(dir.path()))
                .env("BUILDKITE", "true"),
            file,
            job,
        );
        assert_eq!(got, [(key.to_owned(), value.to_owned())], "{file}");
        assert_eq!(
            support::agent_args(dir.path()),
            ["oidc", "request-token", "--audience", aud]
        );
    }
}
