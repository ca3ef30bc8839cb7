//! The provider's builder and its TLS settings.
//!
//! Precedence, for every setting: an explicit builder call > the resolving process's
//! environment (`BAO_*` before `VAULT_*`, as the OpenBao client reads it) > the default
//! (system trust store, verification on, token revocation on).
//!
//! The job payload never carries TLS settings: like GitLab Runner, this provider takes them
//! from the environment of the process that resolves (runner-semantics §4.1).

use crate::provider::VaultProvider;
use auth_oidc::{Clock, SystemClock};
use secrets_core::{Error, ErrorKind};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Reads environment variables. Injected so tests never touch the real environment.
///
/// Implemented for every `Fn(&str) -> Option<String>`.
pub trait Env: Send + Sync {
    /// The variable's value, `None` when unset.
    fn var(&self, name: &str) -> Option<String>;
}

impl<F> Env for F
where
    F: Fn(&str) -> Option<String> + Send + Sync,
{
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Builds a [`VaultProvider`].
///
/// ```
/// use provider_vault::VaultProviderBuilder;
///
/// let provider = VaultProviderBuilder::new()
///     .with_env(|name: &str| (name == "VAULT_SKIP_VERIFY").then(|| "false".to_owned()))
///     .with_revoke_token(true)
///     .build()
///     .unwrap();
/// # drop(provider);
/// ```
pub struct VaultProviderBuilder {
    env: Option<Arc<dyn Env>>,
    ca_bundle: Option<Vec<u8>>,
    revoke_token: bool,
    clock: Arc<dyn Clock>,
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
            env: None,
            ca_bundle: None,
            revoke_token: true,
            clock: Arc::new(SystemClock),
        }
    }

    /// A builder that reads the TLS settings (`VAULT_CACERT`, ...) from this process's
    /// environment. The only place this crate reads `std::env`.
    pub fn from_env() -> Self {
        Self::new().with_env(|name: &str| {
            #[allow(
                clippy::disallowed_methods,
                reason = "the one place that reads the environment"
            )]
            let value = std::env::var(name).ok();
            value
        })
    }

    /// Reads the TLS settings through `env` instead of the process environment.
    pub fn with_env(mut self, env: impl Env + 'static) -> Self {
        self.env = Some(Arc::new(env));
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

    /// The clock used to reject expired ID tokens before any request.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the provider, reading the TLS files now.
    ///
    /// Fails with [`ErrorKind::InvalidConfig`] naming the environment variable and the path
    /// when a file cannot be read or holds no usable PEM, or a setting cannot be parsed.
    pub fn build(self) -> Result<VaultProvider, Error> {
        let tls = TlsConfig::load(self.env.as_deref(), self.ca_bundle)?;
        Ok(VaultProvider::new(tls, self.revoke_token, self.clock))
    }
}

impl fmt::Debug for VaultProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultProviderBuilder")
            .field("env", &self.env.as_ref().map(|_| "<injected>"))
            .field(
                "ca_bundle",
                &self
                    .ca_bundle
                    .as_ref()
                    .map(|b| format!("{} bytes", b.len())),
            )
            .field("revoke_token", &self.revoke_token)
            .field("clock", &self.clock)
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
    pub(crate) ca_certs: Vec<reqwest::Certificate>,
    /// The client certificate and key for mutual TLS.
    pub(crate) identity: Option<reqwest::Identity>,
    /// The name to verify the server's certificate against, instead of the URL's host.
    pub(crate) server_name: Option<String>,
    /// Accept any server certificate.
    pub(crate) skip_verify: bool,
    /// The proxy for every Vault request (`VAULT_PROXY_ADDR`, `VAULT_HTTP_PROXY`), in place
    /// of the `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` ones.
    pub(crate) proxy: Option<VaultProxy>,
}

/// A proxy from the environment; its URL may carry credentials, so it is shown without them.
#[derive(Clone)]
pub(crate) struct VaultProxy {
    pub(crate) proxy: reqwest::Proxy,
    /// The variable and the URL without credentials, for messages.
    pub(crate) shown: String,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_source", &self.ca_source)
            .field("ca_certs", &self.ca_certs.len())
            .field(
                "client_identity",
                &self.identity.as_ref().map(|_| "<redacted>"),
            )
            .field("server_name", &self.server_name)
            .field("skip_verify", &self.skip_verify)
            .field("proxy", &self.proxy.as_ref().map(|p| &p.shown))
            .finish()
    }
}

/// Reads `BAO_<suffix>`, then `VAULT_<suffix>`; empty counts as unset, as in Go.
fn read_var(env: Option<&dyn Env>, suffix: &'static str) -> Option<(&'static str, String)> {
    let env = env?;
    let (bao, vault) = names(suffix);
    [bao, vault]
        .into_iter()
        .find_map(|name| env.var(name).filter(|v| !v.is_empty()).map(|v| (name, v)))
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

fn config_error(message: String, fix: &str) -> Error {
    Error::new(ErrorKind::InvalidConfig, message).with_fix(fix)
}

fn read_file(var: &str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| {
        config_error(
            format!("cannot read {var}={}: {e}", path.display()),
            "point it at a readable PEM file, or unset it",
        )
    })
}

fn parse_certs(
    pem: &[u8],
    what: &dyn fmt::Display,
    var: &str,
) -> Result<Vec<reqwest::Certificate>, Error> {
    match reqwest::Certificate::from_pem_bundle(pem) {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        Ok(_) => Err(config_error(
            format!("{what} holds no PEM certificate"),
            &format!("set {var} to a file of PEM `CERTIFICATE` blocks"),
        )),
        Err(e) => Err(config_error(
            format!("{what} is not a valid PEM certificate bundle: {e}"),
            &format!("set {var} to a file of PEM `CERTIFICATE` blocks"),
        )),
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Every file under `dir`, recursively, sorted for a stable order.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_under(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

impl TlsConfig {
    /// The settings from `env` (none: the defaults) and an explicit bundle.
    pub(crate) fn load(env: Option<&dyn Env>, explicit_ca: Option<Vec<u8>>) -> Result<Self, Error> {
        // Roots: explicit > CACERT_BYTES > CACERT > CAPATH > system, as go-rootcerts picks one.
        let (ca_source, ca_certs) = if let Some(pem) = explicit_ca {
            let certs = parse_certs(&pem, &CaSource::Explicit, "the bundle")?;
            (CaSource::Explicit, certs)
        } else if let Some((var, pem)) = read_var(env, "CACERT_BYTES") {
            let source = CaSource::Bytes(var);
            let certs = parse_certs(pem.as_bytes(), &source, var)?;
            (source, certs)
        } else if let Some((var, path)) = read_var(env, "CACERT") {
            let path = PathBuf::from(path);
            let pem = read_file(var, &path)?;
            let source = CaSource::File(var, path);
            let certs = parse_certs(&pem, &source, var)?;
            (source, certs)
        } else if let Some((var, dir)) = read_var(env, "CAPATH") {
            let dir = PathBuf::from(dir);
            let mut files = Vec::new();
            files_under(&dir, &mut files).map_err(|e| {
                config_error(
                    format!("cannot read the directory {var}={}: {e}", dir.display()),
                    "point it at a readable directory of PEM files, or unset it",
                )
            })?;
            let mut certs = Vec::new();
            for file in &files {
                let pem = read_file(var, file)?;
                let what = format!("{} (in {var})", file.display());
                certs.extend(parse_certs(&pem, &what, var)?);
            }
            if certs.is_empty() {
                return Err(config_error(
                    format!("{var}={} holds no certificate file", dir.display()),
                    "put PEM CA certificates in it, or unset it",
                ));
            }
            (CaSource::Dir(var, dir), certs)
        } else {
            (CaSource::System, Vec::new())
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
            (Some((cert_var, cert_path)), Some((key_var, key_path))) => {
                let cert_path = PathBuf::from(cert_path);
                let key_path = PathBuf::from(key_path);
                let mut pem = Zeroizing::new(read_file(cert_var, &cert_path)?);
                let key = Zeroizing::new(read_file(key_var, &key_path)?);
                pem.push(b'\n');
                pem.extend_from_slice(&key);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    config_error(
                        format!(
                            "{cert_var}={} and {key_var}={} are not a usable PEM certificate and private key: {e}",
                            cert_path.display(),
                            key_path.display()
                        ),
                        "use a PEM certificate chain and a PKCS#8, PKCS#1 or SEC1 PEM private key",
                    )
                })?;
                Some(identity)
            }
        };

        let server_name = read_var(env, "TLS_SERVER_NAME").map(|(_, v)| v);

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
            Some((var, value)) => {
                let invalid = || {
                    config_error(
                        format!("{var} is not a proxy URL"),
                        &format!("set {var} to a URL such as http://proxy.example.com:3128"),
                    )
                };
                let mut url = reqwest::Url::parse(&value).map_err(|_| invalid())?;
                let proxy = reqwest::Proxy::all(url.clone()).map_err(|_| invalid())?;
                let _ = url.set_username("");
                let _ = url.set_password(None);
                Some(VaultProxy {
                    proxy,
                    shown: format!("{var}={url}"),
                })
            }
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
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Env + 'static {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name: &str| map.get(name).cloned()
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
        let tls = TlsConfig::load(Some(&e), None).unwrap();
        let proxy = tls.proxy.as_ref().expect("a proxy");
        assert_eq!(proxy.shown, "VAULT_PROXY_ADDR=http://proxy.example:8080/");
        assert!(!format!("{tls:?}").contains("pa55w0rd"));
        let e = env(&[("BAO_HTTP_PROXY", "http://bao.example:3128")]);
        let tls = TlsConfig::load(Some(&e), None).unwrap();
        assert_eq!(
            tls.proxy.expect("a proxy").shown,
            "BAO_HTTP_PROXY=http://bao.example:3128/"
        );
        let e = env(&[("VAULT_PROXY_ADDR", "not a url")]);
        let err = TlsConfig::load(Some(&e), None).unwrap_err().to_string();
        assert!(err.contains("VAULT_PROXY_ADDR is not a proxy URL"), "{err}");
    }

    #[test]
    fn defaults_without_env() {
        let tls = TlsConfig::load(None, None).unwrap();
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
        let tls = TlsConfig::load(Some(&e), None).unwrap();
        assert_eq!(tls.server_name.as_deref(), Some("bao.example"));
        assert!(tls.skip_verify);
    }

    #[test]
    fn unreadable_files_name_the_variable_and_path() {
        let e = env(&[("VAULT_CACERT", "/nonexistent/ca.pem")]);
        let err = TlsConfig::load(Some(&e), None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(
            err.to_string().contains("VAULT_CACERT=/nonexistent/ca.pem"),
            "{err}"
        );

        let e = env(&[("BAO_CAPATH", "/nonexistent/dir")]);
        let err = TlsConfig::load(Some(&e), None).unwrap_err();
        assert!(
            err.to_string().contains("BAO_CAPATH=/nonexistent/dir"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("ca.pem");
        std::fs::write(&bad, "not a pem").unwrap();
        let e = env(&[("VAULT_CACERT", bad.to_str().unwrap())]);
        let err = TlsConfig::load(Some(&e), None).unwrap_err();
        assert!(
            err.to_string().contains("holds no PEM certificate"),
            "{err}"
        );
        assert!(err.to_string().contains("VAULT_CACERT"), "{err}");
    }

    #[test]
    fn client_cert_needs_its_key_and_bad_bools_fail() {
        let e = env(&[("VAULT_CLIENT_CERT", "/tmp/c.pem")]);
        let err = TlsConfig::load(Some(&e), None).unwrap_err();
        assert!(err.to_string().contains("VAULT_CLIENT_KEY"), "{err}");

        let e = env(&[("VAULT_SKIP_VERIFY", "yes")]);
        let err = TlsConfig::load(Some(&e), None).unwrap_err();
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
