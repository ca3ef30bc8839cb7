//! Revoking the token of a resolution that was dropped before it ended (a cancelled job, a
//! caller's timeout, the caller's runtime shutting down).
//!
//! A task spawned on the caller's runtime would be dropped unrun if that runtime is shutting
//! down, which is often why the resolution was dropped in the first place. So the revoke runs
//! on a thread of its own with a small current-thread runtime, bounded by one request's
//! timeout; its outcome is logged, and [`wait_for_revocations`] lets an embedder that is about
//! to exit wait for those still in flight.

use crate::server::ServerClient;
use secrecy::SecretString;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Revocations started by [`revoke_detached`] and not yet finished.
static PENDING: Mutex<usize> = Mutex::new(0);
static FINISHED: Condvar = Condvar::new();

/// Counts a revocation as finished when dropped, however its thread ends.
struct Pending;

impl Pending {
    fn start() -> Self {
        *PENDING.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        Self
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut pending = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
        *pending = pending.saturating_sub(1);
        FINISHED.notify_all();
    }
}

/// Revokes `token` on a thread of its own, giving up after `bound`.
pub(crate) fn revoke_detached(
    client: Arc<ServerClient>,
    bound: Duration,
    namespace: Option<String>,
    token: SecretString,
) {
    let server = client.display().to_owned();
    let pending = Pending::start();
    let spawned = std::thread::Builder::new()
        .name("vault-revoke".to_owned())
        .spawn(move || {
            let _pending = pending;
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    tracing::warn!(server = %client.display(), "could not revoke the Vault token (it lives until its TTL ends): no runtime: {e}");
                    return;
                }
            };
            let revoke = async {
                tokio::time::timeout(bound, client.revoke(namespace.as_deref(), &token)).await
            };
            match runtime.block_on(revoke) {
                Ok(Ok(())) => {
                    tracing::info!(server = %client.display(), "revoked the Vault token of a dropped resolution");
                }
                Ok(Err(e)) => tracing::warn!(
                    server = %client.display(),
                    "could not revoke the Vault token (it lives until its TTL ends): {e}"
                ),
                Err(_) => tracing::warn!(
                    server = %client.display(),
                    "could not revoke the Vault token within {} ms (it lives until its TTL ends)",
                    bound.as_millis()
                ),
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(%server, "could not revoke the Vault token (it lives until its TTL ends): no thread: {e}");
    }
}

/// Waits up to `bound` for the revocations of dropped resolutions still in flight; returns
/// how many are still running (0 when all have finished). Call it before the process exits,
/// after dropping the resolutions: each revocation gives up after one request's timeout.
#[allow(
    clippy::disallowed_methods,
    reason = "a bounded wait on a condition variable, outside any resolution"
)]
pub fn wait_for_revocations(bound: Duration) -> usize {
    let until = Instant::now() + bound;
    let mut pending = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
    while *pending > 0 {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        pending = FINISHED
            .wait_timeout(pending, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    *pending
}
