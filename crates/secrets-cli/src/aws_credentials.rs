//! `ci-secrets aws-credentials`: temporary AWS credentials for the job (seed 001, seed 003's
//! IRSA), printed as variables, as `credential_process` JSON, written as a shared credentials
//! file profile, or given to a command.

use crate::cli::{AwsCredentialsArgs, AwsFormat, AwsSource, Format};
use crate::emit;
use crate::env::ProcessEnv;
use crate::exit;
use crate::input::CliError;
use crate::output::{self, Delivered, Rendered};
use crate::supervise::{Signals, supervise};
use provider_aws_sm::{AssumeRoleBuilder, TemporaryCredentials, default_session_name};
use secrecy::{ExposeSecret, SecretString};
use secrets_core::{ErrorKind, ResolveContext};
use std::path::Path;
use std::time::{Duration, SystemTime};
use tracing::info;

/// Runs `aws-credentials`; returns the exit code.
pub async fn run(args: AwsCredentialsArgs, env: &ProcessEnv) -> Result<u8, CliError> {
    let signals = if args.command.is_empty() {
        None
    } else {
        Some(Signals::listen()?)
    };
    if let Some(profile) = &args.profile {
        check_profile_name(profile)?;
    }
    let builder = builder(&args, env)?;
    let description = builder.describe();
    let credentials = builder.fetch().await.map_err(|err| CliError {
        code: match err.kind() {
            ErrorKind::InvalidSpec | ErrorKind::InvalidConfig => exit::CONFIG,
            _ => exit::PROVIDER,
        },
        message: err.to_string(),
    })?;
    let expiry = match (
        credentials.expiration_rfc3339(),
        credentials.remaining_secs(wall_clock_now()),
    ) {
        (Some(at), Some(left)) => format!("expiring {at} (in {} min)", left / 60),
        _ => "without an expiry (long-lived keys)".to_owned(),
    };
    info!(
        "AWS credentials for {description} in {}, {expiry}",
        credentials.region()
    );
    let vars = variables(&credentials);
    if let Some((program, rest)) = args.command.split_first() {
        let mut command = tokio::process::Command::new(program);
        command.args(rest);
        for var in &vars {
            command.env(&var.key, &*var.value);
        }
        let masker = (!args.no_mask).then(|| {
            secrets_core::masker::Masker::new(
                vars.iter().filter(|v| v.masked).map(|v| v.value.as_str()),
            )
        });
        drop(vars);
        drop(credentials);
        let signals = signals.unwrap_or_else(|| unreachable!("listened for a command"));
        return supervise(command, program, signals, masker).await;
    }
    if let (Some(profile), Some(path)) = (&args.profile, &args.output) {
        write_profile(path, profile, &credentials)?;
        info!("Wrote profile [{profile}] to {}", path.display());
        return Ok(exit::OK);
    }
    let rendered = match args.format {
        AwsFormat::CredentialProcess => Rendered {
            main: format!(
                "{}\n",
                credentials.credential_process_json().expose_secret()
            )
            .into(),
            github_env: None,
        },
        AwsFormat::Json => {
            let doc = serde_json::json!({
                "variables": vars,
                "expiration": credentials.expiration_rfc3339(),
                "region": credentials.region(),
                "identity": credentials.describe(),
            });
            Rendered {
                main: format!("{doc:#}\n").into(),
                github_env: None,
            }
        }
        AwsFormat::Shell => output::render(Format::Shell, &vars, &Default::default()),
        AwsFormat::Dotenv => output::render(Format::Dotenv, &vars, &Default::default()),
        AwsFormat::Github => output::render(Format::Github, &vars, &Default::default()),
    };
    emit::emit(&rendered, args.output.as_deref(), env)?;
    Ok(exit::OK)
}

/// The request the arguments and the environment describe. Precedence: the flag, then the
/// environment variable GitLab's AWS integration uses, then the runner's default.
fn builder(args: &AwsCredentialsArgs, env: &ProcessEnv) -> Result<AssumeRoleBuilder, CliError> {
    let setting = |name: &str| env.get(name).filter(|v| !v.trim().is_empty());
    let mut builder = match args.source {
        AwsSource::WebIdentity => {
            let role_arn = args
                .role_arn
                .clone()
                .or_else(|| setting("AWS_ROLE_ARN").map(str::to_owned))
                .ok_or_else(|| {
                    CliError::config(
                        "no role to assume: pass --role-arn or set AWS_ROLE_ARN (or use \
                         --source default-chain for the host's credentials)",
                    )
                })?;
            let token = env.get(&args.token_var).unwrap_or_default();
            if token.trim().is_empty() {
                let hint = if setting("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() {
                    "; AWS_WEB_IDENTITY_TOKEN_FILE is set: for EKS IRSA use --source default-chain"
                } else {
                    ""
                };
                return Err(CliError::config(format!(
                    "the ID token in {} is empty or not set: define it under `id_tokens:` in the \
                     job with `aud: sts.amazonaws.com` (or your IAM OIDC provider's audience), \
                     or name another variable with --token-var{hint}",
                    args.token_var
                )));
            }
            AssumeRoleBuilder::web_identity(role_arn, SecretString::from(token.to_owned()))
                .with_token_name(&args.token_var)
        }
        AwsSource::DefaultChain => AssumeRoleBuilder::default_chain(),
    };
    let region = args
        .region
        .clone()
        .or_else(|| setting("AWS_REGION").map(str::to_owned))
        .or_else(|| setting("AWS_DEFAULT_REGION").map(str::to_owned))
        .ok_or_else(|| CliError::config("no AWS region: pass --region or set AWS_REGION"))?;
    let session_name = args
        .session_name
        .clone()
        .or_else(|| setting("AWS_ROLE_SESSION_NAME").map(str::to_owned))
        .unwrap_or_else(|| default_session_name(|name| env.get(name).map(str::to_owned)));
    builder = builder
        .with_region(region)
        .with_session_name(session_name)
        .with_env_vars(env.iter())
        .with_context(ResolveContext {
            request_timeout: Duration::from_secs(args.request_timeout.max(1)),
            ..ResolveContext::default()
        });
    if let Some(secs) = args.duration {
        builder = builder.with_duration(Duration::from_secs(secs));
    }
    for role in &args.chain_role_arn {
        builder = builder.then_assume_role(role);
    }
    Ok(builder)
}

/// The variables AWS CLIs and SDKs read. The key id, secret key and session token are masked.
fn variables(c: &TemporaryCredentials) -> Vec<Delivered> {
    let secret = |key: &str, value: &SecretString| Delivered {
        key: key.to_owned(),
        value: value.expose_secret().to_owned().into(),
        file: false,
        masked: true,
        raw: true,
        secret: value.expose_secret().to_owned().into(),
    };
    let plain = |key: &str, value: &str| Delivered {
        key: key.to_owned(),
        value: value.to_owned().into(),
        file: false,
        masked: false,
        raw: true,
        secret: String::new().into(),
    };
    let mut vars = vec![
        secret("AWS_ACCESS_KEY_ID", c.access_key_id()),
        secret("AWS_SECRET_ACCESS_KEY", c.secret_access_key()),
    ];
    if let Some(token) = c.session_token() {
        vars.push(secret("AWS_SESSION_TOKEN", token));
    }
    vars.push(plain("AWS_REGION", c.region()));
    vars.push(plain("AWS_DEFAULT_REGION", c.region()));
    if let Some(exp) = c.expiration_rfc3339() {
        vars.push(plain("AWS_CREDENTIAL_EXPIRATION", &exp));
    }
    vars
}

fn check_profile_name(name: &str) -> Result<(), CliError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(CliError::config(format!(
            "--profile {name:?} is not a usable profile name (letters, digits and -_.+@)"
        )))
    }
}

/// Writes the `[profile]` section of a shared credentials file, keeping the other sections
/// of an existing file; the whole file is rewritten 0600.
fn write_profile(path: &Path, profile: &str, c: &TemporaryCredentials) -> Result<(), CliError> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(CliError::config(format!("reading {}: {e}", path.display())));
        }
    };
    let header = format!("[{profile}]");
    let mut kept = String::new();
    let mut inside = false;
    for line in existing.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            inside = trimmed == header;
        }
        if !inside {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    if !kept.is_empty() && !kept.ends_with("\n\n") {
        kept.push('\n');
    }
    kept.push_str(&header);
    kept.push('\n');
    if let Some(exp) = c.expiration_rfc3339() {
        kept.push_str(&format!("# written by ci-secrets; expires {exp}\n"));
    }
    kept.push_str(&format!(
        "aws_access_key_id = {}\naws_secret_access_key = {}\n",
        c.access_key_id().expose_secret(),
        c.secret_access_key().expose_secret()
    ));
    if let Some(token) = c.session_token() {
        kept.push_str(&format!("aws_session_token = {}\n", token.expose_secret()));
    }
    let text = SecretString::from(kept);
    emit::write_private(path, text.expose_secret())
}

/// The wall clock, for the expiry shown in the log line.
fn wall_clock_now() -> SystemTime {
    #[allow(
        clippy::disallowed_methods,
        reason = "the credentials' expiry is shown against the wall clock"
    )]
    let now = SystemTime::now();
    now
}
