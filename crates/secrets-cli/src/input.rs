//! Loading the secrets: a job payload, or a `.gitlab-ci.yml` job normalised as GitLab does.

use crate::cli::InputArgs;
use crate::env::{ProcessEnv, WithTokens};
use crate::exit;
use secrets_core::gitlab_ci::{CiConfig, CiJob};
use secrets_core::{JobPayload, JobVariable};
use std::io::Read;
use std::path::Path;

/// A failure that ends the command with an exit code and a message for stderr.
#[derive(Debug)]
pub struct CliError {
    /// The exit code.
    pub code: u8,
    /// The message, one problem a line.
    pub message: String,
}

impl CliError {
    /// Bad input or configuration (exit 2).
    pub fn config(message: impl Into<String>) -> Self {
        Self {
            code: exit::CONFIG,
            message: message.into(),
        }
    }

    /// The tool itself failed (exit 70).
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            code: exit::INTERNAL,
            message: message.into(),
        }
    }
}

impl From<secrets_core::Error> for CliError {
    fn from(err: secrets_core::Error) -> Self {
        Self::config(err.to_string())
    }
}

fn read_input(path: &Path) -> Result<String, CliError> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::config(format!("reading stdin: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(path)
        .map_err(|e| CliError::config(format!("reading {}: {e}", path.display())))
}

/// Parses a job payload, reporting only the position of a JSON error: the payload holds
/// variable values, and serde's messages can quote them.
pub fn parse_payload(text: &str, origin: &str) -> Result<JobPayload, CliError> {
    JobPayload::from_json(text).map_err(|e| {
        CliError::config(format!(
            "{origin}: the job payload is not valid ({:?} error at line {} column {}); expected GitLab's job JSON with `secrets` and `variables`",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

/// Reads and parses a `.gitlab-ci.yml` with its local includes, relative to the file's
/// directory (standard input: the working directory); warns of includes not followed.
pub fn read_ci_config(path: &Path) -> Result<CiConfig, CliError> {
    let loaded = if path == Path::new("-") {
        let text = read_input(path)?;
        CiConfig::from_yaml_with_includes(&text, "stdin", Path::new("."))
    } else {
        let project_dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        CiConfig::load(path, project_dir)
    }
    .map_err(|e| CliError::config(e.to_string()))?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    if loaded.files.len() > 1 {
        tracing::info!(files = ?loaded.files, "read the configuration with its local includes");
    }
    Ok(loaded.config)
}

/// The payload for `--job-payload`, or for `--ci-config` + `--job` (with the job's
/// `id_tokens:` that the environment lacks requested from the CI, see `id_token_sources`).
pub async fn load(input: &InputArgs, env: &ProcessEnv) -> Result<JobPayload, CliError> {
    if let Some(path) = &input.job_payload {
        let text = read_input(path)?;
        return parse_payload(&text, &path.display().to_string());
    }
    let Some(path) = &input.ci_config else {
        return Err(CliError::config(
            "give --job-payload FILE, or --ci-config FILE with --job NAME",
        ));
    };
    let config = read_ci_config(path)?;
    let Some(name) = &input.job else {
        let with_secrets: Vec<_> = config
            .job_names()
            .into_iter()
            .filter(|n| config.job(n).is_ok_and(|j| j.has_secrets()))
            .collect();
        return Err(CliError::config(format!(
            "--job is required with --ci-config; jobs with secrets: {}",
            with_secrets.join(", ")
        )));
    };
    let job = config
        .job(name)
        .map_err(|e| CliError::config(format!("{}: {e}", path.display())))?;
    let fetched = crate::id_token_sources::fetch_missing(job.id_tokens(), env).await?;
    let env = &env.with_tokens(&fetched);
    job_payload(&job, env).map_err(|e| CliError {
        code: e.code,
        message: format!("{}: {}", path.display(), e.message),
    })
}

/// The payload GitLab would send for `job`: provider settings from the job's variables and the
/// environment (the environment wins), and the variables the job would see.
pub fn job_payload(job: &CiJob, env: &ProcessEnv) -> Result<JobPayload, CliError> {
    job_payload_with(job, env, &[])
}

/// [`job_payload`] with settings that win over the environment (`get --region`).
pub fn job_payload_with(
    job: &CiJob,
    env: &ProcessEnv,
    overrides: &[(&str, &str)],
) -> Result<JobPayload, CliError> {
    let setting = |name: &str| {
        let set = overrides.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        set.or_else(|| env.get(name))
            .map(str::to_owned)
            .or_else(|| {
                job.variables()
                    .iter()
                    .rev()
                    .find(|v| v.key == name)
                    .map(|v| v.value.clone())
            })
    };
    let (secrets, warnings) = job
        .secrets_payload_with_warnings(&setting)
        .map_err(|errors| {
            CliError::config(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    let mut variables: Vec<JobVariable> = job
        .variables()
        .iter()
        .map(|v| JobVariable {
            key: v.key.clone(),
            value: v.value.clone(),
            public: true,
            raw: !v.expand,
            ..JobVariable::default()
        })
        .collect();
    variables.extend(env.iter().map(|(k, v)| JobVariable {
        key: k.to_owned(),
        value: v.to_owned(),
        ..JobVariable::default()
    }));
    Ok(JobPayload { secrets, variables })
}
