//! Which tokens `doctor` explains, and where each came from.

use crate::cli::DoctorArgs;
use crate::env::ProcessEnv;
use crate::id_token_sources::{self, FetchedToken, SOURCES_HINT, TokenSource};
use crate::input::{self, CliError};
use secrecy::SecretString;

/// A token to explain.
pub struct DoctorToken {
    /// Where it came from, for the report: `VAULT_ID_TOKEN (the environment)`, `stdin`, ...
    pub origin: String,
    /// [`TokenSource::as_str`], or `stdin`.
    pub source: &'static str,
    /// The token.
    pub value: SecretString,
}

impl std::fmt::Debug for DoctorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DoctorToken")
            .field("origin", &self.origin)
            .field("value", &"** redacted **")
            .finish()
    }
}

fn described(token: FetchedToken) -> DoctorToken {
    let origin = match token.source {
        TokenSource::Environment => format!("{} (the environment)", token.name),
        source => format!(
            "{} (requested from {source}, audience {})",
            token.name,
            if token.audience.is_empty() {
                "the CI's default"
            } else {
                &token.audience
            }
        ),
    };
    DoctorToken {
        origin,
        source: token.source.as_str(),
        value: token.value,
    }
}

/// `--token-var NAME` (from the environment, else requested from the CI with `--audience` or
/// the `aud` the job declares); without it every `id_tokens:` entry of `--job`; else stdin.
pub async fn collect(args: &DoctorArgs, env: &ProcessEnv) -> Result<Vec<DoctorToken>, CliError> {
    let declared = match (&args.ci_config, &args.job) {
        (Some(path), Some(job)) => input::read_ci_config(path)?
            .job(job)
            .map_err(|e| CliError::config(format!("{}: {e}", path.display())))?
            .id_tokens()
            .to_vec(),
        _ => Vec::new(),
    };
    let missing = |name: &str| {
        CliError::config(format!(
            "{name} is not set in the environment and no CI here issues it; {SOURCES_HINT}"
        ))
    };
    if let Some(name) = &args.token_var {
        let audience = args
            .audience
            .clone()
            .or_else(|| {
                declared
                    .iter()
                    .find(|d| &d.name == name)
                    .and_then(|d| d.aud.first().cloned())
            })
            .unwrap_or_default();
        let token = id_token_sources::token_for(name, &audience, env)
            .await?
            .ok_or_else(|| missing(name))?;
        return Ok(vec![described(token)]);
    }
    if let Some(job) = &args.job {
        if declared.is_empty() {
            return Err(CliError::config(format!(
                "job {job} declares no id_tokens:; give --token-var NAME"
            )));
        }
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for spec in &declared {
            let audience = spec.aud.first().map_or("", String::as_str);
            match id_token_sources::token_for(&spec.name, audience, env).await {
                Ok(Some(token)) => out.push(described(token)),
                Ok(None) => problems.push(missing(&spec.name).message),
                Err(e) => problems.push(e.message),
            }
        }
        if !problems.is_empty() {
            return Err(CliError::config(problems.join("\n")));
        }
        return Ok(out);
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
        .map_err(|e| CliError::config(format!("reading the token from stdin: {e}")))?;
    Ok(vec![DoctorToken {
        origin: "stdin".to_owned(),
        source: "stdin",
        value: SecretString::from(text),
    }])
}
