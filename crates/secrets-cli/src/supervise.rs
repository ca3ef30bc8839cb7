//! Running a child process with secrets in its environment: its output masked, signals
//! forwarded, its exit code returned (`exec`, `aws-credentials -- CMD`).

use crate::exit;
use crate::input::CliError;

/// SIGINT, SIGTERM and SIGHUP, caught so they can be forwarded.
pub(crate) struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub(crate) fn listen() -> Result<Self, CliError> {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind| {
            signal(kind).map_err(|e| CliError::internal(format!("listening for signals: {e}")))
        };
        Ok(Self {
            int: listen(SignalKind::interrupt())?,
            term: listen(SignalKind::terminate())?,
            hup: listen(SignalKind::hangup())?,
        })
    }
}

/// Runs the child, forwarding SIGINT, SIGTERM and SIGHUP to it, with its output masked by
/// `masker` (`crate::mask_pump`), and returns its exit code (128 + signal when it was killed).
pub(crate) async fn supervise(
    mut command: tokio::process::Command,
    program: &str,
    mut signals: Signals,
    masker: Option<secrets_core::masker::Masker>,
) -> Result<u8, CliError> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    crate::mask_pump::pipe_output(&mut command, masker.as_ref());
    let mut child = command
        .spawn()
        .map_err(|e| CliError::config(format!("starting {program}: {e}")))?;
    let pumps = crate::mask_pump::start(&mut child, masker)?;
    let pid = child.id().map(|id| Pid::from_raw(id as i32));
    let status = loop {
        let forward = tokio::select! {
            status = child.wait() => break status,
            _ = signals.int.recv() => Signal::SIGINT,
            _ = signals.term.recv() => Signal::SIGTERM,
            _ = signals.hup.recv() => Signal::SIGHUP,
        };
        if let Some(pid) = pid {
            let _ = kill(pid, forward);
        }
    };
    pumps.finish().await;
    let status = status.map_err(|e| CliError::internal(format!("waiting for {program}: {e}")))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code.clamp(0, 255) as u8,
        (None, Some(signal)) => (128 + signal).clamp(0, 255) as u8,
        (None, None) => exit::INTERNAL,
    })
}
