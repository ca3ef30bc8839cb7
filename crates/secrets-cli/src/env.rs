//! The process environment, read once at start-up and passed down: the same snapshot the
//! providers read.

/// A snapshot of the environment.
pub type ProcessEnv = secrets_core::Environment;
