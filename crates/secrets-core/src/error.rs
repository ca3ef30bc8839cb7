//! The core error: a kind, a retryable flag, the variable and the secret reference.

use std::fmt;

/// A `Result` with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, independent of the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The secret, its version or its field does not exist.
    NotFound,
    /// The identity was authenticated but may not read the secret.
    PermissionDenied,
    /// Login failed: the ID token was refused, empty, malformed or expired.
    Unauthenticated,
    /// The `secrets:` entry is malformed.
    InvalidSpec,
    /// A setting is missing or wrong (server URL, region, role, TLS files).
    InvalidConfig,
    /// The server throttled the request.
    RateLimited,
    /// The server did not answer, answered 5xx, or is sealed.
    Unavailable,
    /// Anything else: an answer we could not understand.
    Unexpected,
}

impl ErrorKind {
    /// Whether retrying the same request may succeed.
    pub fn is_retryable_by_default(self) -> bool {
        matches!(self, Self::RateLimited | Self::Unavailable)
    }

    /// The failure reason GitLab Runner would give the job (runner-semantics §2.5), with the
    /// classification extended to every provider.
    pub fn failure_reason(self) -> FailureReason {
        match self {
            Self::NotFound
            | Self::PermissionDenied
            | Self::Unauthenticated
            | Self::InvalidSpec
            | Self::InvalidConfig => FailureReason::RunnerConfigurationError,
            Self::RateLimited | Self::Unavailable => FailureReason::RunnerExternalDependencyFailure,
            Self::Unexpected => FailureReason::RunnerSystemFailure,
        }
    }

    /// A short lowercase label, stable for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::PermissionDenied => "permission_denied",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidSpec => "invalid_spec",
            Self::InvalidConfig => "invalid_config",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Unexpected => "unexpected",
        }
    }
}

impl serde::Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The job failure reason GitLab Runner reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FailureReason {
    /// `runner_configuration_error`
    RunnerConfigurationError,
    /// `runner_external_dependency_failure`
    RunnerExternalDependencyFailure,
    /// `runner_system_failure`
    RunnerSystemFailure,
}

impl FailureReason {
    /// The runner's identifier for this reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunnerConfigurationError => "runner_configuration_error",
            Self::RunnerExternalDependencyFailure => "runner_external_dependency_failure",
            Self::RunnerSystemFailure => "runner_system_failure",
        }
    }
}

impl serde::Serialize for FailureReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error that names the variable and the secret reference, never a value or a token.
///
/// Displayed as `<VARIABLE> (<reference>): <message>; <fix>`, each part present when known.
pub struct Error {
    kind: ErrorKind,
    retryable: bool,
    secret_not_found: bool,
    variable: Option<String>,
    reference: Option<String>,
    message: String,
    fix: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error of `kind`; retryable as [`ErrorKind::is_retryable_by_default`] says.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            retryable: kind.is_retryable_by_default(),
            secret_not_found: false,
            variable: None,
            reference: None,
            message: message.into(),
            fix: None,
            source: None,
        }
    }

    /// Names the job variable the secret was meant for.
    pub fn with_variable(mut self, variable: impl Into<String>) -> Self {
        self.variable = Some(variable.into());
        self
    }

    /// Names the secret: engine, mount, path and field, or secret id and region.
    pub fn with_reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }

    /// Says what to do about it.
    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// Overrides whether a retry may help.
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Marks this as the runner's own "secret not found" (`ErrSecretNotFound`), the only error
    /// `FF_SECRET_RESOLVING_FAILS_IF_MISSING=false` turns into an empty variable. A provider
    /// sets it exactly where GitLab Runner's resolver for it returns that sentinel (Vault: no
    /// data, a deleted version, a missing or null field); other not-found errors, such as AWS's
    /// `ResourceNotFoundException` or a missing JSON key, fail the job whatever the flag says.
    pub fn with_secret_not_found(mut self) -> Self {
        self.secret_not_found = true;
        self
    }

    /// Keeps the underlying error. Its text must not carry values or tokens.
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Sets the variable only when none is set yet.
    pub fn or_variable(mut self, variable: &str) -> Self {
        if self.variable.is_none() {
            self.variable = Some(variable.to_owned());
        }
        self
    }

    /// Sets the reference only when none is set yet.
    pub fn or_reference(mut self, reference: &str) -> Self {
        if self.reference.is_none() {
            self.reference = Some(reference.to_owned());
        }
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether retrying may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// Whether this is the runner's own "secret not found" (see [`Self::with_secret_not_found`]).
    pub fn is_secret_not_found(&self) -> bool {
        self.secret_not_found
    }

    /// The job variable, when known.
    pub fn variable(&self) -> Option<&str> {
        self.variable.as_deref()
    }

    /// The secret reference, when known.
    pub fn reference(&self) -> Option<&str> {
        self.reference.as_deref()
    }

    /// The message without variable, reference or fix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The suggested fix, when there is one.
    pub fn fix(&self) -> Option<&str> {
        self.fix.as_deref()
    }

    /// The runner failure reason for this error.
    pub fn failure_reason(&self) -> FailureReason {
        self.kind.failure_reason()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.variable, &self.reference) {
            (Some(v), Some(r)) => write!(f, "{v} ({r}): ")?,
            (Some(v), None) => write!(f, "{v}: ")?,
            (None, Some(r)) => write!(f, "{r}: ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "; {fix}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("retryable", &self.retryable)
            .field("secret_not_found", &self.secret_not_found)
            .field("variable", &self.variable)
            .field("reference", &self.reference)
            .field("message", &self.message)
            .field("fix", &self.fix)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_variable_reference_and_fix() {
        let err = Error::new(ErrorKind::PermissionDenied, "permission denied (403)")
            .with_variable("DB_PASSWORD")
            .with_reference("vault kv-v2 ops/production/db field password")
            .with_fix("grant read on ops/data/production/db to the role's policies");
        assert_eq!(
            err.to_string(),
            "DB_PASSWORD (vault kv-v2 ops/production/db field password): permission denied (403); \
             grant read on ops/data/production/db to the role's policies"
        );
        assert!(!err.is_retryable());
        assert_eq!(err.failure_reason().as_str(), "runner_configuration_error");
    }

    #[test]
    fn retryable_follows_kind_unless_overridden() {
        assert!(Error::new(ErrorKind::Unavailable, "503").is_retryable());
        assert!(Error::new(ErrorKind::RateLimited, "429").is_retryable());
        assert!(
            !Error::new(ErrorKind::Unavailable, "sealed")
                .with_retryable(false)
                .is_retryable()
        );
        assert_eq!(
            ErrorKind::Unexpected.failure_reason(),
            FailureReason::RunnerSystemFailure
        );
    }
}
