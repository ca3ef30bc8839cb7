//! Serving the fakes in the foreground: the `cloud-fakes` binary and `cargo xtask fakes-serve`.

use crate::tls::Pki;
use crate::{Fixture, RunningFakes, tls_names};
use anyhow::{Context as _, Result};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// What to serve and where.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// The local OIDC issuer's URL (replaces `${OIDC_ISSUER}` in the fixture).
    #[arg(long)]
    pub issuer: String,
    /// The fixture (JSON or YAML); default: the built-in `fixtures/default.yaml`.
    #[arg(long)]
    pub fixture: Option<PathBuf>,
    /// Loopback port of the Google listener (plain HTTP); 0 picks one.
    #[arg(long, default_value_t = 0)]
    pub gcp_port: u16,
    /// Loopback port of the Azure listener (TLS); 0 picks one.
    #[arg(long, default_value_t = 0)]
    pub azure_port: u16,
    /// Where to write the test CA (PEM; public, so mode 0644). Written before anything is
    /// served.
    #[arg(long)]
    pub ca_out: PathBuf,
}

/// Serves until Ctrl-C or SIGTERM's default action.
pub fn serve_blocking(args: ServeArgs) -> Result<()> {
    let fixture = match &args.fixture {
        Some(path) => Fixture::load(path, &args.issuer)?,
        None => Fixture::parse("default.yaml", crate::DEFAULT_FIXTURE, false, &args.issuer)?,
    };
    let pki = Pki::generate(&tls_names(&fixture))?;
    let tmp = args.ca_out.with_extension("tmp");
    std::fs::write(&tmp, &pki.ca_pem)
        .and_then(|()| std::fs::rename(&tmp, &args.ca_out))
        .with_context(|| format!("cannot write {}", args.ca_out.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the Tokio runtime")?;
    runtime.block_on(async move {
        let loopback = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let fakes = RunningFakes::start_with(
            fixture,
            loopback(args.gcp_port),
            loopback(args.azure_port),
            pki,
        )
        .await?;
        #[allow(
            clippy::print_stdout,
            reason = "the start-up line is the server's output"
        )]
        {
            println!(
                "cloud-fakes: google http://{} azure https://{} (CA {}), azure CONNECT proxy {}",
                fakes.gcp_addr(),
                fakes.azure_addr(),
                args.ca_out.display(),
                fakes.azure_proxy_url()
            );
        }
        tokio::select! {
            () = fakes.wait() => anyhow::bail!("a listener stopped"),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
