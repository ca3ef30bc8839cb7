//! The cloud fakes (`crates/cloud-fakes`) in `cargo xtask services up`, and
//! `cargo xtask contract`: the vendors' own clients against the fakes.

use crate::ci::{cargo, shell, step};
use crate::install::{self, Venv};
use crate::paths::Paths;
use anyhow::{Context as _, Result, bail};
use reqwest::blocking::Client;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Child;
use xshell::cmd;

/// The pinned vendor clients of the contract test, with every dependency pinned (a
/// `pip freeze` of the first install), so a new upstream release cannot change the verdict.
pub const CONTRACT_PINS: &[&str] = &[
    "google-auth==2.62.2",
    "google-cloud-secret-manager==2.32.0",
    "azure-identity==1.27.0",
    "azure-keyvault-secrets==4.12.0",
    "msal==1.39.0",
    "azure-core==1.41.0",
    "google-api-core==2.44.0",
    "googleapis-common-protos==1.76.0",
    "grpc-google-iam-v1==0.14.6",
    "grpcio==1.85.3",
    "grpcio-status==1.85.3",
    "proto-plus==1.29.0",
    "protobuf==7.36.2",
    "requests==2.34.2",
    "urllib3==2.8.0",
    "certifi==2026.10.19.post1",
    "charset-normalizer==3.5.3",
    "idna==3.20",
    "cryptography==50.0.2",
    "cffi==2.1.1",
    "pycparser==3.12",
    "PyJWT==2.15.1",
    "msal-extensions==1.3.1",
    "isodate==0.7.2",
    "opentelemetry-api==1.45.2",
    "pyasn1==0.6.5",
    "pyasn1_modules==0.4.2",
    "typing_extensions==4.16.0",
];

/// The interpreter the contract test runs (`tests/contract.rs` reads this variable).
const PYTHON_VAR: &str = "CLOUD_FAKES_PYTHON";

fn venv(paths: &Paths) -> PathBuf {
    paths.xtask.join("venv-cloud-contract")
}

/// Where the running fakes' test CA is written.
pub fn ca_path(paths: &Paths) -> PathBuf {
    paths.run.join("cloud-fakes-ca.pem")
}

/// The fixture `services up` serves.
pub fn fixture_path(paths: &Paths) -> PathBuf {
    paths.root.join("crates/cloud-fakes/fixtures/default.yaml")
}

/// Starts `exe fakes-serve` detached: Google on `gcp_port` (HTTP), Azure on `azure_port`
/// (TLS), verifying tokens of `issuer`. Returns the child, its base URL (the Google listener,
/// which also serves `/_fake/*`) and its log.
pub fn spawn(
    paths: &Paths,
    exe: &Path,
    gcp_port: u16,
    azure_port: u16,
    issuer: &str,
) -> Result<(Child, String, PathBuf)> {
    let log = paths.logs().join("cloud-fakes.log");
    let (gcp, azure) = (gcp_port.to_string(), azure_port.to_string());
    let fixture = fixture_path(paths);
    let ca = ca_path(paths);
    let _ = std::fs::remove_file(&ca);
    let child = crate::procs::spawn_detached(
        exe,
        &[
            OsStr::new("fakes-serve"),
            OsStr::new("--issuer"),
            OsStr::new(issuer),
            OsStr::new("--fixture"),
            fixture.as_os_str(),
            OsStr::new("--gcp-port"),
            OsStr::new(&gcp),
            OsStr::new("--azure-port"),
            OsStr::new(&azure),
            OsStr::new("--ca-out"),
            ca.as_os_str(),
        ],
        [("RUST_BACKTRACE", "1")],
        &log,
    )?;
    Ok((child, format!("http://127.0.0.1:{gcp_port}"), log))
}

/// `Ok(())` when the fakes answer their health check.
pub fn probe(http: &Client, url: &str) -> Result<(), String> {
    let response = http
        .get(format!("{url}/_fake/health"))
        .send()
        .map_err(|_| "GET /_fake/health: no answer".to_owned())?;
    match response.status().as_u16() {
        200 => Ok(()),
        code => Err(format!("GET /_fake/health: HTTP {code}")),
    }
}

/// The env file entries of the fakes at `url` (asks them for the Azure listener's address).
pub fn env_entries(paths: &Paths, http: &Client, url: &str) -> Result<Vec<(&'static str, String)>> {
    let info: serde_json::Value = http
        .get(format!("{url}/_fake/info"))
        .send()
        .and_then(reqwest::blocking::Response::error_for_status)
        .context("GET /_fake/info")?
        .json()
        .context("GET /_fake/info: not JSON")?;
    let azure = info["azure_addr"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .context("/_fake/info has no azure_addr")?;
    let proxy = info["azure_proxy_url"]
        .as_str()
        .context("/_fake/info has no azure_proxy_url")?;
    let ca = ca_path(paths);
    if !ca.is_file() {
        bail!("the fakes did not write their CA to {}", ca.display());
    }
    Ok(cloud_fakes::env::entries(
        url,
        azure,
        proxy,
        &ca,
        &fixture_path(paths),
    ))
}

/// `cargo xtask contract`: installs the pinned vendor clients (once) and runs
/// `tests/contract.rs` with them; fails if a client rejects a fake or reads other values.
pub fn contract(paths: &Paths) -> Result<()> {
    let dir = venv(paths);
    install::ensure_venvs(
        paths,
        &[Venv {
            name: "cloud-contract",
            dir: dir.clone(),
            pins: CONTRACT_PINS,
        }],
    )?;
    let python = dir.join("bin/python");
    step("cargo test -p cloud-fakes --test contract (vendor clients against the fakes)");
    let sh = shell(paths)?;
    let cargo = cargo();
    cmd!(
        sh,
        "{cargo} test -p cloud-fakes --test contract -- --nocapture"
    )
    .env(PYTHON_VAR, &python)
    .run()
    .context("the vendor clients do not accept the cloud fakes")?;
    Ok(())
}
