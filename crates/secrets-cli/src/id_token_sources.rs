//! ID tokens outside GitLab: a job's `id_tokens:` fetched from the CI that runs it.
//!
//! GitLab puts each token declared under `id_tokens:` into the job's environment. Elsewhere a
//! declared token that is not in the environment is requested, with its `aud`, from
//!
//! - GitHub Actions (`ACTIONS_ID_TOKEN_REQUEST_URL` and `ACTIONS_ID_TOKEN_REQUEST_TOKEN` set,
//!   which needs `permissions: id-token: write`): `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=AUD`
//!   with `Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`, answer `{"value": "<jwt>"}`;
//! - Buildkite (`BUILDKITE=true`): `buildkite-agent oidc request-token --audience AUD`, the
//!   token on its stdout.
//!
//! Tokens stay in [`SecretString`] until they join the job's variables; neither they, the
//! request token nor an answer body appear in a log or an error.
//!
//! This lives in the CLI rather than `auth-oidc`: it is process-environment glue (it reads
//! the CI's variables and runs the agent), while the library takes tokens as job variables
//! and stays free of an HTTP client and of spawning processes. It depends on nothing of the
//! CLI but [`ProcessEnv`], so it can move behind a feature of `auth-oidc` when a library user
//! needs it.

use crate::env::ProcessEnv;
use crate::input::CliError;
use secrecy::{ExposeSecret, SecretString};
use secrets_core::gitlab_ci::IdTokenSpec;
use std::fmt;
use std::time::Duration;

/// GitHub Actions' token service URL.
pub const GITHUB_URL_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
/// GitHub Actions' bearer token for the token service.
pub const GITHUB_TOKEN_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
/// The Buildkite agent program, overridable for tests and unusual installs.
pub const BUILDKITE_AGENT_VAR: &str = "CI_SECRETS_BUILDKITE_AGENT";
/// The longest an ID token answer may be.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// How long a token request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the "token expands to nothing" messages append: where else a token could come from.
pub const SOURCES_HINT: &str = "on GitHub Actions give the job `permissions: id-token: write` (ACTIONS_ID_TOKEN_REQUEST_URL/ACTIONS_ID_TOKEN_REQUEST_TOKEN); on Buildkite run where `buildkite-agent` is on PATH";

/// Where an ID token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// The variable was set in the environment (GitLab, or set by hand).
    Environment,
    /// Requested from the GitHub Actions token service.
    GithubActions,
    /// Requested with `buildkite-agent oidc request-token`.
    Buildkite,
}

impl TokenSource {
    /// A stable name for JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Environment => "environment",
            Self::GithubActions => "github-actions",
            Self::Buildkite => "buildkite",
        }
    }
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Environment => "the environment",
            Self::GithubActions => "the GitHub Actions token service",
            Self::Buildkite => "buildkite-agent oidc request-token",
        })
    }
}

/// A token requested from the CI.
pub struct FetchedToken {
    /// The variable it is for.
    pub name: String,
    /// The audience asked for (empty: the CI's default).
    pub audience: String,
    /// Where it came from.
    pub source: TokenSource,
    /// The token.
    pub value: SecretString,
}

impl fmt::Debug for FetchedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchedToken")
            .field("name", &self.name)
            .field("audience", &self.audience)
            .field("source", &self.source)
            .field("value", &"** redacted **")
            .finish()
    }
}

/// The CI this process runs on, as far as ID tokens go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ci<'a> {
    Github { url: &'a str, bearer: &'a str },
    Buildkite { agent: &'a str },
}

fn non_empty<'a>(env: &'a ProcessEnv, key: &str) -> Option<&'a str> {
    env.get(key).filter(|v| !v.trim().is_empty())
}

fn detect(env: &ProcessEnv) -> Option<Ci<'_>> {
    if let (Some(url), Some(bearer)) = (
        non_empty(env, GITHUB_URL_VAR),
        non_empty(env, GITHUB_TOKEN_VAR),
    ) {
        return Some(Ci::Github { url, bearer });
    }
    if env.get("BUILDKITE") == Some("true") {
        let agent = non_empty(env, BUILDKITE_AGENT_VAR).unwrap_or("buildkite-agent");
        return Some(Ci::Buildkite { agent });
    }
    None
}

/// Whether a variable holds a token already.
fn present(env: &ProcessEnv, name: &str) -> bool {
    non_empty(env, name).is_some()
}

/// The first audience of a declaration (GitHub and Buildkite take one).
fn audience(spec: &IdTokenSpec) -> &str {
    if spec.aud.len() > 1 {
        tracing::warn!(
            token = %spec.name,
            "{}: several audiences declared; outside GitLab only the first ({}) is requested",
            spec.name,
            spec.aud[0]
        );
    }
    spec.aud.first().map_or("", String::as_str)
}

/// Requests every token of `specs` that the environment lacks, when the CI can issue them.
/// A token the CI cannot issue is left out (the resolution then reports it as empty, with
/// [`SOURCES_HINT`]); a CI that fails to issue one is an error (exit 2) naming the variable.
pub async fn fetch_missing(
    specs: &[IdTokenSpec],
    env: &ProcessEnv,
) -> Result<Vec<FetchedToken>, CliError> {
    let missing: Vec<&IdTokenSpec> = specs.iter().filter(|s| !present(env, &s.name)).collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let Some(ci) = detect(env) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(missing.len());
    let mut problems = Vec::new();
    for spec in missing {
        match fetch(ci, &spec.name, audience(spec)).await {
            Ok(token) => {
                tracing::info!(
                    "ID token {} requested from {} (audience {})",
                    spec.name,
                    token.source,
                    shown(&token.audience)
                );
                out.push(token);
            }
            Err(message) => problems.push(message),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(CliError::config(problems.join("\n")))
    }
}

/// The token for variable `name`: from the environment, else requested with `audience` from
/// the CI. `None` when neither has one.
pub async fn token_for(
    name: &str,
    audience: &str,
    env: &ProcessEnv,
) -> Result<Option<FetchedToken>, CliError> {
    if let Some(value) = non_empty(env, name) {
        return Ok(Some(FetchedToken {
            name: name.to_owned(),
            audience: String::new(),
            source: TokenSource::Environment,
            value: SecretString::from(value.to_owned()),
        }));
    }
    let Some(ci) = detect(env) else {
        return Ok(None);
    };
    fetch(ci, name, audience)
        .await
        .map(Some)
        .map_err(CliError::config)
}

fn shown(audience: &str) -> &str {
    if audience.is_empty() {
        "the CI's default"
    } else {
        audience
    }
}

async fn fetch(ci: Ci<'_>, name: &str, audience: &str) -> Result<FetchedToken, String> {
    let (source, value) = match ci {
        Ci::Github { url, bearer } => (
            TokenSource::GithubActions,
            github(url, bearer, audience)
                .await
                .map_err(|e| format!("{name}: {e}"))?,
        ),
        Ci::Buildkite { agent } => (
            TokenSource::Buildkite,
            buildkite(agent, audience)
                .await
                .map_err(|e| format!("{name}: {e}"))?,
        ),
    };
    Ok(FetchedToken {
        name: name.to_owned(),
        audience: audience.to_owned(),
        source,
        value,
    })
}

/// The request URL: GitHub's URL already has a query (`api-version`), so `&audience=` is
/// appended; `?` when it has none.
fn github_url(base: &str, audience: &str) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(base).map_err(|_| {
        format!("{GITHUB_URL_VAR} is not a URL; it is set by GitHub Actions, leave it unchanged")
    })?;
    if !audience.is_empty() {
        url.query_pairs_mut().append_pair("audience", audience);
    }
    Ok(url)
}

/// Scheme, host and port only: the rest of the URL is GitHub's business.
fn origin(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        (Some(host), None) => format!("{}://{host}", url.scheme()),
        _ => url.scheme().to_owned(),
    }
}

async fn github(base: &str, bearer: &str, audience: &str) -> Result<SecretString, String> {
    const SERVICE: &str = "the GitHub Actions token service";
    let url = github_url(base, audience)?;
    let at = origin(&url);
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let response = client
        .get(url)
        .header(reqwest::header::AUTHORIZATION, format!("bearer {bearer}"))
        .header(reqwest::header::ACCEPT, "application/json; api-version=2.0")
        .header(reqwest::header::USER_AGENT, "ci-secrets")
        .send()
        .await
        .map_err(|e| {
            let why = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "cannot connect"
            } else {
                "request failed"
            };
            format!("{SERVICE} at {at} did not answer ({why}); check the job's network")
        })?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(format!(
            "{SERVICE} at {at} refused {GITHUB_TOKEN_VAR} (HTTP {}); give the job `permissions: id-token: write` and do not override {GITHUB_TOKEN_VAR}",
            status.as_u16()
        ));
    }
    if !status.is_success() {
        return Err(format!(
            "{SERVICE} at {at} answered HTTP {}; retry the job",
            status.as_u16()
        ));
    }
    let body = read_bounded(response)
        .await
        .map_err(|why| format!("{SERVICE} at {at}: {why}"))?;
    // Parse into a secret-holding shape: serde errors could quote the body, so only say which.
    #[derive(serde::Deserialize)]
    struct Answer {
        value: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(body.expose_secret().as_bytes())
        .map_err(|_| format!("{SERVICE} at {at} answered something that is not JSON"))?;
    match answer.value.map(SecretString::from) {
        Some(token) if !token.expose_secret().trim().is_empty() => Ok(token),
        _ => Err(format!(
            "{SERVICE} at {at} answered without a token (no `value`); retry the job"
        )),
    }
}

async fn read_bounded(mut response: reqwest::Response) -> Result<SecretString, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|_| "the answer was cut off".to_owned())?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            zeroize::Zeroize::zeroize(&mut body);
            return Err(format!("the answer exceeds {MAX_ANSWER_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body)
        .map(SecretString::from)
        .map_err(|_| "the answer is not UTF-8".to_owned())
}

async fn buildkite(agent: &str, audience: &str) -> Result<SecretString, String> {
    let mut command = tokio::process::Command::new(agent);
    command.args(["oidc", "request-token"]);
    if !audience.is_empty() {
        command.args(["--audience", audience]);
    }
    // The agent's own messages (stderr) reach the job log; the token (stdout) stays here.
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    let child = command.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "`{agent}` is not on PATH; run the step on a Buildkite agent, or set the variable"
            )
        } else {
            format!("cannot run `{agent}`: {e}")
        }
    })?;
    let output = tokio::time::timeout(REQUEST_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| {
            format!(
                "`{agent} oidc request-token` took longer than {}s",
                REQUEST_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("waiting for `{agent}`: {e}"))?;
    let stdout = SecretString::from(String::from_utf8(output.stdout).map_err(|_| {
        format!("`{agent} oidc request-token` printed something that is not UTF-8")
    })?);
    if !output.status.success() {
        return Err(format!(
            "`{agent} oidc request-token` failed ({}); its message is above",
            output.status
        ));
    }
    let token = stdout.expose_secret().trim();
    if token.is_empty() {
        return Err(format!("`{agent} oidc request-token` printed no token"));
    }
    Ok(SecretString::from(token.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> ProcessEnv {
        pairs.iter().copied().collect()
    }

    #[test]
    fn the_ci_is_detected_from_its_variables() {
        assert!(detect(&env(&[])).is_none());
        assert!(detect(&env(&[(GITHUB_URL_VAR, "https://x.invalid/t?a=1")])).is_none());
        assert!(matches!(
            detect(&env(&[
                (GITHUB_URL_VAR, "https://x.invalid/t?a=1"),
                (GITHUB_TOKEN_VAR, "r")
            ])),
            Some(Ci::Github { .. })
        ));
        assert!(matches!(
            detect(&env(&[("BUILDKITE", "true")])),
            Some(Ci::Buildkite {
                agent: "buildkite-agent"
            })
        ));
        assert!(detect(&env(&[("BUILDKITE", "false")])).is_none());
    }

    #[test]
    fn the_audience_is_appended_to_githubs_query() {
        let url = github_url(
            "https://pipelines.example.invalid/abc/idtoken?api-version=2.0",
            "https://vault.example.com",
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://pipelines.example.invalid/abc/idtoken?api-version=2.0&audience=https%3A%2F%2Fvault.example.com"
        );
        let url = github_url("http://127.0.0.1:1/token", "a b").unwrap();
        assert_eq!(url.query(), Some("audience=a+b"));
        assert_eq!(origin(&url), "http://127.0.0.1:1");
    }

    #[test]
    fn a_fetched_token_is_redacted_in_debug() {
        let token = FetchedToken {
            name: "VAULT_ID_TOKEN".to_owned(),
            audience: "aud".to_owned(),
            source: TokenSource::GithubActions,
            value: SecretString::from("canary-token-7731".to_owned()),
        };
        let shown = format!("{token:?}");
        assert!(!shown.contains("canary-token-7731"), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
