//! `exec` starts the child while the Vault token's revoke is in flight, and `resolve` writes
//! its files while it is; both wait for the revoke before they exit. The revoke's answer is
//! held back (a fault, not a timing): the child has run and the revoke has reached the server
//! while the tool is still waiting. Mock Vault (wiremock), no services.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

use base64::Engine as _;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

const REVOKE: &str = "/v1/auth/token/revoke-self";
/// Far longer than the tool takes to start a child against a local server.
const HELD_BACK: Duration = Duration::from_secs(4);

fn jwt() -> String {
    let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.c2ln",
        b(r#"{"alg":"RS256"}"#),
        b(r#"{"aud":"https://vault.example.com","sub":"s","exp":4102444800}"#)
    )
}

async fn vault(revoke_delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path("/v1/auth/jwt/login"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"auth": {"client_token": "hvs.overlap", "lease_duration": 60}}),
            ),
        )
        .mount(&server)
        .await;
    Mock::given(path("/v1/secret/data/ci/app"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"data": {"data": {"password": "pw-overlap", "cert": "cert-overlap"}}}),
        ))
        .mount(&server)
        .await;
    Mock::given(path(REVOKE))
        .respond_with(ResponseTemplate::new(204).set_delay(revoke_delay))
        .mount(&server)
        .await;
    server
}

fn payload(dir: &Path, server: &MockServer) -> PathBuf {
    let secret = |field: &str, file: bool| {
        json!({"vault": {"server": {"url": server.uri(), "auth": {"name": "jwt", "path": "jwt",
                   "data": {"jwt": "$VAULT_ID_TOKEN"}}},
               "engine": {"name": "kv-v2", "path": "secret"}, "path": "ci/app", "field": field},
               "file": file})
    };
    let payload = json!({
        "variables": [{"key": "VAULT_ID_TOKEN", "value": jwt(), "masked": true}],
        "secrets": {"PASSWORD": secret("password", false), "CERT": secret("cert", true)},
    });
    let file = dir.join("job.json");
    std::fs::write(&file, payload.to_string()).unwrap();
    file
}

fn tool(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ci-secrets"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(args);
    cmd
}

async fn revokes(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == REVOKE)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_the_child_while_the_revoke_is_in_flight_and_waits_for_it() {
    let server = vault(HELD_BACK).await;
    let dir = tempfile::tempdir().unwrap();
    let job = payload(dir.path(), &server);
    let marker = dir.path().join("child-ran");
    let script = format!(
        "test \"$PASSWORD\" = pw-overlap && test -s \"$CERT\" && echo ran > '{}'; exit 7",
        marker.display()
    );
    let mut child = tool(&["-q", "exec", "--job-payload"])
        .arg(&job)
        .args(["--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();

    // The child has run and exited, the revoke has reached the server, and the tool is
    // still waiting for the revoke's answer.
    let mut seen = false;
    for _ in 0..300 {
        if marker.exists() && revokes(&server).await == 1 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen, "the child ran and the revoke was sent");
    assert!(
        child.try_wait().unwrap().is_none(),
        "exec waits for the revoke before it exits"
    );
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(7), "the child's exit code");
    assert_eq!(revokes(&server).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_writes_files_while_the_revoke_is_in_flight_and_reports_it() {
    let server = vault(HELD_BACK).await;
    let dir = tempfile::tempdir().unwrap();
    let job = payload(dir.path(), &server);
    let files = dir.path().join("files");
    let mut child = tool(&["-q", "resolve", "--format", "json", "--job-payload"])
        .arg(&job)
        .arg("--files-dir")
        .arg(&files)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    let written = || {
        std::fs::read_dir(&files)
            .map(|d| d.count())
            .unwrap_or_default()
    };
    let mut seen = false;
    for _ in 0..300 {
        if written() == 1 && revokes(&server).await == 1 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen, "the file was written and the revoke was sent");
    assert!(
        child.try_wait().unwrap().is_none(),
        "resolve waits for the revoke before it exits"
    );
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["report"]["requests"]["vault_revoke"], 1, "{doc}");
    assert_eq!(doc["report"]["requests"]["vault_read"], 1, "{doc}");
    assert_eq!(revokes(&server).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_and_exec_revoke_before_they_exit() {
    let server = vault(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let job = payload(dir.path(), &server);
    for (n, args) in [
        vec!["-q", "resolve", "--format", "dotenv", "--job-payload"],
        vec!["-q", "exec", "--job-payload"],
    ]
    .into_iter()
    .enumerate()
    {
        let mut cmd = tool(&args);
        cmd.arg(&job);
        if args.contains(&"exec") {
            cmd.args(["--", "true"]);
        } else {
            cmd.arg("--files-dir").arg(dir.path().join("files"));
        }
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert_eq!(revokes(&server).await, n + 1, "{args:?}");
    }
}
