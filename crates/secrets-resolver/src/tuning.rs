//! Setters of [`ResolveOptions`] that keep every setting in its range, so a caller cannot
//! skip the clamping that reading the options from job variables applies.

use crate::ResolveOptions;
use secrets_core::RetryPolicy;
use std::time::Duration;

impl ResolveOptions {
    /// Whether a missing secret fails the job (`FF_SECRET_RESOLVING_FAILS_IF_MISSING`).
    pub fn with_fail_if_missing(mut self, fail: bool) -> Self {
        self.fail_if_missing = fail;
        self
    }

    /// The backoff before the second attempt and the longest backoff (at least the first).
    pub fn with_attempt_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.attempt_backoff = first;
        self.attempt_backoff_max = max.max(first);
        self
    }

    /// The longest a single request may take (at least 1 ms).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The longest a connect may take (at least 1 ms).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The longest a whole attempt may take (at least 1 ms).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline.max(Duration::from_millis(1));
        self
    }

    /// Requests in flight per server at most over HTTP/1.1 (at least 1); over HTTP/2 up to
    /// `provider_http::MAX_STREAMS`.
    pub fn with_max_concurrency(mut self, max: usize) -> Self {
        self.max_concurrency = max.max(1);
        self
    }

    /// Retries of one request (at least one attempt; the longest backoff at least the first).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = RetryPolicy {
            max_attempts: retry.max_attempts.max(1),
            min_delay: retry.min_delay,
            max_delay: retry.max_delay.max(retry.min_delay),
        };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_clamp() {
        let options = ResolveOptions::default()
            .with_max_concurrency(0)
            .with_attempts(99)
            .with_deadline(Duration::ZERO)
            .with_attempt_backoff(Duration::from_secs(5), Duration::from_secs(1))
            .with_retry(RetryPolicy {
                max_attempts: 0,
                min_delay: Duration::from_secs(2),
                max_delay: Duration::from_secs(1),
            });
        assert_eq!(options.max_concurrency, 1);
        assert_eq!(options.attempts, 10);
        assert_eq!(options.deadline, Duration::from_millis(1));
        assert_eq!(options.attempt_backoff_max, Duration::from_secs(5));
        assert_eq!(options.retry.max_attempts, 1);
        assert_eq!(options.retry.max_delay, Duration::from_secs(2));
    }
}
