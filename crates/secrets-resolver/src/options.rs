//! Resolution options, with the runner's names and defaults.

use secrets_core::{JobVariable, RetryPolicy, Variables};
use std::time::Duration;

/// How a resolution behaves. [`Default`] matches GitLab Runner where the runner has a
/// setting, and adds timeouts and bounded concurrency where it has none.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ResolveOptions {
    /// `FF_SECRET_RESOLVING_FAILS_IF_MISSING` (default true): a missing secret fails the job.
    /// When false, a secret the provider reports as the runner's own "secret not found"
    /// ([`secrets_core::Error::is_secret_not_found`]: Vault's missing path or field) becomes an
    /// empty variable, as the runner does; any other failure, AWS's not-found included, still
    /// fails the job.
    pub fail_if_missing: bool,
    /// `SECRETS_RETRIEVAL_ATTEMPTS` (default 1, clamped to 1..=10): attempts of the whole
    /// stage. Later attempts re-resolve only the secrets that failed.
    pub attempts: u32,
    /// Backoff before the second attempt, doubling up to [`Self::attempt_backoff_max`]
    /// (the runner's exponential stage backoff runs from 5 s to 5 min; with
    /// `FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY=false`, its default retry backoff, 1 s to 5 s).
    pub attempt_backoff: Duration,
    /// The longest backoff between attempts.
    pub attempt_backoff_max: Duration,
    /// The longest a single HTTP request may take.
    pub request_timeout: Duration,
    /// The longest a connect (TCP and TLS) may take.
    pub connect_timeout: Duration,
    /// The longest a whole attempt may take. Providers stop reading then; cleanup (a Vault
    /// token's revocation) may take one more `request_timeout`.
    pub deadline: Duration,
    /// Requests in flight per server at most over HTTP/1.1; over HTTP/2, where they share a
    /// connection, up to `provider_http::MAX_STREAMS` (see `docs/architecture.md`).
    pub max_concurrency: usize,
    /// Retries of one request after a retryable failure (throttling, 5xx, network).
    pub retry: RetryPolicy,
    /// Problems found while reading the options from job variables (the runner logs them).
    pub warnings: Vec<String>,
}

impl Default for ResolveOptions {
    fn default() -> Self {
        Self {
            fail_if_missing: true,
            attempts: 1,
            attempt_backoff: Duration::from_secs(5),
            attempt_backoff_max: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(300),
            max_concurrency: 8,
            retry: RetryPolicy::default(),
            warnings: Vec::new(),
        }
    }
}

impl ResolveOptions {
    /// Defaults, with the runner's settings read from the job's variables as the runner reads
    /// them: from the variables expanded once (`FF_X: $MY_FLAG` works), feature flags with Go's
    /// `strconv.ParseBool` (an unparsable value keeps the default, with a warning), and
    /// `SECRETS_RETRIEVAL_ATTEMPTS` as an integer (anything else counts as 1) clamped to 1..=10.
    ///
    /// - `FF_SECRET_RESOLVING_FAILS_IF_MISSING` (default true): [`Self::fail_if_missing`].
    /// - `FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY` (default true): 5 s doubling up to 5 min
    ///   between attempts; false gives the runner's default retry backoff, 1 s doubling up to 5 s.
    pub fn from_job_variables(variables: &[JobVariable]) -> Self {
        let vars = Variables::new(variables.to_vec()).expanded();
        let mut options = Self::default();
        if let Some(on) = feature_flag(&vars, FF_FAILS_IF_MISSING, &mut options.warnings) {
            options.fail_if_missing = on;
        }
        if feature_flag(&vars, FF_EXPONENTIAL_BACKOFF, &mut options.warnings) == Some(false) {
            options.attempt_backoff = Duration::from_secs(1);
            options.attempt_backoff_max = Duration::from_secs(5);
        }
        // The runner reads the value (a file-type variable's contents), not the path.
        if let Some(attempts) = vars.find(ATTEMPTS) {
            let (n, warnings) = clamp_attempts(&attempts.value);
            options.attempts = n;
            options.warnings.extend(warnings);
        }
        options
    }

    /// Sets the attempts, clamped to 1..=10.
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.clamp(1, 10);
        self
    }

    /// The wait before attempt `attempt` (2-based).
    pub fn backoff_before(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(2));
        self.attempt_backoff
            .saturating_mul(factor)
            .min(self.attempt_backoff_max)
    }
}

/// `FF_SECRET_RESOLVING_FAILS_IF_MISSING`.
pub const FF_FAILS_IF_MISSING: &str = "FF_SECRET_RESOLVING_FAILS_IF_MISSING";
/// `FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY`.
pub const FF_EXPONENTIAL_BACKOFF: &str = "FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY";
/// `SECRETS_RETRIEVAL_ATTEMPTS`.
pub const ATTEMPTS: &str = "SECRETS_RETRIEVAL_ATTEMPTS";

/// A feature flag's value as the runner reads it (`Variables.Get`, so a file-type variable
/// reads as its path): `None` when unset, empty or unparsable (the default stays; unparsable
/// values are reported with the runner's settings error).
fn feature_flag(vars: &Variables, name: &str, warnings: &mut Vec<String>) -> Option<bool> {
    let raw = vars.get(name)?;
    if raw.is_empty() {
        return None;
    }
    let parsed = parse_go_bool(&raw);
    if parsed.is_none() {
        warnings.push(format!(
            "{name}: could not parse feature flag, expected bool, got {raw}; using its default"
        ));
    }
    parsed
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The runner's reading of `SECRETS_RETRIEVAL_ATTEMPTS`: empty → 1; not an integer (Go
/// `strconv.ParseInt`, no spaces) → 1 with a settings error; out of [1, 10] → clamped with a
/// settings error.
fn clamp_attempts(text: &str) -> (u32, Vec<String>) {
    if text.is_empty() {
        return (1, Vec::new());
    }
    let Ok(n) = text.parse::<i64>() else {
        return (
            1,
            vec![format!(
                "SECRETS_RETRIEVAL_ATTEMPTS: expected int got {text:?}, using default value: 1"
            )],
        );
    };
    let clamped = n.clamp(1, 10);
    let warning = (clamped != n).then(|| {
        format!(
            "SECRETS_RETRIEVAL_ATTEMPTS: number of attempts out of the range [1, 10], clamping to: {clamped}"
        )
    });
    (clamped as u32, warning.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_clamp_like_the_runner() {
        assert_eq!(clamp_attempts(""), (1, Vec::new()));
        assert_eq!(clamp_attempts("3"), (3, Vec::new()));
        let (n, w) = clamp_attempts("0");
        assert_eq!(n, 1);
        assert!(w[0].contains("clamping to: 1"));
        let (n, w) = clamp_attempts("11");
        assert_eq!(n, 10);
        assert!(w[0].contains("out of the range [1, 10], clamping to: 10"));
        let (n, w) = clamp_attempts(" 3");
        assert_eq!(n, 1, "Go's ParseInt takes no spaces");
        assert!(w[0].contains("expected int got \" 3\", using default value: 1"));
    }

    #[test]
    fn reads_the_feature_flag_and_attempts_from_job_variables() {
        let vars = vec![
            JobVariable::new("FF_SECRET_RESOLVING_FAILS_IF_MISSING", "false"),
            JobVariable::new("SECRETS_RETRIEVAL_ATTEMPTS", "4"),
        ];
        let options = ResolveOptions::from_job_variables(&vars);
        assert!(!options.fail_if_missing);
        assert_eq!(options.attempts, 4);
        assert!(options.warnings.is_empty());
        assert!(ResolveOptions::from_job_variables(&[]).fail_if_missing);
    }

    #[test]
    fn settings_are_read_from_the_expanded_variables() {
        let vars = vec![
            JobVariable::new("MY_FLAG", "false"),
            JobVariable::new("FF_SECRET_RESOLVING_FAILS_IF_MISSING", "$MY_FLAG"),
            JobVariable::new("N", "3"),
            JobVariable::new("SECRETS_RETRIEVAL_ATTEMPTS", "${N}"),
        ];
        let options = ResolveOptions::from_job_variables(&vars);
        assert!(!options.fail_if_missing);
        assert_eq!(options.attempts, 3);
        let raw = JobVariable {
            raw: true,
            ..JobVariable::new("FF_SECRET_RESOLVING_FAILS_IF_MISSING", "$MY_FLAG")
        };
        let options = ResolveOptions::from_job_variables(&[vars[0].clone(), raw]);
        assert!(options.fail_if_missing, "a raw value is not expanded");
        assert!(options.warnings[0].contains("could not parse feature flag"));
    }

    #[test]
    fn the_backoff_flag_picks_the_runner_backoff() {
        let off = ResolveOptions::from_job_variables(&[JobVariable::new(
            "FF_USE_EXPONENTIAL_BACKOFF_STAGE_RETRY",
            "false",
        )]);
        let waits: Vec<u64> = (2..=6).map(|n| off.backoff_before(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        let on = ResolveOptions::from_job_variables(&[]);
        let waits: Vec<u64> = (2..=4).map(|n| on.backoff_before(n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20]);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let options = ResolveOptions::default();
        assert_eq!(options.backoff_before(2), Duration::from_secs(5));
        assert_eq!(options.backoff_before(3), Duration::from_secs(10));
        assert_eq!(options.backoff_before(10), Duration::from_secs(300));
    }
}
