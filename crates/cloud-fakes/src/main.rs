//! `cloud-fakes`: the Google and Azure fakes as a foreground process on loopback.

use clap::Parser;

/// Serve the Google (HTTP) and Azure (TLS) fakes on loopback.
#[derive(Debug, Parser)]
#[command(name = "cloud-fakes", version)]
struct Cli {
    #[command(flatten)]
    serve: cloud_fakes::ServeArgs,
}

fn main() -> anyhow::Result<()> {
    cloud_fakes::serve_blocking(Cli::parse().serve)
}
