//! The provider's builder and its TLS settings.
//!
//! Precedence, for every setting: an explicit builder call > the resolving process's
//! environment (`BAO_*` before `VAULT_*`, as the OpenBao client reads it) > the default
//! (system trust store, verification on, token revocation on).
//!
//! The job payload never carries TLS settings: like GitLab Runner, this provider takes them
//! from the environment of the process that resolves (runner-semantics §4.1).

use crate::provider::VaultProvider;
use provider_http::tls::{CaCerts, ca_in_dir, client_identity_pem, parse_ca, proxy, read_file};
use provider_http::{ClientSettings, Failure, ShownProxy, TlsServerName};
use secrets_core::{Environment, Error, ErrorKind};
use std::fmt;
use std::path::PathBuf;

/// Builds a [`VaultProvider`].
///
/// ```
/// use provider_vault::VaultProviderBuilder;
///
/// use secrets_core::Environment;
///
/// let env: Environment = [("VAULT_SKIP_VERIFY", "false")].into_iter().collect();
/// let provider = VaultProviderBuilder::new()
///     .with_env(env)
///     .with_revoke_token(true)
///     .build()
///     .unwrap();
/// # drop(provider);
/// ```
pub struct VaultProviderBuilder {
    env: Environment,
    ca_bundle: Option<Vec<u8>>,
    revoke_token: bool,
}

impl Default for VaultProviderBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl VaultProviderBuilder {
    /// A builder that reads no environment: system trust store, verification on,
    /// token revocation on.
    pub fn new() -> Self {
        Self {
            env: Environment::default(),
            ca_bundle: None,
            revoke_token: true,
        }
    }

    /// A builder that reads the TLS settings (`VAULT_CACERT`, ...) from a snapshot of this
    /// process's environment.
    pub fn from_env() -> Self {
        Self::new().with_env(Environment::capture())
    }

    /// Reads the TLS settings (`VAULT_CACERT`, `BAO_CACERT`, ...) from `env`.
    pub fn with_env(mut self, env: Environment) -> Self {
        self.env = env;
        self
    }

    /// Trusts only the CA certificates in `pem` (one or more PEM blocks), overriding
    /// `VAULT_CACERT`, `VAULT_CACERT_BYTES` and `VAULT_CAPATH`.
    pub fn with_ca_bundle(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_bundle = Some(pem.into());
        self
    }

    /// Whether to revoke each Vault token (`auth/token/revoke-self`) when a resolution ends.
    /// On by default; GitLab Runner never revokes.
    pub fn with_revoke_token(mut self, revoke: bool) -> Self {
        self.revoke_token = revoke;
        self
    }

    /// Builds the provider, reading the TLS files now.
    ///
    /// Fails with [`ErrorKind::InvalidConfig`] naming the environment variable and the path
    /// when a file cannot be read or holds no usable PEM, or a setting cannot be parsed.
    pub fn build(self) -> Result<VaultProvider, Error> {
        let tls = TlsConfig::load(&self.env, self.ca_bundle).map_err(|f| {
            let mut err = Error::new(f.kind, f.message);
            if let Some(fix) = f.fix {
                err = err.with_fix(fix);
            }
            err
        })?;
        Ok(VaultProvider::new(tls, self.revoke_token))
    }
}

impl fmt::Debug for VaultProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultProviderBuilder")
            .field("env", &self.env)
            .field(
                "ca_bundle",
                &self
                    .ca_bundle
                    .as_ref()
                    .map(|b| format!("{} bytes", b.len())),
            )
            .field("revoke_token", &self.revoke_token)
            .finish()
    }
}

/// Where the trusted CA certificates came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CaSource {
    /// The system trust store.
    System,
    /// [`VaultProviderBuilder::with_ca_bundle`].
    Explicit,
    /// An environment variable holding PEM text.
    Bytes(&'static str),
    /// A file named by an environment variable.
    File(&'static str, PathBuf),
    /// A directory named by an environment variable.
    Dir(&'static str, PathBuf),
}

impl fmt::Display for CaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::System => f.write_str("the system trust store"),
            Self::Explicit => f.write_str("the CA bundle given to the provider"),
            Self::Bytes(var) => write!(f, "the certificates in {var}"),
            Self::File(var, path) => write!(f, "{} ({var})", path.display()),
            Self::Dir(var, path) => write!(f, "the certificates in {} ({var})", path.display()),
        }
    }
}

/// TLS settings, loaded once per provider.
#[derive(Clone)]
pub(crate) struct TlsConfig {
    /// Where the roots come from (for messages).
    pub(crate) ca_source: CaSource,
    /// The roots, empty for the system store.
    pub(crate) ca_certs: CaCerts,
    /// The client certificate and key for mutual TLS.
    pub(crate) identity: Option<reqwest::Identity>,
    /// The name to verify the server's certificate against, instead of the URL's host
    /// (`Host` stays the URL's).
    pub(crate) server_name: Option<TlsServerName>,
    /// Accept any server certificate.
    pub(crate) skip_verify: bool,
    /// The proxy for every Vault request (`VAULT_PROXY_ADDR`, `VAULT_HTTP_PROXY`), in place
    /// of the `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` ones.
    pub(crate) proxy: Option<ShownProxy>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_source", &self.ca_source)
            .field("ca_certs", &self.ca_certs.der.len())
            .field(
                "client_identity",
                &self.identity.as_ref().map(|_| "<redacted>"),
            )
            .field("server_name", &self.server_name.as_ref().map(|n| n.name()))
            .field("skip_verify", &self.skip_verify)
            .field("proxy", &self.proxy.as_ref().map(|p| &p.shown))
            .finish()
    }
}

/// Reads `BAO_<suffix>`, then `VAULT_<suffix>`; empty counts as unset, as in Go.
fn read_var(env: &Environment, suffix: &'static str) -> Option<(&'static str, String)> {
    let (bao, vault) = names(suffix);
    [bao, vault]
        .into_iter()
        .find_map(|name| env.non_empty(name).map(|v| (name, v.to_owned())))
}

/// The two names of a setting, as static strings for messages.
fn names(suffix: &'static str) -> (&'static str, &'static str) {
    match suffix {
        "CACERT" => ("BAO_CACERT", "VAULT_CACERT"),
        "CACERT_BYTES" => ("BAO_CACERT_BYTES", "VAULT_CACERT_BYTES"),
        "CAPATH" => ("BAO_CAPATH", "VAULT_CAPATH"),
        "CLIENT_CERT" => ("BAO_CLIENT_CERT", "VAULT_CLIENT_CERT"),
        "CLIENT_KEY" => ("BAO_CLIENT_KEY", "VAULT_CLIENT_KEY"),
        "TLS_SERVER_NAME" => ("BAO_TLS_SERVER_NAME", "VAULT_TLS_SERVER_NAME"),
        "SKIP_VERIFY" => ("BAO_SKIP_VERIFY", "VAULT_SKIP_VERIFY"),
        "PROXY_ADDR" => ("BAO_PROXY_ADDR", "VAULT_PROXY_ADDR"),
        "HTTP_PROXY" => ("BAO_HTTP_PROXY", "VAULT_HTTP_PROXY"),
        _ => ("BAO_?", "VAULT_?"),
    }
}

fn config_error(message: String, fix: &str) -> Failure {
    Failure::new(ErrorKind::InvalidConfig, message).with_fix(fix)
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

impl TlsConfig {
    /// The shared client settings these TLS and proxy settings make.
    pub(crate) fn client_settings(&self) -> ClientSettings {
        let mut settings = ClientSettings::new(concat!(
            "ci-secrets-provider-vault/",
            env!("CARGO_PKG_VERSION")
        ));
        settings.ca_certs.clone_from(&self.ca_certs.certs);
        settings.tls_server_name.clone_from(&self.server_name);
        settings.identity.clone_from(&self.identity);
        settings.skip_verify = self.skip_verify;
        settings.proxy.clone_from(&self.proxy);
        settings
    }

    /// The settings from `env` (none: the defaults) and an explicit bundle.
    pub(crate) fn load(env: &Environment, explicit_ca: Option<Vec<u8>>) -> Result<Self, Failure> {
        // Roots: explicit > CACERT_BYTES > CACERT > CAPATH > system, as go-rootcerts picks one.
        let (ca_source, ca_certs) = if let Some(pem) = explicit_ca {
            let certs = parse_ca(&pem, &CaSource::Explicit, "the bundle")?;
            (CaSource::Explicit, certs)
        } else if let Some((var, pem)) = read_var(env, "CACERT_BYTES") {
            let source = CaSource::Bytes(var);
            let certs = parse_ca(pem.as_bytes(), &source, var)?;
            (source, certs)
        } else if let Some((var, path)) = read_var(env, "CACERT") {
            let path = PathBuf::from(path);
            let pem = read_file(var, &path)?;
            let source = CaSource::File(var, path);
            let certs = parse_ca(&pem, &source, var)?;
            (source, certs)
        } else if let Some((var, dir)) = read_var(env, "CAPATH") {
            let dir = PathBuf::from(dir);
            let certs = ca_in_dir(var, &dir)?;
            (CaSource::Dir(var, dir), certs)
        } else {
            (CaSource::System, CaCerts::default())
        };

        let identity = match (read_var(env, "CLIENT_CERT"), read_var(env, "CLIENT_KEY")) {
            (None, None) => None,
            (Some((var, _)), None) | (None, Some((var, _))) => {
                let other = if var.ends_with("CERT") {
                    var.replace("CLIENT_CERT", "CLIENT_KEY")
                } else {
                    var.replace("CLIENT_KEY", "CLIENT_CERT")
                };
                return Err(config_error(
                    format!("{var} is set but {other} is not; mutual TLS needs both"),
                    &format!("set {other} too, or unset {var}"),
                ));
            }
            (Some((cert_var, cert_path)), Some((key_var, key_path))) => Some(client_identity_pem(
                (cert_var, &PathBuf::from(cert_path)),
                (key_var, &PathBuf::from(key_path)),
            )?),
        };

        // As Go's `tls.Config.ServerName`: verification against this name, same roots and
        // client certificate; the request (and `Host`) still go to the URL's host.
        let server_name = match read_var(env, "TLS_SERVER_NAME") {
            None => None,
            Some((var, name)) => Some(TlsServerName::new(
                var,
                &name,
                &ca_certs.der,
                identity.as_ref().map(|(_, pem)| pem.as_slice()),
            )?),
        };
        let identity = identity.map(|(identity, _)| identity);

        let skip_verify = match read_var(env, "SKIP_VERIFY") {
            None => false,
            Some((var, value)) => parse_go_bool(&value).ok_or_else(|| {
                config_error(
                    format!("{var} is not a boolean"),
                    &format!("set {var} to true or false"),
                )
            })?,
        };
        if skip_verify {
            tracing::warn!(
                "VAULT_SKIP_VERIFY is set: the Vault server's TLS certificate is NOT verified; \
                 anyone on the network path can read the ID token and every secret. \
                 Set VAULT_CACERT instead"
            );
        }

        // As the Vault client: PROXY_ADDR wins over the older HTTP_PROXY.
        let proxy = match read_var(env, "PROXY_ADDR").or_else(|| read_var(env, "HTTP_PROXY")) {
            None => None,
            Some((var, value)) => Some(proxy(var, &value)?),
        };

        Ok(Self {
            ca_source,
            ca_certs,
            identity,
            server_name,
            skip_verify,
            proxy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        pairs.iter().copied().collect()
    }

    #[test]
    fn proxy_addr_wins_and_its_credentials_are_never_shown() {
        let e = env(&[
            ("VAULT_HTTP_PROXY", "http://old.example:3128"),
            (
                "VAULT_PROXY_ADDR",
                "http://user:pa55w0rd@proxy.example:8080",
            ),
        ]);
        let tls = TlsConfig::load(&e, None).unwrap();
        let proxy = tls.proxy.as_ref().expect("a proxy");
        assert_eq!(proxy.shown, "VAULT_PROXY_ADDR=http://proxy.example:8080/");
        assert!(!format!("{tls:?}").contains("pa55w0rd"));
        let e = env(&[("BAO_HTTP_PROXY", "http://bao.example:3128")]);
        let tls = TlsConfig::load(&e, None).unwrap();
        assert_eq!(
            tls.proxy.expect("a proxy").shown,
            "BAO_HTTP_PROXY=http://bao.example:3128/"
        );
        let e = env(&[("VAULT_PROXY_ADDR", "not a url")]);
        let err = TlsConfig::load(&e, None).unwrap_err().to_string();
        assert!(err.contains("VAULT_PROXY_ADDR is not a proxy URL"), "{err}");
    }

    #[test]
    fn defaults_without_env() {
        let tls = TlsConfig::load(&Environment::default(), None).unwrap();
        assert_eq!(tls.ca_source, CaSource::System);
        assert!(!tls.skip_verify);
        assert!(tls.identity.is_none());
        assert!(tls.server_name.is_none());
    }

    #[test]
    fn bao_takes_precedence_and_empty_is_unset() {
        let e = env(&[
            ("BAO_TLS_SERVER_NAME", "bao.example"),
            ("VAULT_TLS_SERVER_NAME", "vault.example"),
            ("BAO_SKIP_VERIFY", ""),
            ("VAULT_SKIP_VERIFY", "1"),
        ]);
        let tls = TlsConfig::load(&e, None).unwrap();
        assert_eq!(
            tls.server_name.as_ref().map(|n| n.name()),
            Some("bao.example")
        );
        assert!(tls.skip_verify);
    }

    #[test]
    fn unreadable_files_name_the_variable_and_path() {
        let e = env(&[("VAULT_CACERT", "/nonexistent/ca.pem")]);
        let err = TlsConfig::load(&e, None).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidConfig);
        assert!(
            err.to_string().contains("VAULT_CACERT=/nonexistent/ca.pem"),
            "{err}"
        );

        let e = env(&[("BAO_CAPATH", "/nonexistent/dir")]);
        let err = TlsConfig::load(&e, None).unwrap_err();
        assert!(
            err.to_string().contains("BAO_CAPATH=/nonexistent/dir"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("ca.pem");
        std::fs::write(&bad, "not a pem").unwrap();
        let e = env(&[("VAULT_CACERT", bad.to_str().unwrap())]);
        let err = TlsConfig::load(&e, None).unwrap_err();
        assert!(
            err.to_string().contains("holds no PEM certificate"),
            "{err}"
        );
        assert!(err.to_string().contains("VAULT_CACERT"), "{err}");
    }

    #[test]
    fn client_cert_needs_its_key_and_bad_bools_fail() {
        let e = env(&[("VAULT_CLIENT_CERT", "/tmp/c.pem")]);
        let err = TlsConfig::load(&e, None).unwrap_err();
        assert!(err.to_string().contains("VAULT_CLIENT_KEY"), "{err}");

        let e = env(&[("VAULT_SKIP_VERIFY", "yes")]);
        let err = TlsConfig::load(&e, None).unwrap_err();
        assert!(
            err.to_string()
                .contains("VAULT_SKIP_VERIFY is not a boolean"),
            "{err}"
        );
    }

    #[test]
    fn go_bools() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(t), Some(true));
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(f), Some(false));
        }
        assert_eq!(parse_go_bool("yes"), None);
    }

    #[test]
    fn builder_debug_is_safe() {
        let b = VaultProviderBuilder::new().with_ca_bundle(b"-----BEGIN CERTIFICATE-----".to_vec());
        let printed = format!("{b:?}");
        assert!(printed.contains("bytes"));
        assert!(!printed.contains("BEGIN"));
    }
}
