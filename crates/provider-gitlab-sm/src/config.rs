//! The provider's builder: the CA roots OpenBao's certificate is checked against.
//!
//! Precedence: [`GitlabSecretsManagerBuilder::with_ca_bundle`] > `BAO_CACERT` >
//! `VAULT_CACERT` in the resolving process's environment > the system trust store. The job
//! payload carries no TLS settings.

use crate::provider::GitlabSecretsManagerProvider;
use provider_http::ClientSettings;
use provider_http::tls::{parse_certs, read_file};
use secrets_core::{Environment, Error};
use std::fmt;
use std::path::Path;

/// Builds a [`GitlabSecretsManagerProvider`].
///
/// ```
/// use provider_gitlab_sm::GitlabSecretsManagerBuilder;
///
/// let provider = GitlabSecretsManagerBuilder::new().build().unwrap();
/// # drop(provider);
/// ```
#[derive(Default)]
pub struct GitlabSecretsManagerBuilder {
    env: Environment,
    ca_bundle: Option<Vec<u8>>,
}

impl fmt::Debug for GitlabSecretsManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitlabSecretsManagerBuilder")
            .field("env", &self.env)
            .field("ca_bundle", &self.ca_bundle.as_ref().map(Vec::len))
            .finish()
    }
}

impl GitlabSecretsManagerBuilder {
    /// A builder that reads no environment: the system trust store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder reading `BAO_CACERT` / `VAULT_CACERT` from this process's environment.
    pub fn from_env() -> Self {
        Self::new().with_env(Environment::capture())
    }

    /// Reads `BAO_CACERT` / `VAULT_CACERT` from `env`.
    pub fn with_env(mut self, env: Environment) -> Self {
        self.env = env;
        self
    }

    /// Trusts only the CA certificates in `pem`.
    pub fn with_ca_bundle(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_bundle = Some(pem.into());
        self
    }

    /// Builds the provider, reading the CA file now.
    pub fn build(self) -> Result<GitlabSecretsManagerProvider, Error> {
        let to_error = |f: provider_http::Failure| {
            let mut err = Error::new(f.kind, f.message);
            if let Some(fix) = f.fix {
                err = err.with_fix(fix);
            }
            err
        };
        let mut settings = ClientSettings::new(concat!(
            "ci-secrets-provider-gitlab-sm/",
            env!("CARGO_PKG_VERSION")
        ));
        if let Some(pem) = &self.ca_bundle {
            settings.ca_certs =
                parse_certs(pem, &"the CA bundle given to the provider", "the CA bundle")
                    .map_err(to_error)?;
        } else if let Some((var, path)) = ["BAO_CACERT", "VAULT_CACERT"]
            .into_iter()
            .find_map(|var| self.env.non_empty(var).map(|p| (var, p.to_owned())))
        {
            let path = Path::new(&path);
            let pem = read_file(var, path).map_err(to_error)?;
            settings.ca_certs =
                parse_certs(&pem, &format!("{} ({var})", path.display()), var).map_err(to_error)?;
        }
        Ok(GitlabSecretsManagerProvider::new(settings))
    }
}
