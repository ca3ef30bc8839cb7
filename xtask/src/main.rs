//! `cargo xtask`: the one entry point for repository chores.
//!
//! - `cargo xtask services up|down|status`: OpenBao, LocalStack and a local OIDC issuer on
//!   loopback, seeded as `docs/e2e-fixtures.md` says.
//! - `cargo xtask e2e`: services up, the `tests/e2e_*.rs` suites, services down.
//! - `cargo xtask demo`: the seed documents' jobs resolved by `ci-secrets` against those services.
//! - `cargo xtask test`: everything CI runs, in order, failing fast.
//! - `cargo xtask contract`: the cloud fakes checked by Google's and Azure's own clients.
//! - `cargo xtask dist [--dev] [--check]`: the release archive for the host, and its check.
//! - `cargo xtask package-check`: `cargo package` of the publishable crates, proven complete.
//! - `cargo xtask bench [--quick] [--masking] [--providers]`: our resolver against GitLab Runner's algorithm and job
//!   scripts, with injected latency; writes `docs/benchmarks.md`.
//!
//! See `docs/testing.md`.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool: progress and results are its output"
)]

mod bench;
mod ci;
mod demo;
mod demo_workflows;
mod dist;
mod fakes;
mod install;
mod issuer;
mod paths;
mod procs;
mod seed_gitlab_sm;
mod seed_vault;
mod services;
mod soak;

use anyhow::Result;
use clap::{Parser, Subcommand};
use paths::Paths;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Repository chores for ci-secrets",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start, stop or inspect the end-to-end services (OpenBao, LocalStack, OIDC issuer).
    Services {
        #[command(subcommand)]
        action: ServicesAction,
    },
    /// Run the end-to-end tests (`tests/e2e_*.rs`); starts the services and stops them after,
    /// unless they were already up.
    E2e,
    /// Resolve the seed documents' jobs (examples/gitlab-ci) with `ci-secrets` against the local
    /// services, and show the variables (masked), files, requests and time of each.
    Demo,
    /// Run everything CI runs, in order, stopping at the first failure.
    Test,
    /// Prove the cloud fakes faithful: Google's and Azure's own Python clients (a cached,
    /// pinned venv) against them.
    Contract,
    /// Build the release archive for the host (binary, README, licences, completions, man
    /// page) and SHA256SUMS into target/dist.
    Dist {
        /// Pack the dev-profile binary instead of a release build (for the test flow).
        #[arg(long)]
        dev: bool,
        /// Then install it with install.sh into a temporary prefix, check a corrupted copy
        /// is refused, and resolve the example jobs with the installed binary.
        #[arg(long)]
        check: bool,
    },
    /// `cargo package` every publishable crate and check the packages build from what they
    /// ship (part of `test`).
    PackageCheck,
    /// Benchmark the resolver against GitLab Runner's algorithm and job scripts on loopback
    /// with injected latency; writes docs/benchmarks.md and docs/benchmarks/*.svg.
    Bench {
        /// One run of W1, W4 and W6-W8 at d = 0 (library and reproduction), checking request counts
        /// only; writes no report.
        #[arg(long)]
        quick: bool,
        /// Only the `exec` output masking measurement; writes its section of
        /// docs/benchmarks.md.
        #[arg(long)]
        masking: bool,
        /// Only the provider workloads W6-W8 (GitLab Secrets Manager, GCP, Azure); writes
        /// their section of docs/benchmarks.md (with `--quick`: one run, counts only).
        #[arg(long, conflicts_with = "masking")]
        providers: bool,
        /// Which transports to measure: plain HTTP and TLS as deployed (`both`), or one;
        /// `tls` updates only the "as deployed" section of docs/benchmarks.md.
        #[arg(long, value_enum, default_value = "both")]
        transport: bench::Selection,
    },
    /// Serve the local OIDC issuer in the foreground (started by `services up`).
    /// Many resolutions with random faults and kills; then checks nothing was left behind.
    Soak {
        /// Runs at most.
        #[arg(long, default_value_t = 1000)]
        runs: usize,
        /// Seconds at most.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
        /// The random seed (printed by every soak), to replay one.
        #[arg(long)]
        seed: Option<u64>,
    },
    #[command(hide = true)]
    IssuerServe {
        /// Loopback port to listen on.
        #[arg(long)]
        port: u16,
        /// The PKCS#8 PEM private key to publish and sign with.
        #[arg(long)]
        key: PathBuf,
    },
    /// Serve the GCP and Azure fakes in the foreground (started by `services up`).
    #[command(hide = true)]
    FakesServe {
        #[command(flatten)]
        args: cloud_fakes::ServeArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ServicesAction {
    /// Install (once), start, wait for, and seed the services; write the env file.
    Up,
    /// Stop the recorded processes and remove the env file.
    Down,
    /// Report each service.
    Status,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let paths = Paths::discover()?;
    match cli.command {
        Command::Services { action } => match action {
            ServicesAction::Up => services::up(&paths).map(drop),
            ServicesAction::Down => services::down(&paths),
            ServicesAction::Status => services::status(&paths),
        },
        Command::E2e => ci::e2e(&paths),
        Command::Test => ci::test(&paths),
        Command::Demo => demo::run(&paths),
        Command::Dist { dev, check } => dist::run(&paths, dev, check),
        Command::PackageCheck => dist::check_packages(&paths),
        Command::Bench {
            quick,
            masking,
            providers,
            transport,
        } => bench::run(&paths, quick, masking, providers, transport),
        Command::Soak {
            runs,
            seconds,
            seed,
        } => soak::run(&paths, runs, seconds, seed),
        Command::IssuerServe { port, key } => issuer::serve(port, &key),
        Command::Contract => fakes::contract(&paths),
        Command::FakesServe { args } => cloud_fakes::serve_blocking(args),
    }
}
