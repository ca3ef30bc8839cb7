//! `cloud-fakes serve`: the fakes as a foreground process, for `cargo xtask services up`.

#![allow(
    clippy::print_stdout,
    reason = "a server: its start-up line is its output"
)]

use anyhow::{Context as _, Result};
use clap::Parser;
use cloud_fakes::{Fixture, RunningFakes};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Serve the Google and Azure fakes on loopback.
#[derive(Debug, Parser)]
#[command(name = "cloud-fakes", version)]
struct Cli {
    /// The local OIDC issuer's URL (replaces `${OIDC_ISSUER}` in the fixture).
    #[arg(long)]
    issuer: String,
    /// The fixture (JSON or YAML); default: the built-in `fixtures/default.yaml`.
    #[arg(long)]
    fixture: Option<PathBuf>,
    /// Loopback port of the Google listener (plain HTTP); 0 picks one.
    #[arg(long, default_value_t = 0)]
    gcp_port: u16,
    /// Loopback port of the Azure listener (TLS); 0 picks one.
    #[arg(long, default_value_t = 0)]
    azure_port: u16,
    /// Where to write the test CA (PEM, mode 0644: it is public).
    #[arg(long)]
    ca_out: PathBuf,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let fixture = match &cli.fixture {
        Some(path) => Fixture::load(path, &cli.issuer)?,
        None => Fixture::parse(
            "default.yaml",
            cloud_fakes::DEFAULT_FIXTURE,
            false,
            &cli.issuer,
        )?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the Tokio runtime")?;
    runtime.block_on(async move {
        let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let fakes =
            RunningFakes::start(fixture, loopback(cli.gcp_port), loopback(cli.azure_port)).await?;
        let tmp = cli.ca_out.with_extension("tmp");
        std::fs::write(&tmp, fakes.ca_pem())
            .and_then(|()| std::fs::rename(&tmp, &cli.ca_out))
            .with_context(|| format!("cannot write {}", cli.ca_out.display()))?;
        println!(
            "cloud-fakes: google http://{} azure https://{} (CA {})",
            fakes.gcp_addr(),
            fakes.azure_addr(),
            cli.ca_out.display()
        );
        tokio::select! {
            () = fakes.wait() => anyhow::bail!("a listener stopped"),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
