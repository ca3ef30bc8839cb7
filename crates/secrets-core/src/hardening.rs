//! Keeping values out of core dumps: for a process that is about to hold them.

use std::io;

/// Sets the soft core size limit to zero and, on Linux, marks the process non-dumpable
/// (`PR_SET_DUMPABLE` 0): no core file even where `core_pattern` pipes to a collector, and
/// other processes of the same user can neither ptrace it nor read `/proc/<pid>/mem` or
/// `/proc/<pid>/environ`. A child started with `exec` is dumpable again (`execve` resets it)
/// and inherits the zero soft limit, which it may raise up to the unchanged hard limit
/// (`ulimit -c`).
///
/// Call it at start-up, before the first value arrives.
pub fn forbid_core_dumps() -> io::Result<()> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let (_, hard) = getrlimit(Resource::RLIMIT_CORE)?;
        setrlimit(Resource::RLIMIT_CORE, 0, hard)?;
    }
    #[cfg(target_os = "linux")]
    nix::sys::prctl::set_dumpable(false)?;
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn after_forbidding_no_core_and_not_dumpable() {
        // Runs in the test binary's own process; harmless for the other tests.
        forbid_core_dumps().unwrap();
        assert!(!is_dumpable().unwrap());
        let (soft, _) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_CORE).unwrap();
        assert_eq!(soft, 0);
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(status.contains("CoreDumping:\t0"));
    }
}

/// Whether the process may dump core: `false` once [`forbid_core_dumps`] ran (Linux).
#[cfg(target_os = "linux")]
pub fn is_dumpable() -> io::Result<bool> {
    Ok(nix::sys::prctl::get_dumpable()?)
}
