//! The CLI without servers: help, check, bad inputs, doctor, exit codes, nothing left behind.

use assert_cmd::Command;
use base64::Engine as _;
use predicates::prelude::*;
use std::path::{Path, PathBuf};

fn seeds() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/gitlab-ci")
}

fn cli() -> Command {
    let mut cmd = Command::cargo_bin("ci-secrets").unwrap();
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

fn jwt(claims: &str) -> String {
    let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.c2lnLWNhbmFyeQ",
        b(r#"{"alg":"RS256","kid":"k"}"#),
        b(claims)
    )
}

#[test]
fn help_shows_examples_and_exit_codes() {
    cli()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:"))
        .stdout(predicate::str::contains("Exit codes:"))
        .stdout(predicate::str::contains("3  a provider refused"));
}

#[test]
fn check_prints_the_plan_offline() {
    cli()
        .args(["check", "--ci-config"])
        .arg(seeds().join("aws-per-secret-overrides.yml"))
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "job multi-region-deployment: 2 secrets, 2 logins, 2 reads, 0 batches",
        ))
        .stdout(predicate::str::contains(
            "token $EU_AWS_TOKEN expands to nothing",
        ));
}

#[test]
fn check_json_has_the_payload_gitlab_would_send() {
    let out = cli()
        .args([
            "check",
            "--format",
            "json",
            "--job",
            "job_using_vault",
            "--ci-config",
        ])
        .arg(seeds().join("vault-short-form.yml"))
        .env("VAULT_ID_TOKEN", jwt(r#"{"aud":"x"}"#))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let vault = &doc["payload"]["secrets"]["DATABASE_PASSWORD"]["vault"];
    assert_eq!(vault["engine"]["path"], "ops");
    assert_eq!(vault["server"]["auth"]["data"]["jwt"], "$VAULT_ID_TOKEN");
    assert_eq!(doc["plan"]["logins"], 1);
    assert_eq!(doc["warnings"].as_array().unwrap().len(), 0);
    assert!(
        !String::from_utf8_lossy(&out).contains("c2lnLWNhbmFyeQ"),
        "never the token"
    );
}

#[test]
fn check_reports_the_seed_mistake_with_its_fix() {
    cli()
        .args(["check", "--ci-config"])
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../secrets-core/tests/fixtures/seed-002-id-tokens-under-secrets.yml"),
        )
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "move `id_tokens:` out of `secrets:`",
        ));
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_follows_local_includes_and_warns_of_the_others() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("ci")).unwrap();
    write(
        dir.path(),
        "ci/secrets.yml",
        "variables:\n  VAULT_SERVER_URL: https://vault.example.com\n\
         deploy:\n  id_tokens:\n    VAULT_ID_TOKEN:\n      aud: https://vault.example.com\n  \
         secrets:\n    DB_PASSWORD:\n      vault: production/db/password@ops\n",
    );
    let main = write(
        dir.path(),
        ".gitlab-ci.yml",
        "include:\n  - local: ci/secrets.yml\n  - project: group/shared\n    file: /jobs.yml\n\
         deploy:\n  script: [./deploy.sh]\n",
    );
    cli()
        .args(["check", "--job", "deploy", "--ci-config"])
        .arg(&main)
        .assert()
        .success()
        .stdout(predicate::str::contains("job deploy: 1 secret"))
        .stderr(predicate::str::contains(
            "`include: project: group/shared file /jobs.yml` is not followed",
        ));
    write(dir.path(), ".gitlab-ci.yml", "include: ci/missing.yml\n");
    cli()
        .args(["check", "--ci-config"])
        .arg(&main)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("include ci/missing.yml"))
        .stderr(predicate::str::contains("cannot read"));
}

#[test]
fn bad_inputs_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let malformed = write(dir.path(), "bad.yml", "job: [unclosed\n");
    let no_url = write(
        dir.path(),
        "no-url.yml",
        "job:\n  secrets:\n    X:\n      vault: a/b@m\n",
    );
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "resolve".into(),
                "--ci-config".into(),
                malformed.display().to_string(),
                "--job".into(),
                "job".into(),
            ],
            "YAML is malformed",
        ),
        (
            vec![
                "resolve".into(),
                "--ci-config".into(),
                no_url.display().to_string(),
                "--job".into(),
                "deploy".into(),
            ],
            "jobs:deploy: no such job in the file; the jobs are: job",
        ),
        (
            vec![
                "resolve".into(),
                "--ci-config".into(),
                no_url.display().to_string(),
                "--job".into(),
                "job".into(),
            ],
            "X (jobs:job:secrets:X:vault)",
        ),
        (
            vec![
                "resolve".into(),
                "--ci-config".into(),
                no_url.display().to_string(),
                "--job".into(),
                "job".into(),
            ],
            "VAULT_SERVER_URL is not set",
        ),
        (
            vec![
                "resolve".into(),
                "--ci-config".into(),
                no_url.display().to_string(),
            ],
            "--job is required with --ci-config; jobs with secrets: job",
        ),
        (
            vec![
                "resolve".into(),
                "--job-payload".into(),
                dir.path().join("missing.json").display().to_string(),
            ],
            "missing.json",
        ),
    ];
    for (args, want) in cases {
        cli()
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(want));
    }
}

#[test]
fn a_malformed_payload_is_reported_without_its_contents() {
    let dir = tempfile::tempdir().unwrap();
    let payload = write(
        dir.path(),
        "job.json",
        r#"{"variables": [{"key": "TOKEN", "value": "canary-value-123", "masked": true}], "secrets": {"X": {"vault": 5}}}"#,
    );
    cli()
        .args(["resolve", "--job-payload"])
        .arg(&payload)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("the job payload is not valid"))
        .stderr(predicate::str::contains("canary").not());
}

#[test]
fn empty_and_expired_tokens_fail_before_any_request_and_leave_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    let yaml = write(
        dir.path(),
        "ci.yml",
        "variables:\n  VAULT_SERVER_URL: http://127.0.0.1:9\njob:\n  id_tokens:\n    VAULT_ID_TOKEN:\n      aud: x\n  secrets:\n    X:\n      vault: a/b@m\n",
    );
    let run = |token: Option<String>| {
        let mut cmd = cli();
        cmd.args(["resolve", "--job", "job", "--files-dir"])
            .arg(&files)
            .arg("--ci-config")
            .arg(&yaml);
        if let Some(token) = token {
            cmd.env("VAULT_ID_TOKEN", token);
        }
        cmd.assert()
    };
    run(None).code(2).stderr(predicate::str::contains(
        "X (vault kv-v2 mount m path a field b at http://127.0.0.1:9, token $VAULT_ID_TOKEN): the ID token is empty",
    ));
    let expired = jwt(r#"{"aud":"x","exp":1000}"#);
    run(Some(expired))
        .code(2)
        .stderr(predicate::str::contains("the ID token expired"))
        .stderr(predicate::str::contains("c2lnLWNhbmFyeQ").not());
    assert!(!files.exists() || std::fs::read_dir(&files).unwrap().next().is_none());
}

#[test]
fn doctor_explains_a_token_without_printing_it() {
    let token = jwt(
        r#"{"iss":"https://gitlab.example.com","aud":"sts.amazonaws.com","sub":"project_path:mygroup/myproject:ref_type:branch:ref:main",
            "exp":99999999999,"project_path":"mygroup/myproject","ref":"main","ref_type":"branch","ref_protected":"true"}"#,
    );
    let out = cli()
        .args([
            "doctor",
            "--token-var",
            "AWS_ID_TOKEN",
            "--for",
            "aws_secrets_manager=arn:aws:iam::123456789012:role/ci",
            "--for",
            "vault=ci",
        ])
        .env("AWS_ID_TOKEN", &token)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "sub            project_path:mygroup/myproject:ref_type:branch:ref:main",
        ))
        .stdout(predicate::str::contains(
            "arn:aws:iam::123456789012:oidc-provider/gitlab.example.com",
        ))
        .stdout(predicate::str::contains(
            "\"gitlab.example.com:aud\": \"sts.amazonaws.com\"",
        ))
        .stdout(predicate::str::contains("\"ref_protected\": \"true\""))
        .get_output()
        .stdout
        .clone();
    assert!(!String::from_utf8_lossy(&out).contains(&token));

    cli()
        .args(["doctor"])
        .write_stdin(jwt(r#"{"aud":"a","exp":1}"#))
        .assert()
        .code(2)
        .stdout(predicate::str::contains("expired"));
    cli()
        .args(["doctor", "--token-var", "NOPE"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("NOPE is not set"));
    cli()
        .args(["doctor"])
        .write_stdin("not-a-token")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a valid JWT"));
}

#[test]
fn exec_returns_the_childs_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let payload = write(
        dir.path(),
        "job.json",
        r#"{"secrets": {}, "variables": []}"#,
    );
    cli()
        .args(["exec", "--job-payload"])
        .arg(&payload)
        .args(["--", "sh", "-c", "exit 7"])
        .assert()
        .code(7);
    cli()
        .args(["exec", "--job-payload"])
        .arg(&payload)
        .args(["--", "sh", "-c", "kill -TERM $$"])
        .assert()
        .code(128 + 15);
}
