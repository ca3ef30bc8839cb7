//! What a resolution did: per secret its outcome, per run the requests made. Never a value.

use secrets_core::{Error, ErrorKind, FailureReason};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// The outcome of one secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// Resolved.
    Resolved,
    /// Not found, and fail-if-missing is off: the variable was created empty.
    MissingAllowed,
    /// No resolver handles the secret (an unknown provider): skipped with a warning, as the
    /// runner does.
    Skipped {
        /// Why.
        reason: String,
    },
    /// Failed.
    Failed {
        /// The error kind.
        kind: ErrorKind,
        /// The runner failure reason this maps to.
        failure_reason: FailureReason,
        /// The full message: variable, reference, problem and fix.
        message: String,
        /// Whether a retry may help.
        retryable: bool,
    },
}

impl Outcome {
    pub(crate) fn failed(err: &Error) -> Self {
        Self::Failed {
            kind: err.kind(),
            failure_reason: err.failure_reason(),
            message: err.to_string(),
            retryable: err.is_retryable(),
        }
    }

    /// Whether this outcome fails the job.
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Failed { .. })
    }
}

/// One secret in the report.
#[derive(Debug, Clone, Serialize)]
pub struct SecretReport {
    /// The variable.
    pub variable: String,
    /// The provider keyword, when the secret names exactly one.
    pub provider: Option<String>,
    /// The secret reference (no token, no value).
    pub reference: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Milliseconds spent in the provider call that resolved it.
    pub duration_ms: u64,
    /// Which attempt produced this outcome (1-based).
    pub attempt: u32,
    /// Remarks, e.g. a region taken from an ARN.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The report of a resolution.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Per secret, in payload order.
    pub secrets: Vec<SecretReport>,
    /// Requests made, by report key (each provider names its own kinds, e.g. `vault_login`;
    /// see its `requests` module), every attempt included. In a `Resolution` not closed yet,
    /// requests that end a session (`vault_revoke`, still in flight) are left out until
    /// `Resolution::close` counts them.
    pub requests: BTreeMap<String, u64>,
    /// Attempts of the whole stage.
    pub attempts: u32,
    /// Wall time of the resolution in milliseconds.
    pub duration_ms: u64,
    /// Warnings: skipped secrets, clamped settings, values GitLab could not mask.
    pub warnings: Vec<String>,
}

impl Report {
    /// The secrets that failed.
    pub fn failures(&self) -> impl Iterator<Item = &SecretReport> {
        self.secrets.iter().filter(|s| s.outcome.is_failure())
    }

    /// Requests of one kind.
    pub fn requests_of(&self, kind: &str) -> u64 {
        self.requests.get(kind).copied().unwrap_or(0)
    }

    /// The most severe error kind among the failures: configuration problems before
    /// dependency problems before the rest.
    pub fn worst_kind(&self) -> Option<ErrorKind> {
        self.failures()
            .filter_map(|s| match &s.outcome {
                Outcome::Failed { kind, .. } => Some(*kind),
                _ => None,
            })
            .min()
    }
}

/// A failed resolution: every secret's outcome, nothing materialised.
#[derive(Debug)]
#[non_exhaustive]
pub struct ResolveFailure {
    /// The report, listing every failed secret and its reason.
    pub report: Report,
    /// The errors of the failed secrets, in payload order, for a runner that acts on their
    /// kind, failure reason, variable and reference.
    pub errors: Vec<Error>,
}

impl ResolveFailure {
    /// The runner failure reason of the job: that of the most severe failure.
    pub fn failure_reason(&self) -> Option<FailureReason> {
        self.report.worst_kind().map(ErrorKind::failure_reason)
    }

    /// Whether every failure is a bad spec or configuration, found before any request
    /// (exit code 2 in the CLI), as opposed to a provider that refused or did not answer
    /// (exit code 3).
    pub fn is_configuration_problem(&self) -> bool {
        self.report.failures().all(|s| {
            matches!(
                &s.outcome,
                Outcome::Failed {
                    kind: ErrorKind::InvalidSpec | ErrorKind::InvalidConfig,
                    ..
                }
            )
        })
    }
}

impl fmt::Display for ResolveFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failures: Vec<_> = self.report.failures().collect();
        write!(
            f,
            "resolving secrets: {} of {} secrets failed",
            failures.len(),
            self.report.secrets.len()
        )?;
        for secret in failures {
            if let Outcome::Failed {
                message,
                failure_reason,
                ..
            } = &secret.outcome
            {
                write!(f, "\n  - {message} [{failure_reason}]")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ResolveFailure {}
