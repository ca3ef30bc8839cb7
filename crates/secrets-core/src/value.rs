//! A resolved secret value.

use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// A resolved secret value.
///
/// Held in a [`SecretString`] (zeroized on drop). It has no `Display` or `Serialize`, and its
/// `Debug` prints `SecretValue(<redacted>)`: reading the value takes an explicit
/// [`SecretValue::expose`].
pub struct SecretValue(SecretString);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The value itself. Call only where the value has to leave the process (a file, a child
    /// environment, the runner's variable list).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// A copy, for one fetched object that serves several variables.
    pub fn duplicate(&self) -> Self {
        Self::new(self.expose())
    }

    /// The value's length in bytes.
    pub fn len(&self) -> usize {
        self.expose().len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

impl PartialEq for SecretValue {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for SecretValue {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let value = SecretValue::new("canary-7f3a9c");
        let printed = format!("{value:?} {value:#?}");
        assert!(!printed.contains("canary"), "{printed}");
        assert_eq!(value.expose(), "canary-7f3a9c");
        assert_eq!(value.duplicate(), value);
    }
}
