//! The process environment, read once at start-up and passed down: the same snapshot the
//! providers read.

/// A snapshot of the environment.
pub type ProcessEnv = secrets_core::Environment;

/// What the CLI adds to the snapshot.
pub trait WithTokens {
    /// This snapshot with the ID tokens requested from the CI added, as GitLab adds a job's
    /// `id_tokens:` to its environment.
    fn with_tokens(&self, tokens: &[crate::id_token_sources::FetchedToken]) -> Self;
}

impl WithTokens for ProcessEnv {
    fn with_tokens(&self, tokens: &[crate::id_token_sources::FetchedToken]) -> Self {
        use secrecy::ExposeSecret;
        let mut env = self.clone();
        for token in tokens {
            env = env.with(token.name.clone(), token.value.expose_secret());
        }
        env
    }
}
