//! Exit codes, documented in `--help`.

/// Every secret resolved; the command succeeded.
pub const OK: u8 = 0;
/// Bad input or configuration: a malformed spec, an unknown job, a missing setting, an
/// empty or expired token. Nothing was asked of a provider for the failing secrets.
pub const CONFIG: u8 = 2;
/// A provider refused (permission, login, not found) or did not answer.
pub const PROVIDER: u8 = 3;
/// The tool itself failed (I/O, runtime).
pub const INTERNAL: u8 = 70;
