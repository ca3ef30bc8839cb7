//! Command-line definitions.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Examples:
  # Resolve a job's secrets from .gitlab-ci.yml (settings and ID tokens from the environment)
  ci-secrets resolve --ci-config .gitlab-ci.yml --job deploy --format shell

  # Resolve exactly what GitLab sends a runner
  ci-secrets resolve --job-payload job.json --format json

  # Run a command with the secrets in its environment and [MASKED] in its output;
  # files are removed when it exits
  ci-secrets exec --ci-config .gitlab-ci.yml --job deploy -- ./deploy.sh

  # Validate and show the plan, offline
  ci-secrets check --ci-config .gitlab-ci.yml

  # Explain an ID token (never printed) against a Vault role or an AWS trust policy
  ci-secrets doctor --token-var VAULT_ID_TOKEN --for vault=ci

  # Temporary AWS credentials from the ID token in $AWS_ID_TOKEN for $AWS_ROLE_ARN
  eval \"$(ci-secrets aws-credentials --format shell)\"

  # One JSON secret spread into one variable per key, for later jobs
  ci-secrets get aws_secrets_manager:my-secrets --region eu-west-1 --spread --output .ci-secrets

Exit codes:
  0  success
  2  bad input or configuration (malformed spec, unknown job, missing setting,
     empty or expired token); nothing was asked of a provider for those secrets
  3  a provider refused (login, permission, not found) or did not answer
  70 internal error

Logs go to stderr and never contain values or tokens; -v adds detail, CI_SECRETS_LOG
takes a tracing filter.";

/// Resolve GitLab CI `secrets:` (HashiCorp Vault / OpenBao, AWS Secrets Manager) for any job
/// script, exactly as GitLab Runner does, with one login per identity and batched reads.
#[derive(Debug, Parser)]
#[command(name = "ci-secrets", version = crate::generate::VERSION, after_help = AFTER_HELP)]
pub struct Cli {
    /// More detail on stderr (-v debug, -vv trace, -vvv dependencies too).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only warnings and errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Resolve the secrets and print them as variables (to run a command with them, use
    /// `exec`, which also masks them in its output).
    Resolve(ResolveArgs),
    /// Resolve the secrets and run a command with them in its environment, masking their
    /// values in its stdout and stderr as GitLab Runner masks the job log.
    Exec(ExecArgs),
    /// Validate the secrets and print the plan, offline: no request, no value.
    Check(CheckArgs),
    /// Decode an ID token and say what a Vault role or AWS trust policy must match.
    Doctor(DoctorArgs),
    /// Get temporary AWS credentials (ID token or default chain, then role chaining) and
    /// print them, write a credentials file, or run a command with them.
    AwsCredentials(AwsCredentialsArgs),
    /// Read one secret by its `secrets:` short form; `--spread` turns a flat JSON object
    /// into one variable per key.
    Get(GetArgs),
    /// Print the shell completion script (bash, zsh, fish) to stdout.
    Completions(CompletionsArgs),
    /// Print the man page (roff) to stdout.
    Man,
}

/// `completions`
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Shells with completion scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// Bash (`/usr/share/bash-completion/completions/ci-secrets`).
    Bash,
    /// Zsh (`_ci-secrets` in a directory on `$fpath`).
    Zsh,
    /// Fish (`~/.config/fish/completions/ci-secrets.fish`).
    Fish,
}

/// Where the secrets come from.
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// A GitLab job payload (JSON with `secrets` and `variables`); `-` for stdin.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["ci_config", "job"], required_unless_present = "ci_config")]
    pub job_payload: Option<PathBuf>,
    /// A `.gitlab-ci.yml`; provider settings and ID tokens come from its variables and the
    /// environment (the environment wins).
    #[arg(long, value_name = "FILE")]
    pub ci_config: Option<PathBuf>,
    /// The job in `--ci-config`.
    #[arg(long, value_name = "NAME")]
    pub job: Option<String>,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `KEY=value` lines; values with spaces, quotes, `$`, `#` or newlines are double-quoted
    /// with `\\`, `\"`, `\$` and `` \` `` escapes (line breaks kept), as a shell reads them.
    Dotenv,
    /// `export KEY='value'` lines for `eval` or `source`.
    Shell,
    /// `{"variables": [...], "report": {...}}`.
    Json,
    /// GitHub Actions: `::add-mask::` lines on stdout; `KEY<<DELIM` blocks appended to
    /// `$GITHUB_ENV` (or printed when it is unset).
    Github,
}

/// `resolve`
#[derive(Debug, Args)]
pub struct ResolveArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "dotenv")]
    pub format: Format,
    /// Write the output to this file (created 0600) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Directory for file-type variables (created 0700 when missing); default: a fresh
    /// private directory, kept, whose path is printed on stderr.
    #[arg(long, value_name = "DIR")]
    pub files_dir: Option<PathBuf>,
    #[command(flatten)]
    pub tuning: TuningArgs,
}

/// `exec`
#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub tuning: TuningArgs,
    /// Where file-type variables live: `dir` (files removed at exit, swept at the next start
    /// after a SIGKILL) or, on Linux, `memory` (nothing on disk; see docs/security.md).
    #[arg(
        long,
        value_enum,
        env = "CI_SECRETS_FILE_BACKING",
        default_value = "dir"
    )]
    pub file_backing: crate::files::FileBacking,
    /// Do not mask secret values in the command's output: its stdout and stderr are this
    /// process's own (a terminal stays a terminal), and a secret it prints is shown in clear.
    #[arg(long)]
    pub no_mask: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `check`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A GitLab job payload (JSON); `-` for stdin.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["ci_config", "job"], required_unless_present = "ci_config")]
    pub job_payload: Option<PathBuf>,
    /// A `.gitlab-ci.yml`.
    #[arg(long, value_name = "FILE")]
    pub ci_config: Option<PathBuf>,
    /// The job to check; every job with `secrets:` when omitted.
    #[arg(long, value_name = "NAME")]
    pub job: Option<String>,
    /// `text` or `json` (the normalised payload under `payload`).
    #[arg(long, value_enum, default_value = "text")]
    pub format: CheckFormat,
}

/// Formats of `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// Human-readable plan.
    Text,
    /// Payload and plan as JSON.
    Json,
}

/// `doctor`
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The environment variable holding the token; when it is not set, the token is requested
    /// from GitHub Actions or Buildkite (with `--audience`, or the `aud` the job declares).
    /// Without it: every ID token of `--job`, or the token on stdin.
    #[arg(long, value_name = "NAME")]
    pub token_var: Option<String>,
    /// The audience to request a missing `--token-var` token with, outside GitLab.
    #[arg(long, value_name = "AUD", requires = "token_var")]
    pub audience: Option<String>,
    /// A `.gitlab-ci.yml` whose `--job` declares the ID tokens (`id_tokens:`) to explain.
    #[arg(long, value_name = "FILE", requires = "job")]
    pub ci_config: Option<PathBuf>,
    /// The job in `--ci-config`.
    #[arg(long, value_name = "NAME", requires = "ci_config")]
    pub job: Option<String>,
    /// Show what a provider's server side needs to admit this token, as
    /// `PROVIDER=TARGET`: `vault=ROLE` (the bound claims of a Vault JWT role),
    /// `aws_secrets_manager=ROLE_ARN` (an AWS role's trust policy), ... Repeatable.
    #[arg(long = "for", value_name = "PROVIDER=TARGET", value_parser = parse_target)]
    pub targets: Vec<(String, String)>,
    /// `text` or `json`.
    #[arg(long, value_enum, default_value = "text")]
    pub format: CheckFormat,
}

/// Timeouts and limits.
#[derive(Debug, Clone, Args)]
pub struct TuningArgs {
    /// Seconds a single HTTP request may take.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub request_timeout: u64,
    /// Seconds the whole resolution may take.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub deadline: u64,
    /// Requests in flight per server at most over HTTP/1.1 (each holds a connection); over
    /// HTTP/2 requests share one connection, up to 100 at once.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub max_concurrency: usize,
}

/// `aws-credentials`
#[derive(Debug, Args)]
pub struct AwsCredentialsArgs {
    /// With `-- CMD`: do not mask the credentials in the command's output.
    #[arg(long)]
    pub no_mask: bool,
    /// Where the first credentials come from.
    #[arg(long, value_enum, default_value = "web-identity")]
    pub source: AwsSource,
    /// The role to assume with the ID token (default: $AWS_ROLE_ARN).
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
    /// The environment variable holding the ID token (an `id_tokens:` entry).
    #[arg(long, value_name = "NAME", default_value = "AWS_ID_TOKEN")]
    pub token_var: String,
    /// The role session name (default: $AWS_ROLE_SESSION_NAME, else
    /// ${CI_JOB_ID}-${CI_PROJECT_ID}-${CI_SERVER_HOST} cut to 64 bytes, as GitLab Runner).
    #[arg(long, value_name = "NAME")]
    pub session_name: Option<String>,
    /// Session lifetime in seconds (900 to 43200; at most 3600 with role chaining); default
    /// STS's, 3600.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// The region (default: $AWS_REGION, then $AWS_DEFAULT_REGION).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Then assume this role with `sts:AssumeRole` (role chaining); repeat for a longer chain.
    #[arg(long, value_name = "ARN")]
    pub chain_role_arn: Vec<String>,
    /// Output format (ignored with --profile or a command).
    #[arg(long, value_enum, default_value = "shell")]
    pub format: AwsFormat,
    /// Write a shared credentials file section `[NAME]` to --output instead (0600; other
    /// sections of an existing file are kept).
    #[arg(long, value_name = "NAME", requires = "output")]
    pub profile: Option<String>,
    /// Write the output to this file (0600, replaced whole) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Seconds a single HTTP request may take.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub request_timeout: u64,
    /// Run this command with the credentials in its environment instead of printing them.
    #[arg(last = true, value_name = "CMD", conflicts_with_all = ["profile", "output"])]
    pub command: Vec<String>,
}

/// Sources of `aws-credentials`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AwsSource {
    /// STS `AssumeRoleWithWebIdentity` with the ID token in --token-var.
    WebIdentity,
    /// The default chain: environment keys, AWS_PROFILE, AWS_WEB_IDENTITY_TOKEN_FILE with
    /// AWS_ROLE_ARN (EKS IRSA), ECS, EC2 instance profile.
    DefaultChain,
}

/// Formats of `aws-credentials`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AwsFormat {
    /// `export KEY='value'` lines for `eval`.
    Shell,
    /// `KEY=value` lines, quoted as `resolve` quotes them.
    Dotenv,
    /// `{"variables": [...], "expiration": ...}`.
    Json,
    /// GitHub Actions: masks on stdout, the variables to `$GITHUB_ENV`.
    Github,
    /// The JSON an AWS `credential_process` prints (Version 1).
    CredentialProcess,
}

/// `get`
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The secret in the short form `secrets:` takes after the keyword:
    /// `aws_secrets_manager:my-secrets`, `aws_secrets_manager:app/db#password`,
    /// `vault:production/db@ops`.
    #[arg(value_name = "KEYWORD:REFERENCE")]
    pub reference: String,
    /// The value is a flat JSON object: one variable per top-level key.
    #[arg(long)]
    pub spread: bool,
    /// With --spread: put this before every name (then the naming rule applies).
    #[arg(long, value_name = "PREFIX", requires = "spread")]
    pub prefix: Option<String>,
    /// The AWS region (default: $AWS_REGION).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// The ID token variable (default: AWS_ID_TOKEN for AWS, VAULT_ID_TOKEN otherwise).
    #[arg(long, value_name = "NAME")]
    pub token_var: Option<String>,
    /// Output format; without it, --spread prints dotenv and a single value prints itself.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// The variable's name when a single value is printed with --format.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "VALUE",
        conflicts_with = "spread"
    )]
    pub name: String,
    /// Write the output to this file (0600) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub tuning: TuningArgs,
}

/// `PROVIDER=TARGET` of `doctor --for`.
fn parse_target(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((provider, target)) if !provider.is_empty() && !target.is_empty() => {
            Ok((provider.to_owned(), target.to_owned()))
        }
        _ => Err(format!(
            "expected PROVIDER=TARGET, e.g. vault=ci or aws_secrets_manager=arn:aws:iam::123456789012:role/ci, got {text:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
