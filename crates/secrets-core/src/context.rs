//! What one resolution shares with its providers: timeouts, retries, the deadline, the
//! request counter, the clock, the environment and where cleanup goes.

use crate::cleanup::Cleanup;
use crate::environment::Environment;
use crate::requests::RequestCounter;
use crate::{Error, ErrorKind};
use auth_oidc::{Clock, SystemClock};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// The clock every expiry check reads.
    pub clock: Arc<dyn Clock>,
    /// The environment of the process that resolves, read once: providers take host
    /// settings (TLS files, endpoint overrides) from it, never from the process itself.
    pub env: Environment,
    /// Where a provider hands over work that must finish before the resolution ends but
    /// need not delay its results (revoking a login token); inline by default, deferred
    /// when the resolver runs the resolution.
    pub cleanup: Cleanup,
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
            clock: Arc::new(SystemClock),
            env: Environment::default(),
            cleanup: Cleanup::inline(),
        }
    }
}
