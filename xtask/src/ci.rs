//! `cargo xtask e2e` and `cargo xtask test`.

use crate::paths::Paths;
use crate::services::{self, UpOutcome};
use anyhow::{Context as _, Result, bail};
use std::fs;
use std::path::PathBuf;
use std::time::Instant;
use xshell::{Shell, cmd};

/// The `secrets-resolver` feature sets CI checks with clippy, one at a time.
const RESOLVER_FEATURE_SETS: &[&[&str]] = &[
    &["--no-default-features"],
    &["--no-default-features", "--features", "vault"],
    &["--no-default-features", "--features", "aws-sm"],
];

pub(crate) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

pub(crate) fn shell(paths: &Paths) -> Result<Shell> {
    let sh = Shell::new()?;
    sh.change_dir(&paths.root);
    Ok(sh)
}

pub(crate) fn step(name: &str) {
    println!("\n==> {name}");
}

/// Every `crates/*/tests/e2e_*.rs`.
fn e2e_test_files(paths: &Paths) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for krate in fs::read_dir(paths.root.join("crates"))? {
        let tests = krate?.path().join("tests");
        let Ok(entries) = fs::read_dir(&tests) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.starts_with("e2e_") && name.ends_with(".rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// `cargo xtask e2e`: services up, the e2e suites, services down (also on failure).
///
/// Services that were already up are reused and left up.
pub fn e2e(paths: &Paths) -> Result<()> {
    let files = e2e_test_files(paths)?;
    if files.is_empty() {
        println!("no end-to-end tests (crates/*/tests/e2e_*.rs); nothing to run");
        return Ok(());
    }
    step("cargo xtask services up");
    let outcome = services::up(paths)?;
    step("cargo test --workspace --all-features --test 'e2e_*'");
    let started = Instant::now();
    let tested = (|| -> Result<()> {
        let sh = shell(paths)?;
        let cargo = cargo();
        let env_file = paths.env_file();
        cmd!(
            sh,
            "{cargo} test --workspace --all-features --test e2e_* -- --nocapture"
        )
        .env(auth_oidc::testing::E2E_ENV_VAR, &env_file)
        .run()?;
        Ok(())
    })();
    println!("e2e tests took {:.1}s", started.elapsed().as_secs_f64());
    let stopped = match outcome {
        UpOutcome::Started => {
            step("cargo xtask services down");
            services::down(paths)
        }
        UpOutcome::AlreadyUp => {
            println!("\nservices were already up before `e2e`: leaving them up");
            Ok(())
        }
    };
    tested.context("end-to-end tests failed")?;
    stopped
}

fn ensure_cargo_deny(paths: &Paths, sh: &Shell) -> Result<PathBuf> {
    let root = paths.tools();
    let bin = root.join("bin/cargo-deny");
    if bin.is_file() {
        return Ok(bin);
    }
    println!(
        "installing cargo-deny into {} (once; several minutes on 2 cores)",
        paths.show(&root)
    );
    let cargo = cargo();
    cmd!(sh, "{cargo} install cargo-deny --locked --root {root}").run()?;
    if !bin.is_file() {
        bail!("cargo install did not produce {}", bin.display());
    }
    Ok(bin)
}

/// `cargo xtask test`: everything CI runs, in order, failing fast.
pub fn test(paths: &Paths) -> Result<()> {
    let started = Instant::now();
    let sh = shell(paths)?;
    let cargo = cargo();

    step("cargo fmt --all --check");
    cmd!(sh, "{cargo} fmt --all --check").run()?;

    step("cargo clippy --workspace --all-targets --all-features -- -D warnings");
    cmd!(
        sh,
        "{cargo} clippy --workspace --all-targets --all-features -- -D warnings"
    )
    .run()?;

    for &features in RESOLVER_FEATURE_SETS {
        step(&format!(
            "cargo clippy -p secrets-resolver --all-targets {} -- -D warnings",
            features.join(" ")
        ));
        cmd!(
            sh,
            "{cargo} clippy -p secrets-resolver --all-targets {features...} -- -D warnings"
        )
        .run()?;
    }

    step("RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --all-features");
    cmd!(sh, "{cargo} doc --workspace --no-deps --all-features")
        .env("RUSTDOCFLAGS", "-Dwarnings")
        .run()?;

    crate::dist::check_packages(paths)?;

    step("cargo deny check bans licenses sources");
    let deny = ensure_cargo_deny(paths, &sh)?;
    cmd!(sh, "{deny} check bans licenses sources").run()?;

    step("cargo test --workspace --all-features");
    cmd!(sh, "{cargo} test --workspace --all-features").run()?;

    e2e(paths)?;

    crate::fakes::contract(paths)?;
    step("cargo xtask dist --dev --check");
    crate::dist::run(paths, true, true)?;
    step("cargo xtask soak --runs 60 --seconds 45");
    crate::soak::run(paths, 60, 45, None)?;

    step("cargo xtask bench --quick");
    crate::bench::run(paths, true, false, false, crate::bench::Selection::Both)?;
    println!(
        "\nall checks passed in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
