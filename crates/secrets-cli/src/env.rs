//! The process environment, read once at start-up and passed down.

use std::collections::BTreeMap;

/// A snapshot of the environment.
#[derive(Clone, Default)]
pub struct ProcessEnv {
    vars: BTreeMap<String, String>,
}

impl std::fmt::Debug for ProcessEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessEnv")
            .field("keys", &self.vars.len())
            .finish()
    }
}

impl ProcessEnv {
    /// Reads the process environment (non-UTF-8 entries are skipped).
    pub fn capture() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// A snapshot of the given variables (tests).
    #[cfg(test)]
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            vars: pairs.into_iter().collect(),
        }
    }

    /// This snapshot with the ID tokens requested from the CI added, as GitLab adds a job's
    /// `id_tokens:` to its environment.
    pub fn with_tokens(&self, tokens: &[crate::id_token_sources::FetchedToken]) -> Self {
        use secrecy::ExposeSecret;
        let mut vars = self.vars.clone();
        for token in tokens {
            vars.insert(token.name.clone(), token.value.expose_secret().to_owned());
        }
        Self { vars }
    }

    /// A variable's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// Every variable.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}
