//! [`Cleanup`]: work a provider must finish before the resolution ends but that need not
//! delay its results, such as revoking the token it logged in with.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::task::JoinHandle;

/// Where a provider hands over the work that must finish before the resolution ends but need
/// not delay its results (revoking a login token).
///
/// - **Inline** (the default, [`Cleanup::inline`]): [`Cleanup::run`] runs the work before it
///   returns, so a provider's results come after its cleanup.
/// - **Deferred** ([`Cleanup::deferred`], what `secrets-resolver` uses): [`Cleanup::run`]
///   spawns the work on the current runtime and returns at once; the owner of the resolution
///   waits for it with [`Cleanup::finish`].
///
/// Deferred work runs on the caller's runtime: if that runtime shuts down first, the work is
/// dropped unfinished. Work that must survive that (a revocation) does its part in `Drop`, as
/// a provider's token guard does for a cancelled resolution.
#[derive(Clone, Default)]
pub struct Cleanup {
    deferred: Option<Arc<Mutex<Vec<JoinHandle<()>>>>>,
}

impl fmt::Debug for Cleanup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cleanup")
            .field("deferred", &self.is_deferred())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Cleanup {
    /// Work runs where it is handed over.
    pub fn inline() -> Self {
        Self::default()
    }

    /// Work runs on the current runtime while the caller carries on; [`Self::finish`] waits
    /// for it.
    pub fn deferred() -> Self {
        Self {
            deferred: Some(Arc::default()),
        }
    }

    /// Whether work is deferred.
    pub fn is_deferred(&self) -> bool {
        self.deferred.is_some()
    }

    /// Runs `work`: now when inline (or outside a runtime), else spawned on the current
    /// runtime. `work` must bound itself (a request timeout) and report its own outcome.
    pub async fn run<F>(&self, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match (&self.deferred, tokio::runtime::Handle::try_current()) {
            (Some(tasks), Ok(runtime)) => {
                let task = runtime.spawn(work);
                let mut tasks = tasks.lock().unwrap_or_else(PoisonError::into_inner);
                tasks.retain(|t| !t.is_finished());
                tasks.push(task);
            }
            _ => work.await,
        }
    }

    /// Deferred work handed over and not finished yet.
    pub fn in_flight(&self) -> usize {
        self.deferred.as_ref().map_or(0, |tasks| {
            tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .filter(|t| !t.is_finished())
                .count()
        })
    }

    /// Waits for all deferred work, including work handed over while waiting. Work that
    /// panicked is logged, never re-raised.
    pub async fn finish(&self) {
        let Some(tasks) = &self.deferred else {
            return;
        };
        loop {
            let batch = std::mem::take(&mut *tasks.lock().unwrap_or_else(PoisonError::into_inner));
            if batch.is_empty() {
                return;
            }
            for task in batch {
                if let Err(e) = task.await
                    && e.is_panic()
                {
                    tracing::warn!("a provider's cleanup after the resolution panicked");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn inline_runs_before_returning_and_deferred_when_finished() {
        let done = Arc::new(AtomicUsize::new(0));
        let inline = Cleanup::inline();
        let d = Arc::clone(&done);
        inline
            .run(async move {
                d.fetch_add(1, Ordering::SeqCst);
            })
            .await;
        assert_eq!(done.load(Ordering::SeqCst), 1);
        assert_eq!(inline.in_flight(), 0);

        let deferred = Cleanup::deferred();
        let (release, released) = oneshot::channel::<()>();
        let d = Arc::clone(&done);
        deferred
            .run(async move {
                let _ = released.await;
                d.fetch_add(1, Ordering::SeqCst);
            })
            .await;
        assert_eq!(done.load(Ordering::SeqCst), 1, "not run before returning");
        assert_eq!(deferred.in_flight(), 1);
        release.send(()).unwrap();
        deferred.finish().await;
        assert_eq!(done.load(Ordering::SeqCst), 2);
        assert_eq!(deferred.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_panicking_cleanup_does_not_stop_the_others() {
        let done = Arc::new(AtomicUsize::new(0));
        let deferred = Cleanup::deferred();
        deferred.run(async { panic!("cleanup bug") }).await;
        let d = Arc::clone(&done);
        deferred
            .run(async move {
                d.fetch_add(1, Ordering::SeqCst);
            })
            .await;
        deferred.finish().await;
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }
}
