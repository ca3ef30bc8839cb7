//! `ci-secrets`: GitLab CI `secrets:` for any job script, on any CI.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool prints its results"
)]

mod aws_credentials;
mod cli;
mod commands;
mod doctor_tokens;
mod emit;
mod env;
mod exit;
mod files;
mod generate;
mod get;
mod hardening;
mod id_token_sources;
mod input;
mod mask_pump;
mod output;
mod supervise;
mod warm_up;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    hardening::at_start();
    warm_up::start_for(&cli.command);
    let env = env::ProcessEnv::capture();
    init_logging(cli.verbose, cli.quiet, &env);
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

/// HTTP crates whose debug output may quote headers; the providers add their own SDKs.
const CHATTY_HTTP_CRATES: &[&str] = &["hyper", "hyper_util", "h2", "reqwest", "rustls"];

fn init_logging(verbose: u8, quiet: bool, env: &env::ProcessEnv) {
    use tracing_subscriber::EnvFilter;
    let ours = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let others = if verbose >= 3 { "debug" } else { "warn" };
    let (provider_targets, quiet_targets) = secrets_resolver::log_targets();
    let mut default = format!(
        "{others},ci_secrets={ours},secrets_resolver={ours},secrets_core={ours},provider_http={ours},auth_oidc={ours}"
    );
    for target in provider_targets {
        default.push_str(&format!(",{target}={ours}"));
    }
    let user = env.get("CI_SECRETS_LOG").map(str::to_owned);
    let mut filter = user
        .as_deref()
        .and_then(|u| EnvFilter::try_new(u).ok())
        .unwrap_or_else(|| EnvFilter::new(&default));
    // At debug and trace levels the AWS SDK prints service error messages verbatim, and HTTP
    // crates print more than we vouch for: they stay at info unless named explicitly.
    for target in CHATTY_HTTP_CRATES.iter().chain(&quiet_targets) {
        if !user.as_deref().unwrap_or_default().contains(target)
            && let Ok(directive) = format!("{target}=info").parse()
        {
            filter = filter.add_directive(directive);
        }
    }
    // Colour only for a person at a terminal: CI logs and captured stderr get plain text.
    let ansi =
        std::io::IsTerminal::is_terminal(&std::io::stderr()) && env.get("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(verbose > 0)
        .with_level(verbose > 0);
    let _ = builder.try_init();
}
