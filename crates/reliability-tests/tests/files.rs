//! File variables through `ci-secrets`: 0600 files in a 0700 directory, a pre-existing file
//! or symlink at the target refused and not followed, nothing written on failure, and
//! `ci-secrets exec` removing the files after a normal exit, when the child is killed
//! (SIGKILL) and when the command itself gets SIGTERM (forwarded to the child).
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

mod common;

use common::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const VALUE: &str = "-----BEGIN CERTIFICATE-----\nfile-variable-value\n-----END CERTIFICATE-----\n";

async fn bounded<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG, fut)
        .await
        .expect("the test hung past its bound")
}

async fn vault() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v1/auth/jwt/login"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"auth": {"client_token": "hvs.files", "lease_duration": 60}}),
            ),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/token/revoke-self"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/ci/cert"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"data": {"data": {"pem": VALUE}, "metadata": {"version": 1}}}),
            ),
        )
        .mount(&server)
        .await;
    server
}

/// A payload with the file variable `CERT` (and, when `failing`, a secret that fails).
fn payload(dir: &Path, url: &str, failing: bool) -> PathBuf {
    let mut cert = vault_secret(url, "secret", "ci/cert", "pem", "$VAULT_ID_TOKEN");
    cert.file = Some(true);
    let mut secrets = json!({ "CERT": cert });
    if failing {
        let mut missing = vault_secret(url, "secret", "ci/missing", "pem", "$VAULT_ID_TOKEN");
        missing.file = Some(true);
        secrets["MISSING"] = serde_json::to_value(missing).unwrap_or_default();
    }
    let doc = json!({
        "variables": [{"key": "VAULT_ID_TOKEN", "value": jwt("aud", "c2ln"), "public": false}],
        "secrets": secrets,
    });
    let file = dir.join(if failing {
        "failing.json"
    } else {
        "payload.json"
    });
    std::fs::write(&file, doc.to_string()).expect("write payload");
    file
}

fn cli(tmp: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(ci_secrets_bin());
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", tmp)
        .env("TMPDIR", tmp)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

async fn output(mut command: tokio::process::Command) -> std::process::Output {
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("ci-secrets finished in time")
        .expect("ci-secrets ran")
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("exists")
        .permissions()
        .mode()
        & 0o777
}

/// The `ci-secrets-*` directories left in `tmp`.
fn leftovers(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("ci-secrets-") || n.starts_with(".ci-secrets-"))
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_for(file: &Path) -> String {
    for _ in 0..400 {
        if let Ok(text) = std::fs::read_to_string(file)
            && text.ends_with('\n')
        {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} never appeared", file.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_writes_0600_files_in_a_0700_directory() {
    bounded(async {
        let server = vault().await;
        let tmp = tempfile::tempdir().expect("tempdir");
        let files = tmp.path().join("files");
        let mut command = cli(tmp.path());
        command
            .args(["resolve", "--format", "dotenv", "--job-payload"])
            .arg(payload(tmp.path(), &server.uri(), false))
            .arg("--files-dir")
            .arg(&files);
        let out = output(command).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let file = files.join("CERT");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("CERT={}\n", file.display())
        );
        assert_eq!(mode(&files), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read_to_string(&file).expect("read"), VALUE);
        let names: Vec<_> = std::fs::read_dir(&files)
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["CERT"], "no temporary file left");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preexisting_file_or_symlink_at_the_target_is_refused_not_followed() {
    bounded(async {
        let server = vault().await;
        let tmp = tempfile::tempdir().expect("tempdir");
        let input = payload(tmp.path(), &server.uri(), false);
        let outside = tmp.path().join("outside");
        for existing in ["file", "symlink"] {
            let files = tmp.path().join(format!("files-{existing}"));
            std::fs::create_dir(&files).expect("mkdir");
            std::fs::set_permissions(&files, std::fs::Permissions::from_mode(0o700))
                .expect("chmod");
            let target = files.join("CERT");
            if existing == "file" {
                std::fs::write(&target, "old").expect("write");
            } else {
                std::os::unix::fs::symlink(&outside, &target).expect("symlink");
            }
            let mut command = cli(tmp.path());
            command
                .args(["resolve", "--job-payload"])
                .arg(&input)
                .arg("--files-dir")
                .arg(&files);
            let out = output(command).await;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{existing}: {stderr}");
            assert!(stderr.contains("already exists"), "{existing}: {stderr}");
            assert!(stderr.contains("CERT"), "names the variable: {stderr}");
            assert_eq!(out.stdout, b"", "nothing printed");
            assert!(
                !outside.exists(),
                "{existing}: the symlink was not followed"
            );
            if existing == "file" {
                assert_eq!(std::fs::read_to_string(&target).expect("read"), "old");
            } else {
                assert!(
                    std::fs::symlink_metadata(&target)
                        .expect("still there")
                        .is_symlink()
                );
            }
            let count = std::fs::read_dir(&files).expect("list").count();
            assert_eq!(count, 1, "{existing}: no temporary file left");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_written_when_any_secret_fails() {
    bounded(async {
        let server = vault().await;
        let tmp = tempfile::tempdir().expect("tempdir");
        let files = tmp.path().join("files");
        let mut command = cli(tmp.path());
        command
            .args(["resolve", "--job-payload"])
            .arg(payload(tmp.path(), &server.uri(), true))
            .arg("--files-dir")
            .arg(&files);
        let out = output(command).await;
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"");
        assert!(
            !files.exists() || std::fs::read_dir(&files).expect("list").count() == 0,
            "no file on failure"
        );
        assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
    })
    .await;
}

/// `ci-secrets exec -- sh -c SCRIPT` with the file variable `CERT`.
fn exec(tmp: &Path, url: &str, script: &str) -> tokio::process::Command {
    let mut command = cli(tmp);
    command
        .args(["exec", "--job-payload"])
        .arg(payload(tmp, url, false))
        .args(["--", "sh", "-c", script])
        .current_dir(tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_removes_the_files_after_a_normal_exit_and_passes_the_exit_code() {
    bounded(async {
        let server = vault().await;
        let tmp = tempfile::tempdir().expect("tempdir");
        let script = r#"printf '%s\n' "$CERT" > path; stat -c %a "$CERT" > mode; stat -c %a "$(dirname "$CERT")" >> mode; cat "$CERT" > copy; exit 7"#;
        let out = output(exec(tmp.path(), &server.uri(), script)).await;
        assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
        let at = tmp.path();
        let file = PathBuf::from(std::fs::read_to_string(at.join("path")).expect("path").trim());
        assert!(file.starts_with(at), "the files live under TMPDIR: {}", file.display());
        assert_eq!(std::fs::read_to_string(at.join("mode")).expect("mode"), "600\n700\n");
        assert_eq!(std::fs::read_to_string(at.join("copy")).expect("copy"), VALUE);
        assert!(!file.exists(), "the file is removed");
        assert_eq!(leftovers(at), Vec::<String>::new(), "the directory is removed");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_removes_the_files_when_the_child_is_killed() {
    bounded(async {
        let server = vault().await;
        let tmp = tempfile::tempdir().expect("tempdir");
        let at = tmp.path().to_owned();
        let script = r#"printf '%s\n' "$CERT" > path; echo $$ > pid; exec sleep 30"#;
        let child = exec(&at, &server.uri(), script).spawn().expect("spawn");
        let pid: i32 = wait_for(&at.join("pid")).await.trim().parse().expect("pid");
        let file = PathBuf::from(wait_for(&at.join("path")).await.trim());
        assert!(file.exists(), "the file exists while the child runs");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill the child");
        let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .expect("ci-secrets exits after its child")
            .expect("wait");
        assert_eq!(
            out.status.code(),
            Some(128 + 9),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!file.exists(), "the file is removed");
        assert_eq!(leftovers(&at), Vec::<String>::new());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_forwards_sigterm_to_the_child_and_removes_the_files() {
    bounded(async {
        let server = vault().await;
        let tmp = tempfile::tempdir().expect("tempdir");
        let at = tmp.path().to_owned();
        let script = r#"trap 'echo got-term > term; exit 143' TERM; printf '%s\n' "$CERT" > path; echo ready > ready; while :; do sleep 0.05; done"#;
        let child = exec(&at, &server.uri(), script).spawn().expect("spawn");
        let cli_pid = child.id().expect("pid") as i32;
        wait_for(&at.join("ready")).await;
        let file = PathBuf::from(wait_for(&at.join("path")).await.trim());
        assert!(file.exists());
        // The command installs its handlers right after starting the child.
        tokio::time::sleep(Duration::from_millis(300)).await;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(cli_pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("signal ci-secrets");
        let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .expect("ci-secrets exits after its child")
            .expect("wait");
        assert_eq!(out.status.code(), Some(143), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            std::fs::read_to_string(at.join("term")).expect("the child got SIGTERM"),
            "got-term\n"
        );
        assert!(!file.exists(), "the file is removed");
        assert_eq!(leftovers(&at), Vec::<String>::new());
    })
    .await;
}
