//! `ci-secrets`: GitLab CI `secrets:` for any job script, on any CI.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool prints its results"
)]

mod cli;
mod commands;
mod env;
mod exit;
mod input;
mod output;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let env = env::ProcessEnv::capture();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let code = runtime.block_on(commands::run(cli.command, &env));
    ExitCode::from(code)
}

fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let ours = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let others = if verbose >= 3 { "debug" } else { "warn" };
    let default = format!(
        "{others},ci_secrets={ours},secrets_resolver={ours},secrets_core={ours},provider_vault={ours},provider_aws_sm={ours},auth_oidc={ours}"
    );
    let filter =
        EnvFilter::try_from_env("CI_SECRETS_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(verbose > 0)
        .with_level(verbose > 0);
    let _ = builder.try_init();
}
