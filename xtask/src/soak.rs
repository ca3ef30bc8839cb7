//! `cargo xtask soak`: many resolutions against the local OpenBao through `loopback-proxy`
//! with random faults, and random SIGTERM/SIGKILL of `exec` children and of `ci-secrets`
//! itself; then checks that nothing was left behind. Bounded in runs and in time, loopback
//! only.
//!
//! Checked at the end (any failure fails the soak):
//! - every run ended in success, a classified error (exit 2 or 3, a typed `ResolveFailure`)
//!   or the signal it was sent: no panic, no internal error, no run past its bound;
//! - tokens still alive on OpenBao that were issued to this soak (found by accessor, each
//!   token's `user_email` names its run) = 0, apart from runs where `ci-secrets` was
//!   SIGKILLed or the login answer may never have reached the client (cut, stalled or
//!   cancelled runs), reported separately: their TTL (300 s) bounds them;
//! - no private directory left once the next `ci-secrets` start has swept;
//! - descriptors and RSS of the long-lived library resolver flat between warm-up and the end.

use crate::ci::{cargo, shell, step};
use crate::paths::Paths;
use crate::services::{self, UpOutcome};
use anyhow::{Context, Result, bail};
use auth_oidc::testing::{E2eEnv, GitlabClaims};
use loopback_proxy::{Fault, Proxy, ProxyConfig};
use secrecy::ExposeSecret;
use secrets_core::JobPayload;
use secrets_resolver::{ResolveOptions, Resolver};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use xshell::cmd;

/// How long a resolution may take (`--deadline`), and one request (`--request-timeout`).
const DEADLINE_SECS: u64 = 3;
const REQUEST_TIMEOUT_SECS: u64 = 1;
/// A run that has not ended this long after it started has hung.
const RUN_BOUND: Duration = Duration::from_secs(DEADLINE_SECS + 12);
/// Growth allowed between the warm-up and the end of the library resolver.
const FD_SLACK: usize = 8;
const RSS_SLACK_KIB: u64 = 32 * 1024;

/// `cargo xtask soak`.
pub fn run(paths: &Paths, runs: usize, seconds: u64, seed: Option<u64>) -> Result<()> {
    step("cargo xtask services up");
    let outcome = services::up(paths)?;
    let result = soak(paths, runs, Duration::from_secs(seconds), seed);
    if outcome == UpOutcome::Started {
        step("cargo xtask services down");
        services::down(paths)?;
    } else {
        println!("\nservices were already up before `soak`: leaving them up");
    }
    result
}

/// A small xorshift generator: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Via {
    /// The long-lived library resolver of this process.
    Library,
    /// `ci-secrets resolve`.
    Resolve,
    /// `ci-secrets exec`.
    Exec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[allow(clippy::enum_variant_names, reason = "what is killed, and how")]
enum Kill {
    None,
    /// SIGKILL of the `exec` child.
    Child,
    /// SIGTERM of `ci-secrets` (forwarded to the child).
    TermCommand,
    /// SIGKILL of `ci-secrets` (nothing runs its cleanup).
    KillCommand,
    /// The library caller drops the resolution mid-way.
    Cancel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ending {
    Success,
    Classified,
    Signalled,
    Cancelled,
    /// A panic, an internal error or an exit code outside the documented ones.
    Bad,
    /// Still running past [`RUN_BOUND`].
    Hang,
}

struct Run {
    via: Via,
    fault: Fault,
    kill: Kill,
    ending: Ending,
    note: String,
}

impl Run {
    /// Why the run may legitimately leave a token alive, if it may: the login answer may
    /// never have reached the client (the server issued a token nobody saw; each login retry
    /// can leave one), the caller dropped it, or its owner was SIGKILLed.
    fn may_leave_a_token(&self) -> Option<&'static str> {
        let cut = matches!(
            self.fault,
            Fault::ResetMidResponse { .. } | Fault::TruncateResponse { .. } | Fault::StallResponses
        );
        if cut && self.ending != Ending::Success {
            Some("login answer cut or stalled")
        } else if self.kill == Kill::Cancel {
            Some("cancelled by the caller")
        } else if self.kill == Kill::KillCommand {
            Some("ci-secrets SIGKILLed")
        } else {
            None
        }
    }
}

fn random_fault(rng: &mut Rng) -> Fault {
    match rng.below(10) {
        0 => Fault::Refuse,
        1 => Fault::ResetMidResponse {
            after_bytes: 20 + rng.below(1500),
        },
        2 => Fault::TruncateResponse {
            after_bytes: 20 + rng.below(1500),
        },
        3 => Fault::StallResponses,
        4 => Fault::Respond {
            status: [500, 502, 503][usize::try_from(rng.below(3)).unwrap_or(0)],
        },
        5 => Fault::Respond { status: 429 },
        _ => Fault::None,
    }
}

fn soak(paths: &Paths, runs: usize, budget: Duration, seed: Option<u64>) -> Result<()> {
    step("cargo build -p ci-secrets");
    let sh = shell(paths)?;
    let cargo = cargo();
    cmd!(sh, "{cargo} build --quiet -p ci-secrets").run()?;
    let binary = paths.target.join("debug/ci-secrets");

    let env = E2eEnv::from_file(&paths.env_file())?;
    let minter = env.minter();
    let upstream = env
        .vault_addr()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .context("the OpenBao address is not http://127.0.0.1:<port>")?;
    let proxy = Proxy::start(upstream, ProxyConfig::default())?;
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1
    });
    let mut rng = Rng(seed);
    let tag = format!("soak{}x{seed:x}", std::process::id());
    let work = tempfile::Builder::new()
        .prefix("xtask-soak-")
        .tempdir_in(&paths.target)?;
    let tmp = work.path().join("tmp");
    secrets_core::private_file::create_dir(&tmp)?;
    step(&format!(
        "soak: up to {runs} runs in {} s, seed {seed}, through {}",
        budget.as_secs(),
        proxy.url()
    ));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let options = ResolveOptions::default()
        .with_request_timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS))
        .with_deadline(Duration::from_secs(DEADLINE_SECS));
    let resolver = std::sync::Arc::new(
        Resolver::builder()
            .with_default_providers()?
            .with_options(options)
            .build(),
    );

    let started = Instant::now();
    let mut done: Vec<Run> = Vec::new();
    let mut warm: Option<(usize, u64)> = None;
    let mut library_runs = 0usize;
    let mut left_by_sigkill = 0usize;
    for i in 0..runs {
        if started.elapsed() > budget {
            break;
        }
        let jwt =
            minter.mint(&GitlabClaims::new().with_user_email(format!("{tag}-{i}@example.com")))?;
        let payload = payload(&proxy.url(), jwt.expose_secret());
        let fault = random_fault(&mut rng);
        let via = match rng.below(10) {
            0..=3 => Via::Library,
            4..=5 => Via::Resolve,
            _ => Via::Exec,
        };
        let kill = match via {
            Via::Library if rng.below(5) == 0 => Kill::Cancel,
            Via::Exec => [
                Kill::None,
                Kill::Child,
                Kill::TermCommand,
                Kill::KillCommand,
            ][usize::try_from(rng.below(4)).unwrap_or(0)],
            _ => Kill::None,
        };
        proxy.set_fault(fault);
        let (ending, note) = match via {
            Via::Library => {
                library_runs += 1;
                let cancel_after = Duration::from_millis(20 + rng.below(300));
                library(&runtime, &resolver, &payload, kill, cancel_after)?
            }
            Via::Resolve | Via::Exec => {
                let memory = rng.below(2) == 0;
                let wait = Duration::from_millis(rng.below(300));
                cli(
                    &binary,
                    &work.path().join(format!("run-{i}")),
                    &tmp,
                    &payload,
                    via,
                    kill,
                    memory,
                    wait,
                )?
            }
        };
        proxy.set_fault(Fault::None);
        if kill == Kill::KillCommand {
            // What SIGKILL left, before the next start sweeps it.
            left_by_sigkill += secret_dirs(&tmp);
        }
        if via == Via::Library && library_runs == 10 {
            warm = Some(sample(&runtime, &resolver, &payload)?);
        }
        done.push(Run {
            via,
            fault,
            kill,
            ending,
            note,
        });
    }
    let elapsed = started.elapsed();

    // Measure the library resolver at rest, then drop what is dropped at the end of a job.
    let end_sample = sample(
        &runtime,
        &resolver,
        &payload(
            &proxy.url(),
            minter
                .mint(&GitlabClaims::new().with_user_email(format!("{tag}-end@example.com")))?
                .expose_secret(),
        ),
    )?;
    let pending = provider_vault::wait_for_revocations(Duration::from_secs(10));

    // The next start sweeps what SIGKILL left (every run's start has swept already).
    let left_before_sweep = left_by_sigkill + secret_dirs(&tmp);
    let status = Command::new(&binary)
        .args(["check", "--job-payload"])
        .arg(write_payload(
            &work.path().join("check"),
            &payload(&proxy.url(), "x"),
        )?)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("ci-secrets check failed after the soak: {status}");
    }
    let left_after_sweep = secret_dirs(&tmp);

    let alive = live_tokens(
        env.vault_addr(),
        env.vault_root_token().expose_secret(),
        &tag,
    )?;
    report(
        &done,
        elapsed,
        seed,
        &alive,
        pending,
        left_before_sweep,
        left_after_sweep,
        warm,
        end_sample,
    )
}

/// One library resolution on the long-lived resolver.
fn library(
    runtime: &tokio::runtime::Runtime,
    resolver: &std::sync::Arc<Resolver>,
    payload: &Value,
    kill: Kill,
    cancel_after: Duration,
) -> Result<(Ending, String)> {
    let payload: JobPayload = serde_json::from_value(payload.clone())?;
    let resolver = std::sync::Arc::clone(resolver);
    let task = runtime.spawn(async move {
        match resolver.resolve_payload(&payload).await {
            Ok(mut resolution) => {
                // As an embedder does: wait for the revoke (off the critical path).
                resolution.close().await;
                (Ending::Success, String::new())
            }
            Err(failure) => (Ending::Classified, short(&failure.to_string())),
        }
    });
    let bound = if kill == Kill::Cancel {
        cancel_after
    } else {
        RUN_BOUND
    };
    Ok(runtime.block_on(async {
        let abort = task.abort_handle();
        match tokio::time::timeout(bound, task).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) if e.is_panic() => (Ending::Bad, "panicked".to_owned()),
            Ok(Err(_)) => (Ending::Cancelled, String::new()),
            Err(_) => {
                abort.abort();
                if kill == Kill::Cancel {
                    (Ending::Cancelled, String::new())
                } else {
                    (Ending::Hang, "past the bound".to_owned())
                }
            }
        }
    }))
}

/// Descriptors and RSS (KiB) of this process after one clean resolution.
fn sample(
    runtime: &tokio::runtime::Runtime,
    resolver: &std::sync::Arc<Resolver>,
    payload: &Value,
) -> Result<(usize, u64)> {
    let (ending, note) = library(runtime, resolver, payload, Kill::None, RUN_BOUND)?;
    if ending != Ending::Success {
        bail!("a clean resolution failed after faults were cleared: {note}");
    }
    let fds = std::fs::read_dir("/proc/self/fd")?.count();
    let status = std::fs::read_to_string("/proc/self/status")?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok((fds, rss))
}

/// One `ci-secrets resolve` or `exec` run.
#[allow(
    clippy::too_many_arguments,
    reason = "one run's settings, in one place"
)]
fn cli(
    binary: &Path,
    dir: &Path,
    tmp: &Path,
    payload: &Value,
    via: Via,
    kill: Kill,
    memory: bool,
    wait_before_kill: Duration,
) -> Result<(Ending, String)> {
    secrets_core::private_file::create_dir(dir)?;
    let file = write_payload(dir, payload)?;
    let mark = dir.join("mark");
    let mut command = Command::new(binary);
    match via {
        Via::Resolve => {
            command.args(["resolve", "--format", "json", "--files-dir"]);
            command.arg(dir.join("files"));
        }
        _ => {
            command.args([
                "exec",
                "--file-backing",
                if memory { "memory" } else { "dir" },
            ]);
        }
    }
    command
        .arg("--job-payload")
        .arg(&file)
        .args(["--deadline", &DEADLINE_SECS.to_string()])
        .args(["--request-timeout", &REQUEST_TIMEOUT_SECS.to_string()]);
    if via == Via::Exec {
        let sleep = if kill == Kill::None { "0.1" } else { "20" };
        command.args([
            "--",
            "sh",
            "-c",
            &format!(r#"cat "$CERT" > /dev/null && echo $$ > "$SOAK_MARK"; exec sleep {sleep}"#),
        ]);
    }
    let mut child = command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("TMPDIR", tmp)
        .env("SOAK_MARK", &mark)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let started = Instant::now();
    let mut sent = None;
    if via == Via::Exec && kill != Kill::None {
        // Wait for the child to run (or for ci-secrets to end: the resolution failed).
        let child_pid = loop {
            if let Some(pid) = std::fs::read_to_string(&mark)
                .ok()
                .and_then(|t| t.trim().parse::<i32>().ok())
            {
                break Some(pid);
            }
            if child.try_wait()?.is_some() || started.elapsed() > RUN_BOUND {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if let Some(child_pid) = child_pid {
            std::thread::sleep(wait_before_kill);
            use nix::sys::signal::{Signal, kill as send};
            use nix::unistd::Pid;
            let cli_pid = Pid::from_raw(child.id() as i32);
            let child_pid = Pid::from_raw(child_pid);
            match kill {
                Kill::Child => {
                    let _ = send(child_pid, Signal::SIGKILL);
                    sent = Some(9);
                }
                Kill::TermCommand => {
                    let _ = send(cli_pid, Signal::SIGTERM);
                    sent = Some(15);
                }
                Kill::KillCommand => {
                    let _ = send(cli_pid, Signal::SIGKILL);
                    // Its child would sleep on: the soak ends it too.
                    let _ = send(child_pid, Signal::SIGKILL);
                    sent = Some(9);
                }
                Kill::None | Kill::Cancel => {}
            }
        }
    }
    let status = wait_bounded(&mut child, started)?;
    let stderr = {
        use std::io::Read;
        let mut text = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        text
    };
    let Some(status) = status else {
        return Ok((Ending::Hang, "past the bound".to_owned()));
    };
    if stderr.contains("panicked") {
        return Ok((Ending::Bad, short(&stderr)));
    }
    use std::os::unix::process::ExitStatusExt;
    let ending = match (status.code(), status.signal()) {
        (Some(0), _) => Ending::Success,
        (Some(2 | 3), _) => Ending::Classified,
        // exec passes the child's death on as 128 + N.
        (Some(code), _) if sent.is_some_and(|s| code == 128 + s) => Ending::Signalled,
        (None, Some(signal)) if sent == Some(signal) => Ending::Signalled,
        _ => Ending::Bad,
    };
    Ok((ending, short(&format!("{status}: {stderr}"))))
}

/// Waits for `child` until [`RUN_BOUND`] after `started`; kills it and returns `None` past it.
fn wait_bounded(child: &mut Child, started: Instant) -> Result<Option<std::process::ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if started.elapsed() > RUN_BOUND {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn short(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(160)
        .collect()
}

/// A payload with one plain and one file-type secret from `secret/ci/app`.
fn payload(vault_url: &str, jwt: &str) -> Value {
    let secret = |field: &str, file: bool| {
        json!({
            "vault": {
                "server": {
                    "url": vault_url,
                    "auth": {"name": "jwt", "path": "jwt", "data": {"jwt": "$VAULT_ID_TOKEN", "role": "ci"}}
                },
                "engine": {"name": "kv-v2", "path": "secret"},
                "path": "ci/app",
                "field": field
            },
            "file": file
        })
    };
    json!({
        "variables": [{"key": "VAULT_ID_TOKEN", "value": jwt, "public": false, "masked": true}],
        "secrets": {"DB_PASSWORD": secret("password", false), "CERT": secret("username", true)}
    })
}

fn write_payload(dir: &Path, payload: &Value) -> Result<PathBuf> {
    secrets_core::private_file::create_dir(dir)?;
    let file = dir.join("payload.json");
    secrets_core::private_file::write(
        &file,
        payload.to_string().as_bytes(),
        secrets_core::private_file::Existing::Replace,
    )?;
    Ok(file)
}

fn secret_dirs(tmp: &Path) -> usize {
    std::fs::read_dir(tmp)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("ci-secrets-"))
                .count()
        })
        .unwrap_or(0)
}

/// The runs (by index) whose tokens are still alive on OpenBao: every accessor is looked up
/// with the root token, and a soak token's display name carries `<tag>-<run>`.
fn live_tokens(vault: &str, root: &str, tag: &str) -> Result<Vec<String>> {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let list: Value = http
        .request(
            reqwest::Method::from_bytes(b"LIST")?,
            format!("{vault}/v1/auth/token/accessors"),
        )
        .header("X-Vault-Token", root)
        .send()?
        .error_for_status()?
        .json()?;
    let mut runs = Vec::new();
    for accessor in list["data"]["keys"].as_array().into_iter().flatten() {
        let Ok(answer) = http
            .post(format!("{vault}/v1/auth/token/lookup-accessor"))
            .header("X-Vault-Token", root)
            .json(&json!({ "accessor": accessor }))
            .send()
        else {
            continue;
        };
        let Ok(info) = answer.json::<Value>() else {
            continue;
        };
        let text = info["data"].to_string();
        let marker = format!("{tag}-");
        if let Some(at) = text.find(&marker) {
            let run: String = text[at + marker.len()..]
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            runs.push(run);
        }
    }
    Ok(runs)
}

#[allow(clippy::too_many_arguments, reason = "the summary's parts")]
fn report(
    runs: &[Run],
    elapsed: Duration,
    seed: u64,
    alive: &[String],
    pending_revocations: usize,
    left_before_sweep: usize,
    left_after_sweep: usize,
    warm: Option<(usize, u64)>,
    end: (usize, u64),
) -> Result<()> {
    let mut by_ending: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_via: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_fault: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_kill: BTreeMap<String, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        *by_ending.entry(format!("{:?}", run.ending)).or_default() += 1;
        *by_via.entry(format!("{:?}", run.via)).or_default() += 1;
        let fault = format!("{:?}", run.fault);
        let fault = fault
            .split([' ', '{'])
            .next()
            .unwrap_or_default()
            .to_owned();
        *by_fault.entry(fault).or_default() += 1;
        *by_kill.entry(format!("{:?}", run.kill)).or_default() += 1;
        if matches!(run.ending, Ending::Bad | Ending::Hang) {
            problems.push(format!(
                "run {i} ({:?}, {:?}, {:?}): {:?} {}",
                run.via, run.fault, run.kill, run.ending, run.note
            ));
        }
    }
    let mut expected: BTreeMap<&str, usize> = BTreeMap::new();
    let mut leaked = Vec::new();
    for run in alive {
        let found = run.parse::<usize>().ok().and_then(|i| runs.get(i));
        match found {
            Some(r) if r.may_leave_a_token().is_some() => {
                *expected
                    .entry(r.may_leave_a_token().unwrap_or_default())
                    .or_default() += 1;
            }
            Some(r) => leaked.push(format!(
                "run {run} ({:?}, {:?}, {:?}, {:?})",
                r.via, r.fault, r.kill, r.ending
            )),
            None => leaked.push(format!("run {run} (the final samples)")),
        }
    }
    println!(
        "\nsoak summary (seed {seed}): {} runs in {:.1} s",
        runs.len(),
        elapsed.as_secs_f64()
    );
    println!("  via:      {by_via:?}");
    println!("  faults:   {by_fault:?}");
    println!("  kills:    {by_kill:?}");
    println!("  endings:  {by_ending:?}");
    println!(
        "  tokens alive on OpenBao: {} leaked; reported apart (the role's 300 s TTL bounds them): {expected:?}",
        leaked.len()
    );
    println!("  revocations still running at the end: {pending_revocations}");
    println!(
        "  private directories: {left_before_sweep} left by SIGKILL (seen before the next start), {left_after_sweep} after the sweeps"
    );
    if let Some((fds, rss)) = warm {
        println!(
            "  library resolver: descriptors {fds} -> {}, RSS {} -> {} MiB (warm-up -> end)",
            end.0,
            rss / 1024,
            end.1 / 1024
        );
        if end.0 > fds + FD_SLACK {
            problems.push(format!("descriptors grew from {fds} to {}", end.0));
        }
        if end.1 > rss + RSS_SLACK_KIB {
            problems.push(format!("RSS grew from {rss} KiB to {} KiB", end.1));
        }
    }
    problems.extend(leaked.iter().map(|l| format!("token left alive by {l}")));
    if pending_revocations > 0 {
        problems.push(format!("{pending_revocations} revocations did not finish"));
    }
    if left_after_sweep > 0 {
        problems.push(format!(
            "{left_after_sweep} private directories survived the sweep"
        ));
    }
    if problems.is_empty() {
        println!("soak: nothing left behind");
        Ok(())
    } else {
        for p in &problems {
            println!("  problem: {p}");
        }
        bail!("the soak found {} problems", problems.len())
    }
}
