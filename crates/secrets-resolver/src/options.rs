//! Resolution options, with the runner's names and defaults.

use secrets_core::{JobVariable, RetryPolicy, Variables};
use std::time::Duration;

/// How a resolution behaves. [`Default`] matches GitLab Runner where the runner has a
/// setting, and adds timeouts and bounded concurrency where it has none.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ResolveOptions {
    /// `FF_SECRET_RESOLVING_FAILS_IF_MISSING` (default true): a missing secret fails the job.
    /// When false, the variable is created empty, as the runner does.
    pub fail_if_missing: bool,
    /// `SECRETS_RETRIEVAL_ATTEMPTS` (default 1, clamped to 1..=10): attempts of the whole
    /// stage. Later attempts re-resolve only the secrets that failed.
    pub attempts: u32,
    /// Backoff before the second attempt, doubling up to [`Self::attempt_backoff_max`]
    /// (the runner's exponential stage backoff runs from 5 s to 5 min).
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
    /// Requests in flight per server at most.
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
    /// Defaults, with `FF_SECRET_RESOLVING_FAILS_IF_MISSING` and `SECRETS_RETRIEVAL_ATTEMPTS`
    /// read from the job's variables as the runner reads them.
    pub fn from_job_variables(variables: &[JobVariable]) -> Self {
        let vars = Variables::new(variables.to_vec());
        let mut options = Self::default();
        if let Some(flag) = vars.get("FF_SECRET_RESOLVING_FAILS_IF_MISSING") {
            match parse_go_bool(&flag) {
                Some(b) => options.fail_if_missing = b,
                None => options.warnings.push(format!(
                    "FF_SECRET_RESOLVING_FAILS_IF_MISSING: {flag:?} is not a boolean, using true"
                )),
            }
        }
        if let Some(attempts) = vars.get("SECRETS_RETRIEVAL_ATTEMPTS") {
            let (n, warning) = clamp_attempts(&attempts);
            options.attempts = n;
            options.warnings.extend(warning);
        }
        options
    }

    /// Sets the attempts, clamped to 1..=10.
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.clamp(1, 10);
        self
    }

    /// The backoff before attempt `n` (2-based).
    pub(crate) fn backoff_before(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(2));
        self.attempt_backoff
            .saturating_mul(factor)
            .min(self.attempt_backoff_max)
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The runner's clamping of `SECRETS_RETRIEVAL_ATTEMPTS`: empty → 1; out of [1, 10] →
/// clamped with a settings error.
fn clamp_attempts(text: &str) -> (u32, Option<String>) {
    if text.trim().is_empty() {
        return (1, None);
    }
    let Ok(n) = text.trim().parse::<i64>() else {
        return (
            1,
            Some(format!(
                "SECRETS_RETRIEVAL_ATTEMPTS: {text:?} is not a number, using 1"
            )),
        );
    };
    let clamped = n.clamp(1, 10);
    let warning = (clamped != n).then(|| {
        format!(
            "SECRETS_RETRIEVAL_ATTEMPTS: number of attempts out of the range [1, 10], clamping to: {clamped}"
        )
    });
    (clamped as u32, warning)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_clamp_like_the_runner() {
        assert_eq!(clamp_attempts(""), (1, None));
        assert_eq!(clamp_attempts("3"), (3, None));
        let (n, w) = clamp_attempts("0");
        assert_eq!(n, 1);
        assert!(w.unwrap().contains("clamping to: 1"));
        let (n, w) = clamp_attempts("11");
        assert_eq!(n, 10);
        assert!(
            w.unwrap()
                .contains("out of the range [1, 10], clamping to: 10")
        );
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
    fn backoff_doubles_up_to_the_cap() {
        let options = ResolveOptions::default();
        assert_eq!(options.backoff_before(2), Duration::from_secs(5));
        assert_eq!(options.backoff_before(3), Duration::from_secs(10));
        assert_eq!(options.backoff_before(10), Duration::from_secs(300));
    }
}
