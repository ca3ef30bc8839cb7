//! Nothing left behind after the worst endings: `ci-secrets exec` killed with SIGKILL leaves
//! no readable file in memory mode and a directory that the next start sweeps in directory
//! mode; a running `ci-secrets` cannot dump core nor be read through `/proc` by other
//! processes of its user.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

mod common;

use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const VALUE: &str = "-----BEGIN KEY-----\nleft-behind-canary-7f3a\n-----END KEY-----\n";

async fn vault() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v1/auth/jwt/login"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"auth": {"client_token": "hvs.left", "lease_duration": 60}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/token/revoke-self"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/ci/key"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"data": {"data": {"pem": VALUE}, "metadata": {"version": 1}}}),
            ),
        )
        .mount(&server)
        .await;
    server
}

/// A payload with the file variable `KEY`.
fn payload(dir: &Path, url: &str) -> PathBuf {
    let mut key = vault_secret(url, "secret", "ci/key", "pem", "$VAULT_ID_TOKEN");
    key.file = Some(true);
    let doc = json!({
        "variables": [{"key": "VAULT_ID_TOKEN", "value": jwt("aud", "c2ln"), "public": false}],
        "secrets": { "KEY": key },
    });
    let file = dir.join("payload.json");
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
        .current_dir(tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// `ci-secrets exec [--file-backing BACKING] -- sh -c SCRIPT`.
fn exec(tmp: &Path, url: &str, backing: &str, script: &str) -> tokio::process::Command {
    let mut command = cli(tmp);
    command
        .args(["exec", "--file-backing", backing, "--job-payload"])
        .arg(payload(tmp, url))
        .args(["--", "sh", "-c", script]);
    command
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

fn kill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

fn gone(pid: i32) -> bool {
    // A zombie still has /proc/<pid>; its state is `Z`.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
        .unwrap_or(true)
}

async fn wait_gone(pid: i32) {
    for _ in 0..400 {
        if gone(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("process {pid} did not go");
}

/// Every regular file under `dir` (recursively) whose contents hold `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            out.extend(files_holding(&path, needle));
        } else if meta.is_file()
            && std::fs::read(&path).is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle))
        {
            out.push(path);
        }
    }
    out
}

fn secret_dirs(tmp: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(tmp)
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ci-secrets-"))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_memory_mode_leaves_nothing_readable() {
    let server = vault().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let at = tmp.path().to_owned();
    // The child and a grandchild both read the file; then the child waits to be killed.
    let script = r#"printf '%s\n' "$KEY" > path; sh -c 'cat "$KEY"' > copy; stat -L -c %a "$KEY" > mode; if printf x >> "$KEY" 2>/dev/null; then echo yes; else echo no; fi > writable; echo $$ > pid; exec sleep 30"#;
    let child = exec(&at, &server.uri(), "memory", script)
        .spawn()
        .expect("spawn");
    let cli_pid = child.id().expect("pid") as i32;
    let pid: i32 = wait_for(&at.join("pid")).await.trim().parse().expect("pid");
    let file = PathBuf::from(wait_for(&at.join("path")).await.trim());
    assert!(
        file.starts_with("/proc/self/fd/"),
        "a memory file: {}",
        file.display()
    );
    assert_eq!(
        std::fs::read_to_string(at.join("copy")).expect("copy"),
        VALUE
    );
    assert_eq!(
        std::fs::read_to_string(at.join("mode")).expect("mode"),
        "400\n"
    );
    assert_eq!(
        std::fs::read_to_string(at.join("writable")).expect("writable"),
        "no\n",
        "sealed read-only"
    );
    assert_eq!(
        secret_dirs(&at),
        Vec::<String>::new(),
        "no directory at all"
    );

    // The worst ending: both killed, nothing runs any cleanup.
    kill(cli_pid);
    kill(pid);
    let out = tokio::time::timeout(HANG, child.wait_with_output())
        .await
        .expect("ci-secrets went")
        .expect("wait");
    assert_eq!(out.status.code(), None, "killed by a signal");
    wait_gone(pid).await;

    std::fs::remove_file(at.join("copy")).expect("remove the test's own copy");
    assert_eq!(
        files_holding(&at, "left-behind-canary"),
        Vec::<PathBuf>::new()
    );
    assert_eq!(secret_dirs(&at), Vec::<String>::new());
    let fd = file.file_name().expect("fd").to_string_lossy().into_owned();
    for process in [cli_pid, pid] {
        assert!(
            !Path::new(&format!("/proc/{process}/fd/{fd}")).exists(),
            "no process holds the memory file"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_directory_mode_is_swept_at_the_next_start() {
    let server = vault().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let at = tmp.path().to_owned();
    // Someone else's directories with our prefix are never touched.
    let unmarked = at.join("ci-secrets-not-ours");
    std::fs::create_dir(&unmarked).expect("mkdir");
    std::fs::write(unmarked.join("KEY"), "keep").expect("write");

    let script = r#"printf '%s\n' "$KEY" > path; echo $$ > pid; exec sleep 30"#;
    let child = exec(&at, &server.uri(), "dir", script)
        .spawn()
        .expect("spawn");
    let cli_pid = child.id().expect("pid") as i32;
    let pid: i32 = wait_for(&at.join("pid")).await.trim().parse().expect("pid");
    let file = PathBuf::from(wait_for(&at.join("path")).await.trim());
    assert!(file.starts_with(&at), "{}", file.display());
    let dir = file.parent().expect("dir").to_owned();
    let name = dir
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with(&format!("ci-secrets-p{cli_pid}s")),
        "marked with its owner: {name}"
    );

    kill(cli_pid);
    let mut child = child;
    // Not `wait_with_output`: the child still holds the pipes.
    let status = tokio::time::timeout(HANG, child.wait())
        .await
        .expect("ci-secrets went")
        .expect("wait");
    assert_eq!(status.code(), None);
    assert_eq!(
        std::fs::read_to_string(&file).expect("left behind by SIGKILL"),
        VALUE,
        "the premise: SIGKILL skips the cleanup"
    );

    // While the child still runs, the owner (ci-secrets) is gone: the next start sweeps.
    let mut next = cli(&at);
    next.args(["check", "--job-payload"])
        .arg(at.join("payload.json"));
    let out = tokio::time::timeout(HANG, next.output())
        .await
        .expect("check finished")
        .expect("check ran");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.exists(), "the stale directory is swept");
    assert_eq!(secret_dirs(&at), ["ci-secrets-not-ours"]);
    assert_eq!(
        std::fs::read_to_string(unmarked.join("KEY")).expect("kept"),
        "keep"
    );
    kill(pid);
    wait_gone(pid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_ci_secrets_cannot_dump_core_nor_be_read() {
    // Root may read any process's memory (CAP_SYS_PTRACE): observe as an unprivileged user.
    let root = nix::unistd::geteuid().is_root();
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if root && setpriv.is_none() {
        #[allow(clippy::print_stderr, reason = "a skipped test says why")]
        {
            eprintln!("skipped: running as root without setpriv to drop to an unprivileged user");
        }
        return;
    }
    let unprivileged = |program: &str| {
        let mut command = match (root, setpriv) {
            (true, Some(setpriv)) => {
                let mut c = tokio::process::Command::new(setpriv);
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups", program]);
                c
            }
            _ => tokio::process::Command::new(program),
        };
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", "/")
            .env("TMPDIR", "/tmp")
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    };
    let bin = ci_secrets_bin();
    let mut command = unprivileged(&bin.display().to_string());
    command.args(["exec", "--job-payload", "-", "--", "sleep", "30"]);
    let mut cli = command.spawn().expect("spawn");
    let cli_pid = cli.id().expect("pid") as i32;
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = cli.stdin.take().expect("stdin");
        let doc = json!({"variables": [{"key": "CANARY_VAR", "value": "v"}], "secrets": {}});
        stdin
            .write_all(doc.to_string().as_bytes())
            .await
            .expect("payload");
    }
    // The child `sleep` is a dumpable process of the same user: the contrast.
    let mut sleep_pid = None;
    for _ in 0..400 {
        let children = std::fs::read_to_string(format!("/proc/{cli_pid}/task/{cli_pid}/children"))
            .unwrap_or_default();
        if let Some(pid) = children.split_whitespace().next() {
            let pid: i32 = pid.parse().expect("pid");
            if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "sleep\n") {
                sleep_pid = Some(pid);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let sleep_pid = sleep_pid.expect("the child started");

    let limits = std::fs::read_to_string(format!("/proc/{cli_pid}/limits")).expect("limits");
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("core limit");
    assert_eq!(
        core.split_whitespace().nth(4),
        Some("0"),
        "soft core limit 0: {core}"
    );
    let read_environ = |pid: i32| {
        let mut command = unprivileged("cat");
        command.arg(format!("/proc/{pid}/environ"));
        async move {
            let out = command.output().await.expect("cat");
            out.status.success()
        }
    };
    assert!(
        read_environ(sleep_pid).await,
        "the observer can read a dumpable process of the same user"
    );
    assert!(
        !read_environ(cli_pid).await,
        "but not ci-secrets: it is not dumpable"
    );
    kill(sleep_pid);
    let out = tokio::time::timeout(HANG, cli.wait_with_output())
        .await
        .expect("ci-secrets went")
        .expect("wait");
    assert_eq!(
        out.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
