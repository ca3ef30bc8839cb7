//! Retries of retryable failures, through `backon`, with the resolution's policy.

use crate::Failure;
use backon::{ExponentialBuilder, Retryable as _};
use secrets_core::RetryPolicy;
use std::future::Future;
use std::time::Duration;

/// The longest `Retry-After` honoured; a longer wait is cut to this (the deadline still
/// bounds the whole resolution).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Runs `attempt` again while it fails with a retryable [`Failure`], with jittered
/// exponential backoff from `policy`; a server's `Retry-After` lengthens the wait, never
/// shortens it. `notify` hears each failure that will be retried, and the wait.
pub async fn with_retry<T, F, Fut>(
    policy: &RetryPolicy,
    notify: impl Fn(&Failure, Duration),
    attempt: F,
) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.max_attempts.saturating_sub(1) as usize)
        .with_jitter();
    attempt
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|e: &Failure| e.retryable)
        .adjust(|e: &Failure, next: Option<Duration>| {
            next.map(|wait| match e.retry_after {
                Some(asked) => wait.max(asked.min(MAX_RETRY_AFTER)),
                None => wait,
            })
        })
        .notify(|e: &Failure, after: Duration| notify(e, after))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrets_core::ErrorKind;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn retries_only_retryable_failures_within_the_policy() {
        let policy = RetryPolicy {
            max_attempts: 3,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let calls = AtomicU32::new(0);
        let result: Result<(), Failure> = with_retry(
            &policy,
            |_, _| {},
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Failure::new(ErrorKind::Unavailable, "down"))
            },
        )
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        calls.store(0, Ordering::SeqCst);
        let _ = with_retry(
            &policy,
            |_, _| {},
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(Failure::new(ErrorKind::PermissionDenied, "no"))
            },
        )
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_lengthens_the_wait() {
        let policy = RetryPolicy {
            max_attempts: 2,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let waits = std::sync::Mutex::new(Vec::new());
        let _ = with_retry(
            &policy,
            |_, wait| waits.lock().unwrap().push(wait),
            || async {
                Err::<(), _>(
                    Failure::new(ErrorKind::RateLimited, "slow down")
                        .with_retry_after(Some(Duration::from_secs(120))),
                )
            },
        )
        .await;
        assert_eq!(*waits.lock().unwrap(), [MAX_RETRY_AFTER]);
    }
}
