//! What the process does before any value arrives: the private directories of earlier runs
//! that were killed are removed.

/// Sweeps stale secret directories. Failures are logged, not fatal.
pub fn at_start() {
    let _ = secrets_core::materialise::sweep_default_parents();
}
