//! `exec`'s output filter: the child's stdout and stderr through the secret masker.
//!
//! Each stream is a pipe read by its own thread, which masks what it reads and writes it to
//! the matching stream of this process at once (no line buffering), so the two stay separate
//! and keep their own order, a slow reader of one never stalls the other, and a partial line
//! (a prompt, a `\r` progress bar) appears as soon as it is read. Only bytes that could still
//! begin a secret are held back, until the next byte decides. stdin is not touched.
//!
//! When this process's stdout or stderr is closed (`exec ... | head`), the thread stops
//! reading, so the child gets `EPIPE`/`SIGPIPE` on its next write, as it would have without
//! the filter. After the child exits, the threads drain what is left; a background process
//! that keeps a pipe open without writing is not waited for longer than [`IDLE_GRACE`].

use crate::input::CliError;
use secrets_core::masker::Masker;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use zeroize::Zeroizing;

/// How long a stream may stay silent after the child exited before `exec` stops waiting for
/// its end (a background process holding the pipe open).
pub(crate) const IDLE_GRACE: Duration = Duration::from_secs(2);

/// Bytes read from the child at a time.
const CHUNK: usize = 64 * 1024;

/// Makes the child's stdout and stderr pipes, when there is something to mask.
pub(crate) fn pipe_output(command: &mut tokio::process::Command, masker: Option<&Masker>) {
    if masker.is_some_and(|m| !m.is_empty()) {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
}

/// The threads copying the child's output.
#[derive(Debug)]
pub(crate) struct OutputPumps {
    pumps: Vec<Arc<PumpState>>,
    wake: Arc<Notify>,
}

#[derive(Debug)]
struct PumpState {
    started: Instant,
    /// Milliseconds after `started` of the last read.
    last_read_ms: AtomicU64,
    writing: AtomicBool,
    done: AtomicBool,
}

impl PumpState {
    fn touch(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_read_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.started.elapsed();
        now.saturating_sub(Duration::from_millis(
            self.last_read_ms.load(Ordering::Relaxed),
        ))
    }
}

/// Starts masking the child's piped stdout and stderr (none when they are not piped).
pub(crate) fn start(
    child: &mut tokio::process::Child,
    masker: Option<Masker>,
) -> Result<OutputPumps, CliError> {
    let wake = Arc::new(Notify::new());
    let mut pumps = Vec::new();
    let Some(masker) = masker else {
        return Ok(OutputPumps { pumps, wake });
    };
    let ours = |fd: std::os::fd::BorrowedFd<'_>| {
        fd.try_clone_to_owned()
            .map(File::from)
            .map_err(|e| CliError::internal(format!("duplicating an output stream: {e}")))
    };
    let taken: [(Option<OwnedFd>, File, &str); 2] = [
        (
            child
                .stdout
                .take()
                .map(|s| s.into_owned_fd())
                .transpose()
                .map_err(io_error)?,
            ours(std::io::stdout().as_fd())?,
            "stdout",
        ),
        (
            child
                .stderr
                .take()
                .map(|s| s.into_owned_fd())
                .transpose()
                .map_err(io_error)?,
            ours(std::io::stderr().as_fd())?,
            "stderr",
        ),
    ];
    for (from, to, name) in taken {
        let Some(from) = from else { continue };
        let state = Arc::new(PumpState {
            started: monotonic_now(),
            last_read_ms: AtomicU64::new(0),
            writing: AtomicBool::new(false),
            done: AtomicBool::new(false),
        });
        let (thread_state, thread_wake, thread_masker) =
            (Arc::clone(&state), Arc::clone(&wake), masker.clone());
        std::thread::Builder::new()
            .name(format!("mask-{name}"))
            .spawn(move || {
                pump(File::from(from), to, &thread_masker, &thread_state);
                thread_state.done.store(true, Ordering::Release);
                thread_wake.notify_one();
            })
            .map_err(|e| CliError::internal(format!("starting the {name} filter: {e}")))?;
        pumps.push(state);
    }
    Ok(OutputPumps { pumps, wake })
}

fn io_error(e: std::io::Error) -> CliError {
    CliError::internal(format!("taking the child's output: {e}"))
}

impl OutputPumps {
    /// Waits, once the child has exited, until every stream has reached its end, or has been
    /// silent (and not blocked writing) for [`IDLE_GRACE`].
    pub(crate) async fn finish(self) {
        let exited = monotonic_now();
        loop {
            if self.pumps.iter().all(|p| p.done.load(Ordering::Acquire)) {
                return;
            }
            let abandoned = self.pumps.iter().all(|p| {
                p.done.load(Ordering::Acquire)
                    || (!p.writing.load(Ordering::Acquire)
                        && p.idle_for().min(exited.elapsed()) >= IDLE_GRACE)
            });
            if abandoned {
                // Whatever is held back could begin a secret: it is dropped, never written.
                tracing::warn!(
                    "the command exited but its output stayed open for {} s (a background process?); not waiting for it",
                    IDLE_GRACE.as_secs()
                );
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), self.wake.notified()).await;
        }
    }
}

/// Copies `from` to `to` masked, until the end of `from` or a failed write.
fn pump(mut from: File, mut to: File, masker: &Masker, state: &PumpState) {
    let mut stream = masker.stream();
    // What the child wrote may hold secrets: the buffer is zeroized when dropped.
    let mut buf = Zeroizing::new(vec![0u8; CHUNK]);
    let mut out = Vec::with_capacity(CHUNK + 64);
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        state.touch();
        out.clear();
        stream.write(&buf[..n], &mut out);
        if !out.is_empty() {
            state.writing.store(true, Ordering::Release);
            let written = to.write_all(&out);
            state.writing.store(false, Ordering::Release);
            if written.is_err() {
                // Our reader is gone: stop reading so the child sees it too.
                return;
            }
        }
    }
    out.clear();
    stream.finish(&mut out);
    let _ = to.write_all(&out);
}

/// The pump's monotonic clock: when the child's output last moved, for the quiet-pipe bound.
fn monotonic_now() -> Instant {
    #[allow(
        clippy::disallowed_methods,
        reason = "the output pump measures silence on the child's pipes"
    )]
    let now = Instant::now();
    now
}
