//! `exec` masks secret values in the child's output: canaries printed every way a job prints
//! a secret never reach the captured output, and everything else does, byte for byte. The
//! secrets come from a mock Vault (wiremock), so these run without services.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

use base64::Engine as _;
use serde_json::json;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

const PLAIN: &str = "canary-plain-7Hq2xZ";
const CERT: &str =
    "-----BEGIN CANARY-----\ncanary-line-one-Jd83\ncanary-line-two-Kq19\n-----END CANARY-----\n";
const URLY: &str = "canary p@ss/w0rd&x";
const QUOTED: &str = r#"canary-"q"-\back"#;
const OVERLAP_A: &str = "canary-ovl-AAAA";
const OVERLAP_B: &str = "ovl-AAAA-tail-BBBB";

/// Pieces of the canaries that must never appear in captured output.
const FRAGMENTS: &[&str] = &[
    "canary-plain",
    "7Hq2xZ",
    "Jd83",
    "Kq19",
    "p@ss",
    "%40ss",
    "w0rd",
    "back",
    "AAAA",
    "BBBB",
];

fn jwt() -> String {
    let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.c2lnLWNhbmFyeQ",
        b(r#"{"alg":"RS256","kid":"k"}"#),
        b(r#"{"aud":"https://vault.example.com","sub":"project_path:g/p","exp":4102444800}"#)
    )
}

/// A mock Vault holding the canaries and a job payload whose secrets read them.
struct Job {
    _server: MockServer,
    dir: tempfile::TempDir,
    payload: PathBuf,
}

impl Job {
    async fn start() -> Self {
        let server = MockServer::start().await;
        Mock::given(path("/v1/auth/jwt/login"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "auth": {"client_token": "hvs.test-token", "policies": ["ci"], "lease_duration": 60}
            })))
            .mount(&server)
            .await;
        Mock::given(path("/v1/secret/data/ci/canaries"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "data": {"data": {
                    "plain": PLAIN, "cert": CERT, "urly": URLY, "quoted": QUOTED,
                    "a": OVERLAP_A, "b": OVERLAP_B,
                }, "metadata": {"version": 1}}
            })))
            .mount(&server)
            .await;
        Mock::given(path("/v1/auth/token/revoke-self"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&server)
            .await;
        let secret = |field: &str, file: bool| {
            json!({
                "vault": {
                    "server": {"url": server.uri(), "auth": {"name": "jwt", "path": "jwt",
                               "data": {"jwt": "$VAULT_ID_TOKEN"}}},
                    "engine": {"name": "kv-v2", "path": "secret"},
                    "path": "ci/canaries", "field": field,
                },
                "file": file, "token": "$VAULT_ID_TOKEN",
            })
        };
        let payload = json!({
            "variables": [{"key": "VAULT_ID_TOKEN", "value": jwt(), "public": false, "masked": true}],
            "secrets": {
                "PLAIN": secret("plain", false),
                "CERT": secret("cert", true),
                "URLY": secret("urly", false),
                "QUOTED": secret("quoted", false),
                "OVERLAP_A": secret("a", false),
                "OVERLAP_B": secret("b", false),
            },
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.json");
        std::fs::write(&path, payload.to_string()).unwrap();
        Self {
            _server: server,
            dir,
            payload: path,
        }
    }

    /// `ci-secrets exec [flags] -- sh -c script`.
    fn exec(&self, flags: &[&str], script: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ci-secrets"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .args(["-q", "exec", "--job-payload"])
            .arg(&self.payload)
            .args(flags)
            .args(["--", "sh", "-c", script]);
        cmd
    }
}

/// Runs the command off the async runtime (the mock server lives on it).
async fn output(mut cmd: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// The child's stderr: what follows the tool's own warnings about values GitLab itself could
/// not mask (printed before the child starts).
fn child_stderr(stderr: &[u8]) -> &[u8] {
    let mut rest = stderr;
    while rest.starts_with(b"CERT: ")
        || rest.starts_with(b"URLY: ")
        || rest.starts_with(b"QUOTED: ")
    {
        let line = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        assert!(String::from_utf8_lossy(&rest[..line]).contains("GitLab could not mask"));
        rest = &rest[line..];
    }
    rest
}

fn assert_no_canary(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for fragment in FRAGMENTS {
        assert!(
            !text.contains(fragment),
            "{what} shows {fragment:?}:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn canaries_printed_every_way_are_masked_and_the_rest_is_intact() {
    let job = Job::start().await;
    // Byte by byte with pauses, then pieces split at odd places.
    let mut slow = String::new();
    for c in PLAIN.chars() {
        slow.push_str(&format!("printf '{c}'; sleep 0.02; "));
    }
    let script = format!(
        r#"
printf 'whole: %s\n' "$PLAIN"
{slow}printf '\n'
printf 'canary-pla'; sleep 0.1; printf 'in-7Hq2'; sleep 0.1; printf 'xZ split\n'
printf 'inside: xx%syy\n' "$PLAIN"
printf 'repeated: %s%s %s\n' "$PLAIN" "$PLAIN" "$PLAIN"
printf 'overlap: canary-ovl-AAAA-tail-BBBB.\n'
printf 'touching: %s%s\n' "$OVERLAP_B" "$OVERLAP_A"
printf 'stderr: %s\n' "$PLAIN" >&2
cat "$CERT"
printf 'line: '; sed -n 2p "$CERT"
printf 'url: https://u:canary%%20p%%40ss%%2Fw0rd%%26x@host/ q=canary+p%%40ss%%2Fw0rd%%26x\n'
printf 'raw: %s\n' "$URLY"
printf 'json: {{"v":"canary-\\"q\\"-\\\\back"}}\n'
printf 'binary: \001\377\000end\n'
printf 'no newline at the end %s' "$PLAIN"
exit 4
"#
    );
    let out = output(job.exec(&[], &script)).await;
    assert_eq!(out.status.code(), Some(4), "the child's exit code");
    let expected = "whole: [MASKED]\n\
        [MASKED]\n\
        [MASKED] split\n\
        inside: xx[MASKED]yy\n\
        repeated: [MASKED][MASKED] [MASKED]\n\
        overlap: [MASKED].\n\
        touching: [MASKED][MASKED]\n\
        [MASKED]\n\
        line: [MASKED]\n\
        url: https://u:[MASKED]@host/ q=[MASKED]\n\
        raw: [MASKED]\n\
        json: {\"v\":\"[MASKED]\"}\n"
        .as_bytes()
        .iter()
        .chain(b"binary: \x01\xff\x00end\n")
        .chain(b"no newline at the end [MASKED]")
        .copied()
        .collect::<Vec<u8>>();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&expected)
    );
    assert_eq!(out.stdout, expected, "byte for byte");
    assert_eq!(
        String::from_utf8_lossy(child_stderr(&out.stderr)),
        "stderr: [MASKED]\n"
    );
    assert_no_canary("stdout", &out.stdout);
    assert_no_canary("stderr", &out.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_mask_shows_values_and_keeps_the_streams() {
    let job = Job::start().await;
    let out = output(job.exec(
        &["--no-mask"],
        r#"printf '%s\n' "$PLAIN"; printf '%s\n' "$PLAIN" >&2"#,
    ))
    .await;
    assert!(out.status.success());
    assert_eq!(out.stdout, format!("{PLAIN}\n").as_bytes());
    assert_eq!(child_stderr(&out.stderr), format!("{PLAIN}\n").as_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn large_output_on_both_streams_passes_exactly() {
    let job = Job::start().await;
    // About 48 MB on each stream at once, a canary on every line.
    let lines = 2_000_000;
    let script = format!(
        r#"yes "out $PLAIN x" | head -n {lines} &
yes "err $PLAIN y" | head -n {lines} >&2 &
wait; exit 3"#
    );
    let out = output(job.exec(&[], &script)).await;
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(out.stdout.len(), lines * "out [MASKED] x\n".len());
    let stderr = child_stderr(&out.stderr);
    assert_eq!(stderr.len(), lines * "err [MASKED] y\n".len());
    assert!(
        out.stdout
            .chunks("out [MASKED] x\n".len())
            .all(|l| l == b"out [MASKED] x\n")
    );
    assert!(
        stderr
            .chunks("err [MASKED] y\n".len())
            .all(|l| l == b"err [MASKED] y\n")
    );
}

/// Reads `child`'s stdout on a thread, handing over what arrives.
fn reader(mut stdout: std::process::ChildStdout) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Collects from `rx` until `want` has arrived; fails if the child exits (or 60 s pass)
/// without it, which is what a masker holding back the partial line would cause.
fn wait_for(rx: &mpsc::Receiver<Vec<u8>>, seen: &mut Vec<u8>, want: &[u8]) {
    while !seen.windows(want.len()).any(|w| w == want) {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(bytes) => seen.extend_from_slice(&bytes),
            Err(e) => panic!(
                "{:?} never arrived ({e}); got {:?}",
                String::from_utf8_lossy(want),
                String::from_utf8_lossy(seen)
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_lines_pass_at_once_and_stdin_is_the_childs() {
    let job = Job::start().await;
    let mut cmd = job.exec(
        &[],
        r#"printf ' 10%%\r 20%%\r'; printf 'name? '; read name; printf 'hello %s, %s\n' "$name" "$PLAIN""#,
    );
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = reader(child.stdout.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    let mut seen = Vec::new();
    tokio::task::block_in_place(|| {
        // The child waits for stdin: the prompt can only arrive if it is not held back.
        wait_for(&rx, &mut seen, b" 10%\r 20%\rname? ");
        stdin.write_all(b"world\n").unwrap();
        drop(stdin);
        wait_for(&rx, &mut seen, b"hello world, [MASKED]\n");
        assert!(child.wait().unwrap().success());
    });
    assert_eq!(seen, b" 10%\r 20%\rname? hello world, [MASKED]\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn signals_are_forwarded_and_exit_codes_kept() {
    let job = Job::start().await;
    let killed = output(job.exec(&[], r#"printf '%s\n' "$PLAIN"; kill -TERM $$"#)).await;
    assert_eq!(killed.status.code(), Some(128 + 15));
    assert_eq!(killed.stdout, b"[MASKED]\n");

    let mut cmd = job.exec(
        &[],
        r#"trap 'printf "got TERM %s\n" "$PLAIN"; exit 9' TERM; printf 'ready\n'; while :; do sleep 0.05; done"#,
    );
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = reader(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    tokio::task::block_in_place(|| {
        wait_for(&rx, &mut seen, b"ready\n");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        wait_for(&rx, &mut seen, b"got TERM [MASKED]\n");
        assert_eq!(child.wait().unwrap().code(), Some(9));
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn file_secrets_are_removed_and_a_closed_reader_ends_the_child() {
    let job = Job::start().await;
    let seen = job.dir.path().join("seen");
    let script = format!(r#"printf '%s' "$CERT" > {}; cat "$CERT""#, seen.display());
    let out = output(job.exec(&[], &script)).await;
    assert!(out.status.success());
    assert_eq!(out.stdout, b"[MASKED]\n");
    let file = std::fs::read_to_string(&seen).unwrap();
    assert!(!Path::new(&file).exists(), "the file is gone");

    // `exec ... | head -c 1`: once the reader is gone the child gets SIGPIPE, as without
    // the filter, instead of writing forever.
    let mut cmd = job.exec(&[], "yes filler");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 7];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"filler\n");
    drop(stdout);
    let status = tokio::task::block_in_place(|| child.wait().unwrap());
    assert_eq!(status.code(), Some(128 + 13), "yes died of SIGPIPE");
}
