//! Reliability and security tests of the workspace, as integration tests only:
//!
//! - `tests/faults.rs`: refused connections, resets, stalls, 5xx and 429 bursts, AWS
//!   throttling, truncated, malformed and oversized answers;
//! - `tests/leaks.rs`: canary values and tokens never reach logs (trace level), errors,
//!   `Debug` or panic messages, in process and through `ci-secrets -vvv`;
//! - `tests/files.rs`: file variables, and their cleanup by `ci-secrets exec`;
//! - `tests/properties.rs`: property tests of the parsers and expansion;
//! - `tests/e2e_load.rs`, `tests/e2e_tls.rs`: against the real servers of
//!   `cargo xtask services up` (skipped without `CI_SECRETS_E2E_ENV`).
//!
//! See `docs/testing.md` ("Reliability, security and fuzzing") and `docs/security.md`.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]
