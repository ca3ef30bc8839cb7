//! [`Failure`]: a classified provider failure, before it names a variable. A failure of one
//! login or one read is cloned to every variable it concerns, then becomes one core
//! [`Error`] per variable with [`Failure::to_core`].

use secrets_core::{Error, ErrorKind};
use std::fmt;
use std::time::Duration;

/// A classified failure of one request or one identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// Whether another attempt may help.
    pub retryable: bool,
    /// What failed, naming the operation and the server; never a value, token or body.
    pub message: String,
    /// What to do about it.
    pub fix: Option<String>,
    /// The wait the server asked for (`Retry-After`) before another attempt.
    pub retry_after: Option<Duration>,
    /// The service's error code (`ResourceNotFoundException`, `invalid_grant`, ...).
    pub code: Option<String>,
}

impl Failure {
    /// A failure, retryable when its kind is by default.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            retryable: kind.is_retryable_by_default(),
            message: message.into(),
            fix: None,
            retry_after: None,
            code: None,
        }
    }

    /// Says what to do.
    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// The server's `Retry-After`.
    pub fn with_retry_after(mut self, wait: Option<Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    /// Overrides whether a retry may help.
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// The service's error code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The core error for `variable`, naming `reference`.
    pub fn to_core(&self, variable: &str, reference: &str) -> Error {
        self.to_reference_error(reference).with_variable(variable)
    }

    /// The core error naming only `reference`, for callers without a variable.
    pub fn to_reference_error(&self, reference: &str) -> Error {
        let err = Error::new(self.kind, self.message.clone())
            .with_reference(reference)
            .with_retryable(self.retryable);
        match &self.fix {
            Some(fix) => err.with_fix(fix.clone()),
            None => err,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "; {fix}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn becomes_a_core_error_per_variable() {
        let failure = Failure::new(ErrorKind::Unavailable, "GET x at https://v failed")
            .with_fix("retry")
            .with_retryable(false);
        let err = failure.to_core("DB", "vault x");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(!err.is_retryable());
        assert_eq!(err.variable(), Some("DB"));
        assert_eq!(err.reference(), Some("vault x"));
        assert_eq!(err.fix(), Some("retry"));
        assert_eq!(failure.to_string(), "GET x at https://v failed; retry");
    }
}
