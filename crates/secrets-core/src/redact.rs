//! Helpers for hand-written `Debug` implementations that hide values.

use std::fmt;

/// Prints `"<redacted>"` for a present, non-empty value, and `""` or `None` otherwise, so a
/// `Debug` line still tells whether a value was there.
pub(crate) struct Redacted<'a>(pub(crate) Option<&'a str>);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("None"),
            Some("") => f.write_str("\"\""),
            Some(_) => f.write_str("<redacted>"),
        }
    }
}
