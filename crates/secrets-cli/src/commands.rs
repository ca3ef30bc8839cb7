//! The subcommands.

use crate::cli::{CheckArgs, CheckFormat, Command, DoctorArgs, ExecArgs, ResolveArgs, TuningArgs};
use crate::emit;
use crate::env::ProcessEnv;
use crate::exit;
use crate::input::{self, CliError};
use crate::output::{self, Delivered};
use crate::supervise::{Signals, supervise};
use auth_oidc::{IdToken, SystemClock};
use secrecy::ExposeSecret;
use secrets_core::materialise::SecretFiles;
use secrets_core::{JobPayload, ProviderKind, TrustHint};
use secrets_resolver::{Plan, Report, Resolution, ResolveFailure, ResolveOptions, Resolver};
use std::path::Path;
use std::time::Duration;
use tracing::{info, warn};

/// Runs a subcommand; returns the exit code.
pub async fn run(command: Command, env: &ProcessEnv) -> u8 {
    let result = match command {
        Command::Resolve(args) => resolve(args, env).await,
        Command::Exec(args) => exec(args, env).await,
        Command::Check(args) => check(args, env),
        Command::Doctor(args) => doctor(args, env).await,
        Command::Completions(args) => crate::generate::completions(&args),
        Command::Man => crate::generate::man(),
        Command::AwsCredentials(args) => crate::aws_credentials::run(args, env).await,
        Command::Get(args) => crate::get::run(args, env).await,
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", err.message);
            err.code
        }
    }
}

pub(crate) fn build_resolver(
    payload: &JobPayload,
    tuning: &TuningArgs,
    env: &ProcessEnv,
) -> Result<Resolver, CliError> {
    let options = ResolveOptions::from_job_variables(&payload.variables)
        .with_request_timeout(Duration::from_secs(tuning.request_timeout.max(1)))
        .with_deadline(Duration::from_secs(tuning.deadline.max(1)))
        .with_max_concurrency(tuning.max_concurrency);
    let builder = Resolver::builder()
        .with_default_providers_from(env)
        .map_err(|e| CliError::config(e.to_string()))?;
    Ok(builder.with_options(options).build())
}

pub(crate) async fn resolve_or_report(
    payload: &JobPayload,
    tuning: &TuningArgs,
    env: &ProcessEnv,
) -> Result<Resolution, CliError> {
    let resolver = build_resolver(payload, tuning, env)?;
    match resolver.resolve_payload(payload).await {
        Ok(resolution) => {
            summarise(&resolution.report);
            Ok(resolution)
        }
        Err(failure) => Err(failure_error(&failure)),
    }
}

pub(crate) fn failure_error(failure: &ResolveFailure) -> CliError {
    for warning in &failure.report.warnings {
        warn!("{warning}");
    }
    CliError {
        code: if failure.is_configuration_problem() {
            exit::CONFIG
        } else {
            exit::PROVIDER
        },
        message: format!("{failure}\n{}", requests_line(&failure.report)),
    }
}

fn requests_line(report: &Report) -> String {
    let requests: Vec<_> = report
        .requests
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "requests: {} in {} ms",
        if requests.is_empty() {
            "none".to_owned()
        } else {
            requests.join(" ")
        },
        report.duration_ms
    )
}

pub(crate) fn summarise(report: &Report) {
    for warning in &report.warnings {
        warn!("{warning}");
    }
    info!(
        "Resolved {} secrets; {}",
        report.secrets.len(),
        requests_line(report)
    );
}

/// Writes file variables into `files` and returns every variable as delivered.
pub(crate) fn deliver(
    resolution: &Resolution,
    files: &mut Option<SecretFiles>,
    files_dir: Option<&Path>,
) -> Result<Vec<Delivered>, CliError> {
    let mut out = Vec::with_capacity(resolution.variables.len());
    for var in &resolution.variables {
        let value = if var.file {
            if files.is_none() {
                *files = Some(match files_dir {
                    Some(dir) => SecretFiles::in_dir(dir)?,
                    None => SecretFiles::create()?,
                });
            }
            let sink = files
                .as_mut()
                .unwrap_or_else(|| unreachable!("just created"));
            sink.write(&var.key, &var.value)?.display().to_string()
        } else {
            var.value.expose().to_owned()
        };
        out.push(Delivered {
            key: var.key.clone(),
            value: value.into(),
            file: var.file,
            masked: var.masked,
            raw: var.raw,
            secret: var.value.expose().to_owned().into(),
        });
    }
    Ok(out)
}

async fn resolve(args: ResolveArgs, env: &ProcessEnv) -> Result<u8, CliError> {
    let payload = input::load(&args.input, env).await?;
    let mut resolution = resolve_or_report(&payload, &args.tuning, env).await?;
    // The revoke is in flight while the files are written (and the output too, unless it
    // carries the report, whose request counts include the revoke once it is done).
    let closing = resolution.closing();
    let mut files = None;
    let written = async {
        let delivered = deliver(&resolution, &mut files, args.files_dir.as_deref())?;
        if !output::carries_report(args.format) {
            let rendered = output::render(args.format, &delivered, &resolution.report);
            emit::emit(&rendered, args.output.as_deref(), env)?;
        }
        Ok::<_, CliError>(delivered)
    };
    let (written, ()) = tokio::join!(written, closing);
    // Any failure above leaves the files to their cleanup guard.
    let delivered = written?;
    resolution.close().await;
    if output::carries_report(args.format) {
        let rendered = output::render(args.format, &delivered, &resolution.report);
        emit::emit(&rendered, args.output.as_deref(), env)?;
    }
    if let Some(files) = files {
        let dir = files.keep();
        info!("File variables are in {}", dir.display());
    }
    Ok(exit::OK)
}

async fn exec(args: ExecArgs, env: &ProcessEnv) -> Result<u8, CliError> {
    // Listen before any file exists: a signal from here on is forwarded to the child (or, if
    // it comes before the child starts, delivered to it at once) and never skips the cleanup.
    let signals = Signals::listen()?;
    let payload = input::load(&args.input, env).await?;
    let resolution = resolve_or_report(&payload, &args.tuning, env).await?;
    let mut files = args.file_backing.sink()?;
    let delivered = deliver(&resolution, &mut files, None)?;
    let masker = (!args.no_mask).then(|| resolution.masker());
    // The values live on in `delivered` only; the revoke, still in flight, is waited for
    // while the child runs, and before this process exits.
    let closing = resolution.closing();
    drop(resolution);
    let run = async {
        let (program, rest) = args
            .command
            .split_first()
            .ok_or_else(|| CliError::config("give the command to run after --"))?;
        let mut command = tokio::process::Command::new(program);
        command.args(rest);
        for var in &delivered {
            command.env(&var.key, &var.value);
        }
        supervise(command, program, signals, masker).await
    };
    let (code, ()) = tokio::join!(run, closing);
    if let Some(files) = files {
        files.cleanup();
    }
    code
}

fn check(args: CheckArgs, env: &ProcessEnv) -> Result<u8, CliError> {
    let mut jobs: Vec<(String, JobPayload)> = Vec::new();
    let mut problems = Vec::new();
    if let Some(path) = &args.job_payload {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::config(format!("reading {}: {e}", path.display())))?;
        jobs.push((
            "payload".to_owned(),
            input::parse_payload(&text, &path.display().to_string())?,
        ));
    } else if let Some(path) = &args.ci_config {
        let config = input::read_ci_config(path)?;
        let names: Vec<String> = match &args.job {
            Some(job) => vec![job.clone()],
            None => config.job_names().into_iter().map(str::to_owned).collect(),
        };
        for name in names {
            let job = match config.job(&name) {
                Ok(job) => job,
                Err(e) => {
                    problems.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            if args.job.is_none() && !job.has_secrets() {
                continue;
            }
            match input::job_payload(&job, env) {
                Ok(payload) => jobs.push((name, payload)),
                Err(e) => problems.push(format!("{}: {}", path.display(), e.message)),
            }
        }
    }
    let reports: Vec<serde_json::Value> = jobs
        .iter()
        .map(|(name, payload)| {
            let plan = Plan::of(&payload.secrets);
            let warnings = token_warnings(payload);
            serde_json::json!({"job": name, "payload": {"secrets": payload.secrets}, "plan": plan, "warnings": warnings})
        })
        .collect();
    match args.format {
        CheckFormat::Json => {
            let doc = if args.job.is_some() || args.job_payload.is_some() {
                let mut one = reports.into_iter().next().unwrap_or_default();
                one["problems"] = serde_json::json!(problems);
                one
            } else {
                serde_json::json!({"jobs": reports, "problems": problems})
            };
            println!("{doc:#}");
        }
        CheckFormat::Text => {
            for (report, (name, payload)) in reports.iter().zip(&jobs) {
                let plan = Plan::of(&payload.secrets);
                println!(
                    "job {name}: {} secrets, {} logins, {} reads, {} batches",
                    plan.secrets, plan.logins, plan.reads, plan.batches
                );
                for identity in &plan.identities {
                    println!(
                        "  {} {}: {} (logins {}, reads {}, batches {})",
                        identity.provider,
                        identity.identity,
                        identity.variables.join(", "),
                        identity.logins,
                        identity.reads,
                        identity.batches
                    );
                }
                for skipped in &plan.skipped {
                    println!("  skipped {skipped}: no resolver handles it");
                }
                for warning in report["warnings"].as_array().into_iter().flatten() {
                    println!("  warning: {}", warning.as_str().unwrap_or_default());
                }
            }
            for problem in &problems {
                eprintln!("error: {problem}");
            }
        }
    }
    Ok(if problems.is_empty() {
        exit::OK
    } else {
        exit::CONFIG
    })
}

/// Token references whose variable is not defined: the login would send an empty token.
fn token_warnings(payload: &JobPayload) -> Vec<String> {
    let vars = secrets_core::Variables::new(payload.variables.clone());
    let mut out = Vec::new();
    for (key, secret) in &payload.secrets {
        let [kind] = secret.providers()[..] else {
            continue;
        };
        let Some(reference) =
            secrets_resolver::descriptor_for(kind).and_then(|d| d.id_token(secret))
        else {
            continue;
        };
        if vars.expand(&reference).is_empty() {
            let reference = secrets_core::payload::token_reference(&reference);
            out.push(format!(
                "{key}: the token {reference} expands to nothing here; define the ID token (id_tokens: in GitLab, or the variable in this environment); {}",
                crate::id_token_sources::SOURCES_HINT
            ));
        }
    }
    out
}

async fn doctor(args: DoctorArgs, env: &ProcessEnv) -> Result<u8, CliError> {
    let tokens = crate::doctor_tokens::collect(&args, env).await?;
    let mut code = exit::OK;
    let mut docs = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if i > 0 && args.format == CheckFormat::Text {
            println!();
        }
        let (one, doc) = explain(
            &args,
            &token.origin,
            token.source,
            token.value.expose_secret(),
        )?;
        code = code.max(one);
        docs.extend(doc);
    }
    match docs.len() {
        0 => {}
        1 => println!("{:#}", docs[0]),
        _ => println!("{:#}", serde_json::Value::Array(docs)),
    }
    Ok(code)
}

/// Explains one token: prints the text report, or returns the JSON document.
fn explain(
    args: &DoctorArgs,
    origin: &str,
    source: &str,
    raw: &str,
) -> Result<(u8, Option<serde_json::Value>), CliError> {
    let mut json = None;
    let token = IdToken::parse(raw).map_err(|e| CliError::config(format!("{origin}: {e}")))?;
    let claims = token.claims();
    let remaining = token.remaining_secs(&SystemClock);
    let expired = token
        .check_times(&SystemClock, 0)
        .err()
        .map(|e| e.to_string());
    let claim = |name: &str| claims.get_str(name).unwrap_or_else(|| "(none)".to_owned());

    let mut hints: Vec<(String, TrustHint)> = Vec::new();
    for (provider, target) in &args.targets {
        let descriptor = ProviderKind::from_keyword(provider)
            .and_then(secrets_resolver::descriptor_for)
            .ok_or_else(|| {
                let known: Vec<&str> = secrets_resolver::descriptors()
                    .map(|d| d.kind().keyword())
                    .collect();
                CliError::config(format!(
                    "--for {provider}={target}: no provider {provider:?} in this build; use one of: {}",
                    known.join(", ")
                ))
            })?;
        let hint = descriptor.trust_hint(claims, target).ok_or_else(|| {
            CliError::config(format!(
                "--for {provider}={target}: {provider} does not log in with an ID token"
            ))
        })?;
        hints.push((provider.clone(), hint));
    }
    match args.format {
        CheckFormat::Json => {
            json = Some(serde_json::json!({
                "source": origin, "token_source": source, "algorithm": token.algorithm(),
                "iss": claims.iss, "aud": claim("aud"), "sub": claims.sub, "exp": claims.exp,
                "remaining_secs": remaining, "expired": expired,
                "project_path": claims.get_str("project_path"), "ref": claims.get_str("ref"),
                "ref_type": claims.get_str("ref_type"), "ref_protected": claims.get_str("ref_protected"),
                "trust": hints.iter().map(|(p, h)| (p.clone(), serde_json::json!({"title": h.title, "settings": h.settings, "notes": h.notes}))).collect::<serde_json::Map<_, _>>(),
            }));
        }
        CheckFormat::Text => {
            println!(
                "token from {origin} ({}; the token itself is not shown)",
                token.algorithm()
            );
            println!("  iss            {}", claim("iss"));
            println!("  aud            {}", claim("aud"));
            println!("  sub            {}", claim("sub"));
            for name in [
                "project_path",
                "project_id",
                "namespace_path",
                "ref",
                "ref_type",
                "ref_protected",
                "pipeline_source",
                "job_id",
            ] {
                if let Some(value) = claims.get_str(name) {
                    println!("  {name:<14} {value}");
                }
            }
            match (remaining, &expired) {
                (_, Some(problem)) => println!("  expiry         {problem}"),
                (Some(secs), None) => {
                    println!("  expiry         in {secs}s (exp {})", claim("exp"))
                }
                (None, None) => println!("  expiry         (no exp claim)"),
            }
            for (_, hint) in &hints {
                println!("\n{}:\n{:#}", hint.title, hint.settings);
                for note in &hint.notes {
                    println!("{note}");
                }
            }
        }
    }
    let code = if expired.is_some() {
        exit::CONFIG
    } else {
        exit::OK
    };
    Ok((code, json))
}
