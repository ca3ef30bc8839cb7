//! `cargo xtask services up` twice starts one set of servers; `down` leaves no process.
//!
//! Slow (starts OpenBao and LocalStack, installing them on first use), so it runs only when
//! `CI_SECRETS_XTASK_LIFECYCLE=1`; otherwise it prints why it skips. It uses its own run
//! directory, so it does not touch services started by `cargo xtask services up`.

#![allow(clippy::print_stderr, reason = "the skip reason is the output")]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const GATE: &str = "CI_SECRETS_XTASK_LIFECYCLE";

fn xtask(run_dir: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("CI_SECRETS_XTASK_RUN_DIR", run_dir)
        .output()
        .expect("xtask runs");
    assert!(
        output.status.success(),
        "xtask {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Pids of live processes in the process groups `pgids`.
fn live_in_groups(pgids: &[u32]) -> Vec<u32> {
    let mut live = Vec::new();
    for entry in fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let (state, pgrp) = (fields[0], fields[2].parse::<u32>().unwrap_or(0));
        if state != "Z" && pgids.contains(&pgrp) {
            live.push(pid);
        }
    }
    live
}

fn recorded_pids(run_dir: &Path) -> Vec<u32> {
    let env = fs::read_to_string(run_dir.join("services.env")).expect("env file");
    env.lines()
        .find_map(|l| l.strip_prefix("E2E_PIDS="))
        .expect("E2E_PIDS")
        .split_whitespace()
        .map(|p| p.parse().expect("pid"))
        .collect()
}

#[test]
fn up_twice_starts_one_set_and_down_leaves_nothing() {
    if std::env::var_os(GATE).is_none_or(|v| v != "1") {
        eprintln!(
            "skipping the services lifecycle test: set {GATE}=1 to run it (starts real servers)"
        );
        return;
    }
    let run_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("xtask-lifecycle");
    let _ = fs::remove_dir_all(&run_dir);

    xtask(&run_dir, &["services", "up"]);
    let pids = recorded_pids(&run_dir);
    assert_eq!(pids.len(), 4, "{pids:?}");
    let members = live_in_groups(&pids);
    for pid in &pids {
        assert!(members.contains(pid), "pid {pid} runs after up");
    }

    let second = xtask(&run_dir, &["services", "up"]);
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(stdout.contains("already up"), "{stdout}");
    assert_eq!(
        recorded_pids(&run_dir),
        pids,
        "the second up started nothing"
    );
    assert_eq!(
        live_in_groups(&pids).len(),
        members.len(),
        "no new process joined the groups"
    );

    xtask(&run_dir, &["services", "status"]);
    let down = xtask(&run_dir, &["services", "down"]);
    assert!(String::from_utf8_lossy(&down.stdout).contains("stopped"));
    assert_eq!(
        live_in_groups(&pids),
        Vec::<u32>::new(),
        "down leaves no process"
    );
    assert!(!run_dir.join("services.env").exists());
    assert!(!run_dir.join("services.pids").exists());

    let again = xtask(&run_dir, &["services", "down"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("not up"));
    let _ = fs::remove_dir_all(&run_dir);
}
