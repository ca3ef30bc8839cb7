//! Detached server processes: start in their own process group, probe, stop.

use anyhow::{Context as _, Result};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a group gets after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(15);
/// How long to wait for SIGKILL to take effect.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// Starts `program` detached: its own process group (so it outlives this process and
/// Ctrl-C of the caller's terminal), stdin from /dev/null, stdout and stderr to `log`.
pub fn spawn_detached<I, K, V>(
    program: &Path,
    args: &[&OsStr],
    envs: I,
    log: &Path,
) -> Result<Child>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let out = fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    Command::new(program)
        .args(args)
        .envs(envs)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))
}

/// `n` distinct free loopback ports (bound together, then released for the servers).
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<std::io::Result<Vec<_>>>()
        .context("cannot find a free loopback port")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// `(pid, pgrp, state)` of every process, from `/proc`.
fn processes() -> Vec<(u32, u32, char)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
            let rest = &stat[stat.rfind(')')? + 1..];
            let mut fields = rest.split_whitespace();
            let state = fields.next()?.chars().next()?;
            let _ppid = fields.next()?;
            let pgrp: u32 = fields.next()?.parse().ok()?;
            Some((pid, pgrp, state))
        })
        .collect()
}

fn is_live(state: char) -> bool {
    !matches!(state, 'Z' | 'X' | 'x')
}

/// Live members of the process groups led by `pgids`.
pub fn group_members(pgids: &[u32]) -> Vec<u32> {
    let groups: BTreeSet<u32> = pgids.iter().copied().collect();
    processes()
        .into_iter()
        .filter(|(_, pgrp, state)| groups.contains(pgrp) && is_live(*state))
        .map(|(pid, _, _)| pid)
        .collect()
}

fn signal_groups(pgids: &[u32], signal: Signal) {
    for &pgid in pgids {
        let Ok(raw) = i32::try_from(pgid) else {
            continue;
        };
        // ESRCH (already gone) is the expected outcome for a stopped group.
        let _ = killpg(Pid::from_raw(raw), signal);
    }
}

fn wait_groups_empty(pgids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if group_members(pgids).is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops the process groups led by `pgids`: SIGTERM, a bounded wait, then SIGKILL.
/// Returns the pids that survived (none, normally).
pub fn stop_groups(pgids: &[u32]) -> Vec<u32> {
    if group_members(pgids).is_empty() {
        return Vec::new();
    }
    signal_groups(pgids, Signal::SIGTERM);
    if wait_groups_empty(pgids, TERM_GRACE) {
        return Vec::new();
    }
    let stubborn = group_members(pgids);
    eprintln!("processes {stubborn:?} ignored SIGTERM for {TERM_GRACE:?}; sending SIGKILL");
    signal_groups(pgids, Signal::SIGKILL);
    wait_groups_empty(pgids, KILL_GRACE);
    group_members(pgids)
}

/// Prints the last `lines` lines of a log file to stderr.
pub fn print_tail(log: &Path, lines: usize) {
    const MAX_BYTES: u64 = 64 * 1024;
    let mut text = String::new();
    let read = fs::File::open(log).and_then(|mut f| {
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(MAX_BYTES)))?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        text = String::from_utf8_lossy(&bytes).into_owned();
        Ok(())
    });
    if let Err(err) = read {
        eprintln!("  (cannot read {}: {err})", log.display());
        return;
    }
    let all: Vec<&str> = text.lines().collect();
    eprintln!("---- last lines of {} ----", log.display());
    for line in &all[all.len().saturating_sub(lines)..] {
        eprintln!("  {line}");
    }
}
