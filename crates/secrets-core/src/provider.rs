//! The provider trait and what a resolution shares with its providers.

use crate::payload::{ProviderKind, Secret};
use crate::{Error, ErrorKind, SecretValue};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One secret to resolve: the variable it creates and its entry, already expanded.
#[derive(Debug, Clone)]
pub struct SecretRequest {
    /// The job variable the secret becomes.
    pub variable: String,
    /// The secret's entry after variable expansion. It may hold tokens; its `Debug` hides them.
    pub secret: Secret,
}

/// A resolved secret.
#[derive(Debug)]
pub struct Resolved {
    /// The value.
    pub value: SecretValue,
    /// Remarks for the report (never a value), e.g. "called eu-west-1, the ARN's region".
    pub notes: Vec<String>,
}

impl Resolved {
    /// A value without remarks.
    pub fn new(value: SecretValue) -> Self {
        Self {
            value,
            notes: Vec::new(),
        }
    }
}

/// A secret manager behind one provider keyword.
///
/// A provider gets every secret of its keyword in one call, so it can log in once per
/// identity, read each distinct object once and batch reads; it ends its sessions (e.g.
/// revokes Vault tokens) before it returns. It answers one result per request, in order.
/// A secret that does not exist is an [`Error`] of kind
/// [`ErrorKind::NotFound`]; the caller decides whether that fails
/// the job.
#[async_trait]
pub trait SecretProvider: Send + Sync + fmt::Debug {
    /// The provider keyword this implementation serves.
    fn kind(&self) -> ProviderKind;

    /// Resolves `requests`, all of which name [`Self::kind`]. Returns one result per request,
    /// in the same order.
    async fn resolve(
        &self,
        requests: &[SecretRequest],
        ctx: &ResolveContext,
    ) -> Vec<Result<Resolved, Error>>;
}

/// The kinds of remote request a resolution counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum RequestKind {
    /// Vault `PUT auth/<path>/login`.
    VaultLogin,
    /// Vault `GET` of a secret.
    VaultRead,
    /// Vault `auth/token/revoke-self`.
    VaultRevoke,
    /// STS `AssumeRoleWithWebIdentity`.
    StsAssumeRole,
    /// Secrets Manager `GetSecretValue`.
    SmGet,
    /// Secrets Manager `BatchGetSecretValue`.
    SmBatchGet,
}

impl RequestKind {
    /// The report key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VaultLogin => "vault_login",
            Self::VaultRead => "vault_read",
            Self::VaultRevoke => "vault_revoke",
            Self::StsAssumeRole => "sts_assume_role",
            Self::SmGet => "sm_get",
            Self::SmBatchGet => "sm_batch_get",
        }
    }
}

/// Counts requests by kind; shared by every provider of one resolution.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Mutex<BTreeMap<RequestKind, u64>>>);

impl RequestCounter {
    /// Counts one request of `kind` (each attempt, retries included).
    pub fn record(&self, kind: RequestKind) {
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_default() += 1;
    }

    /// How many requests of `kind` were made.
    pub fn get(&self, kind: RequestKind) -> u64 {
        self.snapshot().get(kind.as_str()).copied().unwrap_or(0)
    }

    /// The counts by report key.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect()
    }

    /// Total requests of every kind.
    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }
}

/// Retries of one request that failed with a retryable error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// The first backoff.
    pub min_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }
}

/// What one resolution shares with its providers.
#[derive(Debug, Clone)]
pub struct ResolveContext {
    /// Counts every request made.
    pub requests: RequestCounter,
    /// The longest a single HTTP request may take.
    pub request_timeout: Duration,
    /// The longest a TCP and TLS connect may take.
    pub connect_timeout: Duration,
    /// Requests in flight per server at most.
    pub max_concurrency: usize,
    /// Retries of retryable failures.
    pub retry: RetryPolicy,
    /// When the resolution must end. A provider stops waiting for answers then, fails what
    /// is left, and still cleans up (a Vault token is revoked); `None`: no deadline.
    pub deadline: Option<Instant>,
}

impl ResolveContext {
    /// Runs `work` until [`Self::deadline`].
    pub async fn before_deadline<T>(
        &self,
        work: impl Future<Output = T>,
    ) -> Result<T, DeadlinePassed> {
        match self.deadline {
            None => Ok(work.await),
            Some(deadline) => tokio::time::timeout_at(deadline.into(), work)
                .await
                .map_err(|_| DeadlinePassed),
        }
    }
}

/// The resolution's deadline passed before the work finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlinePassed;

impl DeadlinePassed {
    /// The error of one secret the deadline stopped.
    pub fn error(self, variable: &str, reference: &str) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            "not resolved within the resolution's deadline",
        )
        .with_variable(variable)
        .with_reference(reference)
        .with_fix("check that the server is reachable and answers in time, or raise the deadline")
    }
}

impl Default for ResolveContext {
    fn default() -> Self {
        Self {
            requests: RequestCounter::default(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_concurrency: 8,
            retry: RetryPolicy::default(),
            deadline: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_report_key() {
        let counter = RequestCounter::default();
        let shared = counter.clone();
        counter.record(RequestKind::VaultLogin);
        shared.record(RequestKind::VaultRead);
        shared.record(RequestKind::VaultRead);
        assert_eq!(counter.get(RequestKind::VaultRead), 2);
        assert_eq!(counter.get(RequestKind::SmGet), 0);
        assert_eq!(counter.total(), 3);
        assert_eq!(
            counter.snapshot().into_iter().collect::<Vec<_>>(),
            [("vault_login", 1), ("vault_read", 2)]
        );
    }

    #[test]
    fn trait_is_object_safe() {
        fn takes(_: Option<Arc<dyn SecretProvider>>) {}
        takes(None);
    }
}
