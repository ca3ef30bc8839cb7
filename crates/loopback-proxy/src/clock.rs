//! Sleeps with sub-millisecond precision for the delay line.
//!
//! tokio's timer rounds a deadline up to a whole millisecond and its driver wakes on
//! millisecond ticks: measured, each delayed hop arrived about 1.3 ms late, so a round trip
//! at d = 25 ms took 52.6 ms instead of 50 and every workload was charged ~5% more per round
//! trip than the delay it claims. One thread per process holds the pending deadlines in a
//! heap and waits for the nearest with the OS's precise timed wait (a futex on Linux), so a
//! hop is late by tens of microseconds.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, Once};
use std::time::Instant;
use tokio::sync::oneshot;

/// Completes at `at` (at once if it has passed).
pub(crate) async fn sleep_until(at: Instant) {
    if Instant::now() >= at {
        return;
    }
    let (tx, rx) = oneshot::channel();
    TIMER.schedule(at, tx);
    // The sender is dropped only after it fired (or never, if the process ends first).
    let _ = rx.await;
}

static TIMER: Timer = Timer {
    queue: Mutex::new(BinaryHeap::new()),
    changed: Condvar::new(),
    started: Once::new(),
};

struct Timer {
    queue: Mutex<BinaryHeap<Reverse<Wake>>>,
    changed: Condvar,
    /// The clock thread, started by the first sleep that has to wait.
    started: Once,
}

/// One pending deadline (ordered by its instant only).
struct Wake {
    at: Instant,
    tx: oneshot::Sender<()>,
}

impl PartialEq for Wake {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Wake {}

impl PartialOrd for Wake {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Wake {
    fn cmp(&self, other: &Self) -> Ordering {
        self.at.cmp(&other.at)
    }
}

impl Timer {
    fn schedule(&'static self, at: Instant, tx: oneshot::Sender<()>) {
        self.started.call_once(|| {
            std::thread::Builder::new()
                .name("loopback-proxy-clock".to_owned())
                .spawn(|| self.run())
                .expect("cannot start the proxy's clock thread");
        });
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let earliest = queue.peek().is_none_or(|Reverse(w)| at < w.at);
        queue.push(Reverse(Wake { at, tx }));
        drop(queue);
        if earliest {
            self.changed.notify_one();
        }
    }

    fn run(&self) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            while queue.peek().is_some_and(|Reverse(w)| w.at <= now) {
                if let Some(Reverse(wake)) = queue.pop() {
                    // The sleeper may be gone (its connection closed): nothing to wake.
                    let _ = wake.tx.send(());
                }
            }
            queue = match queue.peek() {
                Some(Reverse(next)) => {
                    let wait = next.at - now;
                    self.changed
                        .wait_timeout(queue, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self.changed.wait(queue).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn sleepers_wake_in_deadline_order_and_never_early() {
        let start = Instant::now();
        let deadlines: Vec<Instant> = [30u64, 10, 20, 0]
            .iter()
            .map(|ms| start + Duration::from_millis(*ms))
            .collect();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for (i, at) in deadlines.iter().copied().enumerate() {
            let tx = tx.clone();
            tokio::spawn(async move {
                sleep_until(at).await;
                let _ = tx.send((i, Instant::now() >= at));
            });
        }
        drop(tx);
        let mut order = Vec::new();
        while let Some((i, on_time)) = rx.recv().await {
            assert!(on_time, "sleeper {i} woke before its deadline");
            order.push(i);
        }
        assert_eq!(order, vec![3, 1, 2, 0]);
    }
}
