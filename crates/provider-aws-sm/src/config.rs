//! The provider's settings and its builder.
//!
//! Precedence, for every AWS setting: the secret's own field (`region`, `role_arn`,
//! `role_session_name`) > the job's `AWS_*` variables (the payload's `server` block) > the
//! runner host's environment and shared files, read by `aws-config` (credentials, endpoint
//! URLs, IMDS endpoint) > the SDK's defaults. Retries and timeouts come from the resolution's
//! [`ResolveContext`](secrets_core::ResolveContext), so `AWS_MAX_ATTEMPTS` and
//! `AWS_RETRY_MODE` on the host do not apply.

use crate::provider::AwsSecretsManagerProvider;
use aws_sdk_secretsmanager::config::AppName;
use aws_types::os_shim_internal::{Env, Fs};
use secrets_core::{Environment, Error, ErrorKind};
use std::fmt;

/// How a number picked out with `field` becomes text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NumberFormat {
    /// The number's JSON literal, as stored (`1000000` stays `1000000`, `1.50` stays `1.50`).
    /// The default.
    #[default]
    JsonLiteral,
    /// GitLab Runner's rendering: the number as a float64 printed by Go's `fmt.Sprint`
    /// (`1000000` gives `1e+06`, `1234567` gives `1.234567e+06`, integers above 2^53 lose
    /// precision). For jobs that depend on the runner's exact output.
    RunnerFloat,
}

/// The default application name sent in the `User-Agent` (`app/ci-secrets`).
pub const DEFAULT_APP_NAME: &str = "ci-secrets";

/// Builds an [`AwsSecretsManagerProvider`].
///
/// ```
/// use provider_aws_sm::{AwsSecretsManagerBuilder, NumberFormat};
///
/// let provider = AwsSecretsManagerBuilder::new()
///     .with_number_format(NumberFormat::JsonLiteral)
///     .build()
///     .expect("valid settings");
/// # let _ = provider;
/// ```
#[derive(Clone)]
pub struct AwsSecretsManagerBuilder {
    env: Option<Environment>,
    number_format: NumberFormat,
    batching: bool,
    app_name: String,
}

impl Default for AwsSecretsManagerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl AwsSecretsManagerBuilder {
    /// Defaults: a snapshot of the process environment (taken at [`Self::build`]), JSON-literal
    /// numbers, batching on.
    pub fn new() -> Self {
        Self {
            env: None,
            number_format: NumberFormat::default(),
            batching: true,
            app_name: DEFAULT_APP_NAME.to_owned(),
        }
    }

    /// Reads the host environment from `vars` instead of the process environment: the
    /// credential chain (`AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, `AWS_SHARED_CREDENTIALS_FILE`,
    /// `AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_EC2_METADATA_SERVICE_ENDPOINT`, ...) and the
    /// endpoint overrides (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SECRETS_MANAGER`,
    /// `AWS_ENDPOINT_URL_STS`). Files named by these variables are still read from disk.
    /// Tests use it so they never change the process environment.
    pub fn with_env_vars<I, K, V>(self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.with_env(vars.into_iter().collect())
    }

    /// Reads the host environment from `env`, a snapshot shared with the rest of the
    /// resolution (see [`Self::with_env_vars`] for what is read).
    pub fn with_env(mut self, env: Environment) -> Self {
        self.env = Some(env);
        self
    }

    /// How numbers picked out with `field` are printed (default [`NumberFormat::JsonLiteral`]).
    pub fn with_number_format(mut self, format: NumberFormat) -> Self {
        self.number_format = format;
        self
    }

    /// Whether secrets read at their current version use `BatchGetSecretValue` (default
    /// true). Off, every distinct secret is one `GetSecretValue`, as the runner does.
    pub fn with_batching(mut self, batching: bool) -> Self {
        self.batching = batching;
        self
    }

    /// The application name in the `User-Agent` (`app/<name>`; default
    /// [`DEFAULT_APP_NAME`]). The runner sends `GitLab-Runner/<version>`.
    pub fn with_app_name(mut self, name: impl Into<String>) -> Self {
        self.app_name = name.into();
        self
    }

    /// Checks the settings and builds the provider.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] naming `app_name` when it is not a valid AWS app name.
    pub fn build(self) -> Result<AwsSecretsManagerProvider, Error> {
        Ok(AwsSecretsManagerProvider::new(self.into_config()?))
    }

    /// The checked settings, for the provider and [`crate::AssumeRoleBuilder`].
    pub(crate) fn into_config(self) -> Result<Config, Error> {
        let app_name = AppName::new(self.app_name.clone()).map_err(|_| {
            Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "app_name {:?} is not a valid AWS app name (letters, digits and !#$%&'*+-.^_`|~ only)",
                    self.app_name
                ),
            )
        })?;
        let snapshot = self.env.clone().unwrap_or_else(Environment::capture);
        let pairs: Vec<(&str, &str)> = snapshot.iter().collect();
        Ok(Config {
            env: Env::from_slice(&pairs),
            env_names: snapshot.iter().map(|(k, _)| k.to_owned()).collect(),
            fs: Fs::real(),
            number_format: self.number_format,
            batching: self.batching,
            app_name,
        })
    }
}

impl fmt::Debug for AwsSecretsManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsSecretsManagerBuilder")
            .field("env", &self.env)
            .field("number_format", &self.number_format)
            .field("batching", &self.batching)
            .field("app_name", &self.app_name)
            .finish()
    }
}

/// The checked settings a provider runs with.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) env: Env,
    /// The variables' names, for `Debug`.
    env_names: Vec<String>,
    pub(crate) fs: Fs,
    pub(crate) number_format: NumberFormat,
    pub(crate) batching: bool,
    pub(crate) app_name: AppName,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("env_names", &self.env_names)
            .field("number_format", &self.number_format)
            .field("batching", &self.batching)
            .field("app_name", &self.app_name)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_names_not_values() {
        let builder = AwsSecretsManagerBuilder::new().with_env_vars([
            ("AWS_ACCESS_KEY_ID", "AKIDCANARY"),
            ("AWS_SECRET_ACCESS_KEY", "secret-canary-7f3a9c"),
        ]);
        let printed = format!("{builder:?}");
        assert!(printed.contains("AWS_SECRET_ACCESS_KEY"), "{printed}");
        assert!(!printed.contains("canary"), "{printed}");
        assert!(!printed.contains("CANARY"), "{printed}");
        let provider = builder.build().unwrap();
        let printed = format!("{provider:?}");
        assert!(
            !printed.contains("canary") && !printed.contains("CANARY"),
            "{printed}"
        );
    }

    #[test]
    fn bad_app_name_is_rejected_naming_the_field() {
        let err = AwsSecretsManagerBuilder::new()
            .with_app_name("has space")
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.to_string().starts_with("app_name"), "{err}");
    }
}
