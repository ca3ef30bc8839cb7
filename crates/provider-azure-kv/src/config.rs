//! The provider's builder: the Entra authority (`AZURE_AUTHORITY_HOST` from the resolving
//! process's environment, as azidentity reads it), trusted roots, and test-only name
//! overrides.
//!
//! Like GitLab Runner, the authority comes from the process that resolves, never from the
//! job: a job variable cannot send the ID token elsewhere.

use crate::DEFAULT_AUTHORITY_HOST;
use crate::grouping::is_loopback;
use crate::provider::AzureKeyVaultProvider;
use provider_http::ClientSettings;
use provider_http::tls::{display_url, parse_certs};
use reqwest::Url;
use secrets_core::{Environment, Error, ErrorKind};
use std::fmt;
use std::net::SocketAddr;

/// The variable naming the Entra authority (azidentity's name).
pub const AUTHORITY_HOST_VAR: &str = "AZURE_AUTHORITY_HOST";

/// Builds an [`AzureKeyVaultProvider`].
///
/// ```
/// use provider_azure_kv::AzureKeyVaultBuilder;
/// use secrets_core::Environment;
///
/// let env: Environment = [("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us")]
///     .into_iter()
///     .collect();
/// let provider = AzureKeyVaultBuilder::new().with_env(env).build().unwrap();
/// # drop(provider);
/// ```
pub struct AzureKeyVaultBuilder {
    env: Environment,
    ca_bundle: Option<Vec<u8>>,
    resolve: Vec<(String, Vec<SocketAddr>)>,
}

impl Default for AzureKeyVaultBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for AzureKeyVaultBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureKeyVaultBuilder")
            .field("env", &self.env)
            .field(
                "ca_bundle",
                &self
                    .ca_bundle
                    .as_ref()
                    .map(|b| format!("{} bytes", b.len())),
            )
            .field("resolve", &self.resolve)
            .finish()
    }
}

impl AzureKeyVaultBuilder {
    /// A builder that reads no environment: the public-cloud authority, the system trust
    /// store.
    pub fn new() -> Self {
        Self {
            env: Environment::default(),
            ca_bundle: None,
            resolve: Vec::new(),
        }
    }

    /// Reads `AZURE_AUTHORITY_HOST` from `env`.
    pub fn with_env(mut self, env: Environment) -> Self {
        self.env = env;
        self
    }

    /// Trusts only the CA certificates in `pem` (one or more PEM blocks).
    pub fn with_ca_bundle(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_bundle = Some(pem.into());
        self
    }

    /// **For tests only**: resolves `host` to `addr` instead of asking DNS, so that a fake
    /// serving the real host names (`login.microsoftonline.com`, `*.vault.azure.net`) on
    /// loopback can be reached. Never read from the environment or the job; the shipped CLI
    /// never calls it.
    pub fn with_resolve_for_tests(mut self, host: impl Into<String>, addr: SocketAddr) -> Self {
        self.resolve.push((host.into(), vec![addr]));
        self
    }

    /// Builds the provider.
    ///
    /// Fails with [`ErrorKind::InvalidConfig`] when `AZURE_AUTHORITY_HOST` is not an https
    /// URL (http only to a loopback host) or the CA bundle holds no certificate.
    pub fn build(self) -> Result<AzureKeyVaultProvider, Error> {
        let authority = authority(&self.env)?;
        let mut settings = ClientSettings::new(concat!(
            "ci-secrets/",
            env!("CARGO_PKG_VERSION"),
            " (azure-key-vault)"
        ));
        if let Some(pem) = &self.ca_bundle {
            settings.ca_certs =
                parse_certs(pem, &"the CA bundle given to the provider", "the CA bundle").map_err(
                    |f| {
                        let err = Error::new(f.kind, f.message);
                        match f.fix {
                            Some(fix) => err.with_fix(fix),
                            None => err,
                        }
                    },
                )?;
        }
        settings.resolve = self.resolve;
        Ok(AzureKeyVaultProvider::new(authority, settings))
    }
}

/// The authority from `AZURE_AUTHORITY_HOST`, or the default; without a trailing `/`.
fn authority(env: &Environment) -> Result<Url, Error> {
    let raw = env
        .non_empty(AUTHORITY_HOST_VAR)
        .unwrap_or(DEFAULT_AUTHORITY_HOST);
    let fix = "set AZURE_AUTHORITY_HOST to an https URL such as https://login.microsoftonline.com, or unset it";
    let url = Url::parse(raw.trim()).map_err(|e| {
        Error::new(
            ErrorKind::InvalidConfig,
            format!("{AUTHORITY_HOST_VAR} is not a valid URL ({e})"),
        )
        .with_fix(fix)
    })?;
    let ok = url.host().is_some()
        && (url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url)))
        && url.username().is_empty()
        && url.password().is_none();
    if !ok {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "{AUTHORITY_HOST_VAR}={} is not an https URL with a host",
                display_url(&url)
            ),
        )
        .with_fix(fix));
    }
    let mut url = url;
    url.set_query(None);
    url.set_fragment(None);
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authority() {
        let env = |v: &str| {
            [(AUTHORITY_HOST_VAR, v)]
                .into_iter()
                .collect::<Environment>()
        };
        assert_eq!(
            authority(&Environment::default()).unwrap().as_str(),
            "https://login.microsoftonline.com/"
        );
        assert_eq!(
            authority(&env("https://login.chinacloudapi.cn/"))
                .unwrap()
                .as_str(),
            "https://login.chinacloudapi.cn/"
        );
        assert!(authority(&env("http://127.0.0.1:9")).is_ok());
        let err = authority(&env("http://login.example.com")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.to_string().contains("AZURE_AUTHORITY_HOST"), "{err}");
        assert!(authority(&env("not a url")).is_err());
    }
}
