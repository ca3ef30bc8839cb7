//! Where the harness keeps its tools and its run state.

use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};

/// Overrides the run directory (pids, logs, env file, issuer key); the installed tools stay
/// under `target/xtask`. Used by the harness's own lifecycle test.
pub const RUN_DIR_VAR: &str = "CI_SECRETS_XTASK_RUN_DIR";

/// The harness's directories and files.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The workspace root.
    pub root: PathBuf,
    /// `target/`.
    pub target: PathBuf,
    /// `target/xtask/`: cached installs (venvs).
    pub xtask: PathBuf,
    /// Run state: `target/xtask/` unless `CI_SECRETS_XTASK_RUN_DIR` says otherwise.
    pub run: PathBuf,
}

impl Paths {
    pub fn discover() -> Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask has no parent directory")?
            .to_owned();
        let target = match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
            Some(dir) => root.join(dir),
            None => root.join("target"),
        };
        let xtask = target.join("xtask");
        let run = match std::env::var_os(RUN_DIR_VAR).filter(|v| !v.is_empty()) {
            Some(dir) => std::env::current_dir()?.join(dir),
            None => xtask.clone(),
        };
        Ok(Self {
            root,
            target,
            xtask,
            run,
        })
    }

    pub fn venv_bao(&self) -> PathBuf {
        self.xtask.join("venv-openbao")
    }

    pub fn venv_localstack(&self) -> PathBuf {
        self.xtask.join("venv-localstack")
    }

    pub fn logs(&self) -> PathBuf {
        self.run.join("logs")
    }

    pub fn env_file(&self) -> PathBuf {
        self.run.join("services.env")
    }

    pub fn pids_file(&self) -> PathBuf {
        self.run.join("services.pids")
    }

    pub fn issuer_key(&self) -> PathBuf {
        self.run.join("issuer-key.pem")
    }

    /// `HOME` for the servers, so nothing they write lands in the user's home.
    pub fn service_home(&self) -> PathBuf {
        self.run.join("home")
    }

    pub fn localstack_state(&self) -> PathBuf {
        self.run.join("localstack")
    }

    /// `target/tools/`: `cargo install --root` for CI tools.
    pub fn tools(&self) -> PathBuf {
        self.target.join("tools")
    }

    /// Shown relative to the workspace root when inside it.
    pub fn show<'a>(&self, path: &'a Path) -> std::path::Display<'a> {
        path.strip_prefix(&self.root).unwrap_or(path).display()
    }
}
