//! The provider's builder: the endpoints, from gcloud's override variables.
//!
//! Precedence, for each endpoint: an explicit builder call > the resolving process's
//! environment (`CLOUDSDK_API_ENDPOINT_OVERRIDES_STS`, `CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER`,
//! `CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS`, gcloud's names) > Google's endpoints. An override is a base URL (`https://host[:port][/]`);
//! a trailing `/v1/` is accepted and dropped, since the requests add it. With a Secret
//! Manager override, regional secrets are read there too (a regional endpoint cannot be
//! derived from an override).

use crate::provider::GcpSecretManagerProvider;
use provider_http::tls::display_url;
use secrets_core::{Environment, Error, ErrorKind};
use std::fmt;

/// gcloud's STS endpoint override.
pub const STS_OVERRIDE: &str = "CLOUDSDK_API_ENDPOINT_OVERRIDES_STS";
/// gcloud's Secret Manager endpoint override.
pub const SECRETMANAGER_OVERRIDE: &str = "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER";

/// gcloud's IAM Credentials endpoint override (impersonation's `generateAccessToken`).
pub const IAMCREDENTIALS_OVERRIDE: &str = "CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS";
/// The opt-in to impersonation: gcloud's `auth/impersonate_service_account` property as an
/// environment variable, read as a CI/CD variable into the secret's
/// `server.impersonate_service_account` (an extension GitLab does not send).
pub const IMPERSONATE_VARIABLE: &str = "CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT";

/// Google STS.
pub(crate) const DEFAULT_STS: &str = "https://sts.googleapis.com";
/// Global Secret Manager.
pub(crate) const DEFAULT_SECRETMANAGER: &str = "https://secretmanager.googleapis.com";
/// IAM Credentials.
pub(crate) const DEFAULT_IAMCREDENTIALS: &str = "https://iamcredentials.googleapis.com";

/// Builds a [`GcpSecretManagerProvider`].
///
/// ```
/// use provider_gcp_sm::GcpSecretManagerBuilder;
/// use secrets_core::Environment;
///
/// let env: Environment = [("CLOUDSDK_API_ENDPOINT_OVERRIDES_STS", "http://127.0.0.1:8080/")]
///     .into_iter()
///     .collect();
/// let provider = GcpSecretManagerBuilder::new().with_env(env).build().unwrap();
/// # drop(provider);
/// ```
#[derive(Default)]
pub struct GcpSecretManagerBuilder {
    env: Environment,
    sts: Option<String>,
    secretmanager: Option<String>,
    iamcredentials: Option<String>,
}

impl fmt::Debug for GcpSecretManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpSecretManagerBuilder")
            .field("env", &self.env)
            .field("sts", &self.sts)
            .field("secretmanager", &self.secretmanager)
            .field("iamcredentials", &self.iamcredentials)
            .finish()
    }
}

/// The endpoints one provider uses (base URLs, no trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoints {
    pub(crate) sts: reqwest::Url,
    /// `None`: Google's, global or regional by the secret.
    pub(crate) secretmanager: Option<reqwest::Url>,
    /// IAM Credentials, for impersonation.
    pub(crate) iamcredentials: reqwest::Url,
}

impl Endpoints {
    /// The Secret Manager base URL for a location.
    pub(crate) fn secretmanager_for(&self, location: &crate::resource::Location) -> String {
        match (&self.secretmanager, location) {
            (Some(url), _) => display_url(url),
            (None, crate::resource::Location::Global) => DEFAULT_SECRETMANAGER.to_owned(),
            (None, crate::resource::Location::Regional(l)) => {
                format!("https://secretmanager.{l}.rep.googleapis.com")
            }
        }
    }
}

fn parse_endpoint(setting: &str, raw: &str) -> Result<reqwest::Url, Error> {
    let invalid = || {
        Error::new(
            ErrorKind::InvalidConfig,
            format!("{setting} is not an http(s) URL"),
        )
        .with_fix(format!(
            "set {setting} to a base URL such as https://host:443/, or unset it"
        ))
    };
    let mut url = reqwest::Url::parse(raw.trim()).map_err(|_| invalid())?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid());
    }
    let path = url.path().trim_end_matches('/');
    let path = path.strip_suffix("/v1").unwrap_or(path).to_owned();
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

impl GcpSecretManagerBuilder {
    /// A builder that reads no environment: Google's endpoints.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder that reads the endpoint overrides from a snapshot of this process's environment.
    pub fn from_env() -> Self {
        Self::new().with_env(Environment::capture())
    }

    /// Reads the endpoint overrides from `env`.
    pub fn with_env(mut self, env: Environment) -> Self {
        self.env = env;
        self
    }

    /// The STS base URL, overriding [`STS_OVERRIDE`].
    pub fn with_sts_endpoint(mut self, url: impl Into<String>) -> Self {
        self.sts = Some(url.into());
        self
    }

    /// The Secret Manager base URL (for global and regional secrets), overriding
    /// [`SECRETMANAGER_OVERRIDE`].
    pub fn with_secretmanager_endpoint(mut self, url: impl Into<String>) -> Self {
        self.secretmanager = Some(url.into());
        self
    }

    /// The IAM Credentials base URL (impersonation), overriding [`IAMCREDENTIALS_OVERRIDE`].
    pub fn with_iamcredentials_endpoint(mut self, url: impl Into<String>) -> Self {
        self.iamcredentials = Some(url.into());
        self
    }

    /// Builds the provider; fails with [`ErrorKind::InvalidConfig`] naming the setting when an
    /// endpoint is not an http(s) URL.
    pub fn build(self) -> Result<GcpSecretManagerProvider, Error> {
        let pick = |explicit: Option<String>,
                    var: &'static str|
         -> Result<Option<reqwest::Url>, Error> {
            match explicit {
                Some(url) => parse_endpoint("the endpoint given to the provider", &url).map(Some),
                None => match self.env.non_empty(var) {
                    Some(url) => parse_endpoint(var, url).map(Some),
                    None => Ok(None),
                },
            }
        };
        let sts = match pick(self.sts.clone(), STS_OVERRIDE)? {
            Some(url) => url,
            None => reqwest::Url::parse(DEFAULT_STS).map_err(|_| {
                Error::new(ErrorKind::Unexpected, "the default STS URL does not parse")
            })?,
        };
        let secretmanager = pick(self.secretmanager.clone(), SECRETMANAGER_OVERRIDE)?;
        let iamcredentials = match pick(self.iamcredentials.clone(), IAMCREDENTIALS_OVERRIDE)? {
            Some(url) => url,
            None => reqwest::Url::parse(DEFAULT_IAMCREDENTIALS).map_err(|_| {
                Error::new(
                    ErrorKind::Unexpected,
                    "the default IAM Credentials URL does not parse",
                )
            })?,
        };
        Ok(GcpSecretManagerProvider::new(Endpoints {
            sts,
            secretmanager,
            iamcredentials,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Location;

    #[test]
    fn overrides_from_the_environment_and_their_precedence() {
        let env: Environment = [
            (STS_OVERRIDE, "http://127.0.0.1:9/v1/"),
            (SECRETMANAGER_OVERRIDE, "http://127.0.0.1:10/"),
            (IAMCREDENTIALS_OVERRIDE, "http://127.0.0.1:11/v1"),
        ]
        .into_iter()
        .collect();
        let p = GcpSecretManagerBuilder::new()
            .with_env(env.clone())
            .build()
            .unwrap();
        assert_eq!(display_url(&p.endpoints().sts), "http://127.0.0.1:9");
        assert_eq!(
            display_url(&p.endpoints().iamcredentials),
            "http://127.0.0.1:11"
        );
        assert_eq!(
            p.endpoints()
                .secretmanager_for(&Location::Regional("us-east1".into())),
            "http://127.0.0.1:10"
        );
        let p = GcpSecretManagerBuilder::new()
            .with_env(env)
            .with_sts_endpoint("https://sts.example.com")
            .build()
            .unwrap();
        assert_eq!(display_url(&p.endpoints().sts), "https://sts.example.com");

        let p = GcpSecretManagerBuilder::new().build().unwrap();
        assert_eq!(display_url(&p.endpoints().sts), DEFAULT_STS);
        assert_eq!(
            display_url(&p.endpoints().iamcredentials),
            DEFAULT_IAMCREDENTIALS
        );
        assert_eq!(
            p.endpoints().secretmanager_for(&Location::Global),
            DEFAULT_SECRETMANAGER
        );
        assert_eq!(
            p.endpoints()
                .secretmanager_for(&Location::Regional("europe-west1".into())),
            "https://secretmanager.europe-west1.rep.googleapis.com"
        );

        let env: Environment = [(SECRETMANAGER_OVERRIDE, "not a url")]
            .into_iter()
            .collect();
        let err = GcpSecretManagerBuilder::new()
            .with_env(env)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.to_string().contains(SECRETMANAGER_OVERRIDE), "{err}");
    }
}
