//! `ci-secrets` against the real OpenBao and LocalStack started by `cargo xtask e2e`: every
//! seed example through `--ci-config`, the same jobs through `--job-payload` with identical
//! variables, every output format parsed back, `exec` cleanup and exit codes, bad inputs.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

use assert_cmd::Command;
use auth_oidc::testing::{E2eEnv, GitlabClaims};
use predicates::prelude::*;
use secrecy::ExposeSecret;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/gitlab-ci")
}

const SEED_SHARED_ARN: &str =
    "arn:aws:secretsmanager:us-east-1:987654321098:secret:shared-api-keys-AbCdEf";

/// An example file, a job in it, and the `(variable, value)` pairs it must produce.
type Example = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// The seed examples, with the values the fixtures hold (docs/e2e-fixtures.md).
const EXPECTED: &[Example] = &[
    (
        "aws-iam-role.yml",
        "database-migration",
        &[("DATABASE_PASSWORD", "db-pass-1234")],
    ),
    (
        "aws-oidc.yml",
        "database-migration",
        &[("DATABASE_PASSWORD", "db-pass-1234")],
    ),
    (
        "aws-custom-token.yml",
        "database-migration",
        &[("DATABASE_PASSWORD", "db-pass-1234")],
    ),
    (
        "aws-short-form.yml",
        "api-deployment",
        &[
            ("API_KEY", "api-key-5678"),
            (
                "FULL_SECRET",
                r#"{"api_key":"api-key-5678","endpoint":"https://api.example.com"}"#,
            ),
        ],
    ),
    (
        "aws-versions.yml",
        "production-deployment",
        &[
            ("DATABASE_PASSWORD", "new-pass-2222"),
            ("STAGING_DATABASE_PASSWORD", "old-pass-1111"),
        ],
    ),
    (
        "aws-cross-account.yml",
        "cross-account-deployment",
        &[("SHARED_API_KEY", "shared-prod-key-7777")],
    ),
    (
        "aws-per-secret-overrides.yml",
        "multi-region-deployment",
        &[
            ("EU_DATABASE_PASSWORD", "eu-pass-4444"),
            ("US_DATABASE_PASSWORD", "us-pass-3333"),
        ],
    ),
    (
        "vault-short-form.yml",
        "job_using_vault",
        &[("DATABASE_PASSWORD", "this-is-a-password")],
    ),
    (
        "vault-file-false.yml",
        "job_using_vault",
        &[("DATABASE_PASSWORD", "this-is-a-password")],
    ),
    (
        "vault-generic-engine.yml",
        "job_using_vault",
        &[("JFROG_TOKEN", "jfrog-token-abcdef12")],
    ),
];

struct Ctx {
    env: E2eEnv,
    dir: tempfile::TempDir,
}

impl Ctx {
    fn new(test: &str) -> Option<Self> {
        Some(Self {
            env: E2eEnv::for_test(test)?,
            dir: tempfile::tempdir().unwrap(),
        })
    }

    fn token(&self, aud: &str) -> String {
        let minted = self
            .env
            .minter()
            .mint(&GitlabClaims::new().with_audience(aud))
            .unwrap();
        minted.expose_secret().to_owned()
    }

    /// The runner host's environment: provider endpoints and default-chain keys.
    fn host_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.env.aws_endpoint()),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// The job's environment: settings, predefined variables, and its ID tokens.
    fn job_env(&self, config: &Path, job: &str) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(config).unwrap();
        let job = secrets_core_job(&text, job);
        let mut env: Vec<(String, String)> = [
            ("VAULT_SERVER_URL", self.env.vault_addr()),
            ("VAULT_AUTH_ROLE", "ci"),
            ("CI_JOB_ID", "1001"),
            ("CI_PROJECT_ID", "42"),
            ("CI_SERVER_HOST", "gitlab.example.com"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (name, aud) in job {
            env.push((name, self.token(&aud)));
        }
        env
    }

    /// The example, with the seed's cross-account ARN pointed at the seeded secret.
    fn example(&self, name: &str) -> PathBuf {
        let text = std::fs::read_to_string(examples().join(name))
            .unwrap()
            .replace(SEED_SHARED_ARN, self.env.shared_secret_arn());
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn cli(&self, env: &[(String, String)]) -> Command {
        let mut cmd = Command::cargo_bin("ci-secrets").unwrap();
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.host_env())
            .envs(env.iter().cloned());
        cmd
    }
}

/// `(token variable, first aud)` of a job's `id_tokens:`, read with the crate itself.
fn secrets_core_job(text: &str, job: &str) -> Vec<(String, String)> {
    let config = secrets_core::gitlab_ci::CiConfig::from_yaml(text).unwrap();
    config
        .job(job)
        .unwrap()
        .id_tokens()
        .iter()
        .map(|t| (t.name.clone(), t.aud[0].clone()))
        .collect()
}

fn variables(json: &[u8]) -> BTreeMap<String, (String, bool)> {
    let doc: Value = serde_json::from_slice(json).unwrap();
    doc["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let file = v["file"].as_bool().unwrap();
            let value = v["value"].as_str().unwrap().to_owned();
            let value = if file {
                std::fs::read_to_string(&value).unwrap()
            } else {
                value
            };
            (v["key"].as_str().unwrap().to_owned(), (value, file))
        })
        .collect()
}

#[test]
fn every_seed_example_resolves_and_the_payload_route_agrees() {
    let Some(ctx) = Ctx::new("every_seed_example_resolves_and_the_payload_route_agrees") else {
        return;
    };
    for (file, job, expected) in EXPECTED {
        let config = ctx.example(file);
        let env = ctx.job_env(&config, job);
        let files = ctx.dir.path().join(format!("files-{job}-{file}"));
        let out = ctx
            .cli(&env)
            .args(["resolve", "--format", "json", "--job", job, "--files-dir"])
            .arg(&files)
            .arg("--ci-config")
            .arg(&config)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let got = variables(&out);
        for (key, value) in *expected {
            assert_eq!(got[*key].0, *value, "{file} {job} {key}");
        }

        // The same job as the payload GitLab would send, plus the job's variables.
        let check = ctx
            .cli(&env)
            .args(["check", "--format", "json", "--job", job, "--ci-config"])
            .arg(&config)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let check: Value = serde_json::from_slice(&check).unwrap();
        let resolved: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            check["plan"]["requests"], resolved["report"]["requests"],
            "{file} {job}: check plans exactly the requests resolve sends"
        );
        let job_variables: Vec<Value> = env
            .iter()
            .map(
                |(k, v)| serde_json::json!({"key": k, "value": v, "public": false, "masked": true}),
            )
            .collect();
        let payload =
            serde_json::json!({"secrets": check["payload"]["secrets"], "variables": job_variables});
        let payload_file = ctx.dir.path().join(format!("{job}-{file}.json"));
        std::fs::write(&payload_file, payload.to_string()).unwrap();
        let out = ctx
            .cli(&[])
            .args(["resolve", "--format", "json", "--files-dir"])
            .arg(ctx.dir.path().join(format!("payload-files-{job}-{file}")))
            .arg("--job-payload")
            .arg(&payload_file)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        assert_eq!(
            variables(&out),
            got,
            "{file} {job}: --job-payload gives the same variables"
        );
    }
}

#[test]
fn every_output_format_parses_back() {
    let Some(ctx) = Ctx::new("every_output_format_parses_back") else {
        return;
    };
    let config = ctx.example("aws-short-form.yml");
    let env = ctx.job_env(&config, "api-deployment");
    let run = |format: &str, extra: &[(String, String)]| {
        let mut all = env.clone();
        all.extend(extra.iter().cloned());
        ctx.cli(&all)
            .args([
                "resolve",
                "--job",
                "api-deployment",
                "--format",
                format,
                "--ci-config",
            ])
            .arg(&config)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    };
    let full = r#"{"api_key":"api-key-5678","endpoint":"https://api.example.com"}"#;

    // dotenv: bare values, or double-quoted with escapes.
    let dotenv = String::from_utf8(run("dotenv", &[])).unwrap();
    assert!(dotenv.contains("API_KEY=api-key-5678\n"), "{dotenv}");
    assert!(dotenv.contains(r#"FULL_SECRET="{\"api_key\":\"api-key-5678\",\"endpoint\":\"https://api.example.com\"}""#), "{dotenv}");

    // shell: eval'd by a real shell.
    let shell = String::from_utf8(run("shell", &[])).unwrap();
    let echoed = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{shell}\nprintf '%s|%s' \"$API_KEY\" \"$FULL_SECRET\""
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(echoed.stdout).unwrap(),
        format!("api-key-5678|{full}")
    );

    // json
    let json = run("json", &[]);
    let got = variables(&json);
    assert_eq!(got["FULL_SECRET"].0, full);

    // github: masks on stdout, heredoc entries appended to $GITHUB_ENV.
    let github_env = ctx.dir.path().join("github_env");
    let masks = String::from_utf8(run(
        "github",
        &[("GITHUB_ENV".to_owned(), github_env.display().to_string())],
    ))
    .unwrap();
    assert!(masks.contains("::add-mask::api-key-5678\n"), "{masks}");
    let entries = std::fs::read_to_string(&github_env).unwrap();
    let lines: Vec<&str> = entries.lines().collect();
    assert!(lines[0].starts_with("API_KEY<<ghadelimiter_"), "{entries}");
    assert_eq!(lines[1], "api-key-5678");
    assert_eq!(lines[2], &lines[0]["API_KEY<<".len()..]);
}

#[test]
fn exec_passes_secrets_and_removes_files() {
    let Some(ctx) = Ctx::new("exec_passes_secrets_and_removes_files") else {
        return;
    };
    let config = ctx.example("vault-short-form.yml");
    let env = ctx.job_env(&config, "job_using_vault");
    let seen = ctx.dir.path().join("seen");
    ctx.cli(&env)
        .args(["exec", "--job", "job_using_vault", "--ci-config"])
        .arg(&config)
        .arg("--")
        .args([
            "sh",
            "-c",
            r#"printf '%s\n%s' "$DATABASE_PASSWORD" "$(cat "$DATABASE_PASSWORD")" > "$0"; exit 5"#,
        ])
        .arg(&seen)
        .assert()
        .code(5);
    let seen = std::fs::read_to_string(&seen).unwrap();
    let (path, value) = seen.split_once('\n').unwrap();
    assert_eq!(value, "this-is-a-password");
    assert!(
        !Path::new(path).exists(),
        "the file is gone after the child exited"
    );
    assert!(
        !Path::new(path).parent().unwrap().exists(),
        "and its directory"
    );
}

#[test]
fn refusals_and_unreachable_servers_exit_3_and_leave_nothing() {
    let Some(ctx) = Ctx::new("refusals_and_unreachable_servers_exit_3_and_leave_nothing") else {
        return;
    };
    let config = ctx.dir.path().join("bad.yml");
    std::fs::write(
        &config,
        "job:\n  id_tokens:\n    VAULT_ID_TOKEN:\n      aud: https://vault.example.com\n  secrets:\n    DENIED:\n      vault: admin/root/password@secret\n    MISSING:\n      vault: ci/nothing-here/password@secret\n    NO_FIELD:\n      vault: ci/app/nope@secret\n",
    )
    .unwrap();
    let files = ctx.dir.path().join("files");
    let env = ctx.job_env(&config, "job");
    ctx.cli(&env)
        .args(["resolve", "--job", "job", "--files-dir"])
        .arg(&files)
        .arg("--ci-config")
        .arg(&config)
        .assert()
        .code(3)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("3 of 3 secrets failed"))
        .stderr(predicate::str::contains(
            "DENIED (vault kv-v2 mount secret path admin/root field password",
        ))
        .stderr(predicate::str::contains(
            "do not grant read on secret/data/admin/root",
        ))
        .stderr(predicate::str::contains("MISSING"))
        .stderr(predicate::str::contains("NO_FIELD"));
    assert!(!files.exists() || std::fs::read_dir(&files).unwrap().next().is_none());

    let mut unreachable = env.clone();
    unreachable.push(("VAULT_SERVER_URL".into(), "http://127.0.0.1:9".into()));
    ctx.cli(&unreachable)
        .args([
            "resolve",
            "--request-timeout",
            "2",
            "--job",
            "job",
            "--ci-config",
        ])
        .arg(&config)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("127.0.0.1:9"));

    // A token for the wrong audience: the server refuses the login.
    let mut wrong_aud = env.clone();
    wrong_aud.retain(|(k, _)| k != "VAULT_ID_TOKEN");
    wrong_aud.push((
        "VAULT_ID_TOKEN".into(),
        ctx.token("https://other.example.com"),
    ));
    ctx.cli(&wrong_aud)
        .args(["resolve", "--job", "job", "--ci-config"])
        .arg(&config)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("aud"));
}
