//! Test support for leak tests: canary values and tokens must never reach logs, errors,
//! `Debug` or panic messages.
//!
//! [`logs`] installs, once per test binary, a subscriber that keeps every tracing event at
//! TRACE (and every `log` record); [`panics`] keeps every panic message; [`assert_clean`]
//! fails naming where a canary showed up, with the canary itself replaced.

use std::sync::{Arc, Mutex, OnceLock};

/// Bytes captured so far; shared by the writer that fills it.
#[derive(Debug, Default, Clone)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn append(&self, bytes: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
    }

    /// Everything captured so far, lossily decoded.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every tracing event of this test binary at TRACE, `log` records included.
///
/// # Panics
/// When another global subscriber was installed first: the capture must see everything.
pub fn logs() -> &'static Capture {
    static LOGS: OnceLock<Capture> = OnceLock::new();
    LOGS.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("the capture is the only subscriber of this test binary");
        capture
    })
}

/// Every panic message of this test binary from the first call on (the default hook still
/// prints them).
pub fn panics() -> &'static Capture {
    static PANICS: OnceLock<Capture> = OnceLock::new();
    PANICS.get_or_init(|| {
        let capture = Capture::default();
        let sink = capture.clone();
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            sink.append(format!("{info}\n").as_bytes());
            default(info);
        }));
        capture
    })
}

/// The panic message of `f`, which must panic.
///
/// # Panics
/// When `f` returns instead.
pub fn panic_message(f: impl FnOnce()) -> String {
    let before = panics().text().len();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    assert!(caught.is_err(), "expected a panic");
    panics().text()[before..].to_owned()
}

/// Asserts that none of `canaries` is in `haystack`; `what` names the haystack.
///
/// # Panics
/// On the first canary found, showing its surroundings with the canary replaced by
/// `<CANARY>` (so the failure does not leak it either).
#[track_caller]
pub fn assert_clean(what: &str, haystack: &str, canaries: &[&str]) {
    for canary in canaries.iter().filter(|c| !c.is_empty()) {
        if let Some(at) = haystack.find(canary) {
            let mut start = at.saturating_sub(400);
            while !haystack.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = (at + canary.len() + 200).min(haystack.len());
            while !haystack.is_char_boundary(end) {
                end += 1;
            }
            panic!(
                "{what} contains a canary, here: ...{}...",
                haystack[start..end].replace(canary, "<CANARY>")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capture_sees_events_and_the_assertion_finds_a_canary() {
        let capture = logs();
        tracing::trace!(target: "canary_capture", "token canary-1234 seen");
        let logs = capture.text();
        assert!(logs.contains("canary-1234"), "{logs}");
        let message = panic_message(|| assert_clean("the logs", &logs, &["canary-1234"]));
        assert!(message.contains("the logs contains a canary"), "{message}");
        assert!(!message.contains("canary-1234"), "{message}");
        assert_clean("the logs", &logs, &["absent-canary", ""]);
    }
}
