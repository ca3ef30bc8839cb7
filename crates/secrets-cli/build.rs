//! Records the commit `ci-secrets --version` reports.
//!
//! In order: `CI_SECRETS_COMMIT` when set (a packager's override), the `sha1` cargo writes into
//! `.cargo_vcs_info.json` of a published package, `git rev-parse HEAD` in a checkout, and
//! otherwise `unknown`. A build never fails for want of git.
#![allow(
    clippy::disallowed_methods,
    reason = "a build script reads cargo's environment"
)]

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CI_SECRETS_COMMIT");
    // A path that does not exist would make cargo rerun this script, and rebuild, every time.
    rerun_if_exists(".cargo_vcs_info.json");
    if !Path::new(".cargo_vcs_info.json").exists() {
        println!("cargo:rerun-if-changed=build.rs");
    }
    let commit = std::env::var("CI_SECRETS_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(from_vcs_info)
        .or_else(from_git)
        .unwrap_or_else(|| "unknown".to_owned());
    let short: String = commit.trim().chars().take(12).collect();
    println!("cargo:rustc-env=CI_SECRETS_BUILD_COMMIT={short}");
}

/// `{"git": {"sha1": "..."}}`, written by `cargo package`.
fn from_vcs_info() -> Option<String> {
    let text = std::fs::read_to_string(".cargo_vcs_info.json").ok()?;
    let start = text.find("\"sha1\"")?;
    let rest = &text[start + "\"sha1\"".len()..];
    let rest = &rest[rest.find('"')? + 1..];
    let sha = &rest[..rest.find('"')?];
    sha.chars()
        .all(|c| c.is_ascii_hexdigit())
        .then(|| sha.to_owned())
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn from_git() -> Option<String> {
    let sha = git(&["rev-parse", "HEAD"])?;
    // Rebuild when HEAD moves: HEAD itself, the branch it points to, and packed refs.
    for name in ["HEAD", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", name]) {
            rerun_if_exists(&path);
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(path) = git(&["rev-parse", "--git-path", &branch])
    {
        rerun_if_exists(&path);
    }
    Some(sha)
}

fn rerun_if_exists(path: &str) {
    let path = Path::new(path);
    let path = if path.is_relative() {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_default()
    } else {
        path.to_owned()
    };
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
