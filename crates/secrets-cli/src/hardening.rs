//! What the process does before any value arrives: no core dump, and the private
//! directories of earlier runs that were killed removed.

/// Marks the process non-dumpable (no core file, no ptrace or `/proc/<pid>/mem` by other
/// processes of the user) and sets the core size limit to zero, then sweeps stale secret
/// directories. Failures are logged, not fatal.
pub fn at_start() {
    if let Err(e) = secrets_core::hardening::forbid_core_dumps() {
        tracing::warn!(error = %e, "could not disable core dumps");
    }
    let _ = secrets_core::materialise::sweep_default_parents();
}
