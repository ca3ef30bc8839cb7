//! The environment of the resolving process, read once and passed down, so that every crate
//! reads the same snapshot and tests never touch the real environment.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A snapshot of environment variables. Cheap to clone; its `Debug` shows the names, never
/// a value.
#[derive(Clone, Default)]
pub struct Environment {
    vars: Arc<BTreeMap<String, String>>,
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Environment")
            .field(&self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Environment {
    /// Reads the process environment (entries that are not UTF-8 are skipped). The one
    /// place in the workspace that reads `std::env`.
    pub fn capture() -> Self {
        #[allow(
            clippy::disallowed_methods,
            reason = "the one place that reads the process environment"
        )]
        let vars = std::env::vars_os();
        vars.filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect()
    }

    /// A variable's value (`None` when unset).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// A variable's value, `None` when unset or empty (as Go's clients read most settings).
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// Every variable, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A copy with `key` set to `value`.
    pub fn with(&self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let mut vars = (*self.vars).clone();
        vars.insert(key.into(), value.into());
        Self {
            vars: Arc::new(vars),
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Environment {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self {
            vars: Arc::new(
                iter.into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_was_given_and_hides_values_in_debug() {
        let env: Environment = [("A", "1"), ("EMPTY", "")].into_iter().collect();
        assert_eq!(env.get("A"), Some("1"));
        assert_eq!(env.get("EMPTY"), Some(""));
        assert_eq!(env.non_empty("EMPTY"), None);
        assert_eq!(env.get("B"), None);
        let more = env.with("B", "secret-canary");
        assert_eq!(more.get("B"), Some("secret-canary"));
        assert_eq!(env.get("B"), None, "with() copies");
        assert!(!format!("{more:?}").contains("secret-canary"));
    }
}
