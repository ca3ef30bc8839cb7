//! TLS and proxy settings from files and URLs, with messages that name the setting (the
//! environment variable) and the path. Which variables a provider reads is its own business;
//! these functions take the name for messages.

use crate::Failure;
use crate::client::ShownProxy;
use crate::server_name::pem_certs;
use rustls::pki_types::CertificateDer;
use secrets_core::ErrorKind;
use std::fmt;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

fn config_error(message: String, fix: &str) -> Failure {
    Failure::new(ErrorKind::InvalidConfig, message).with_fix(fix)
}

/// Reads a file named by the setting `var`.
pub fn read_file(var: &str, path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| {
        config_error(
            format!("cannot read {var}={}: {e}", path.display()),
            "point it at a readable PEM file, or unset it",
        )
    })
}

/// CA certificates in the two forms the clients take them: `reqwest`'s, and DER for a
/// preconfigured `rustls` client (see [`crate::server_name`]).
#[derive(Clone, Default)]
pub struct CaCerts {
    /// For `reqwest::ClientBuilder::tls_certs_only`.
    pub certs: Vec<reqwest::Certificate>,
    /// The same certificates, DER.
    pub der: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for CaCerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} CA certificates", self.der.len())
    }
}

impl CaCerts {
    fn extend(&mut self, other: Self) {
        self.certs.extend(other.certs);
        self.der.extend(other.der);
    }
}

/// The certificates of a PEM bundle; `what` says where it came from.
pub fn parse_certs(
    pem: &[u8],
    what: &dyn fmt::Display,
    var: &str,
) -> Result<Vec<reqwest::Certificate>, Failure> {
    parse_ca(pem, what, var).map(|ca| ca.certs)
}

/// The certificates of a PEM bundle in both forms; `what` says where it came from.
pub fn parse_ca(pem: &[u8], what: &dyn fmt::Display, var: &str) -> Result<CaCerts, Failure> {
    let invalid = |e: &dyn fmt::Display| {
        config_error(
            format!("{what} is not a valid PEM certificate bundle: {e}"),
            &format!("set {var} to a file of PEM `CERTIFICATE` blocks"),
        )
    };
    let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| invalid(&e))?;
    let der = pem_certs(pem).map_err(|e| invalid(&e))?;
    if certs.is_empty() || der.is_empty() {
        return Err(config_error(
            format!("{what} holds no PEM certificate"),
            &format!("set {var} to a file of PEM `CERTIFICATE` blocks"),
        ));
    }
    Ok(CaCerts { certs, der })
}

/// Every certificate in the files under `dir` (recursively, in a stable order).
pub fn certs_in_dir(var: &str, dir: &Path) -> Result<Vec<reqwest::Certificate>, Failure> {
    ca_in_dir(var, dir).map(|ca| ca.certs)
}

/// Every certificate in the files under `dir` (recursively, in a stable order), in both forms.
pub fn ca_in_dir(var: &str, dir: &Path) -> Result<CaCerts, Failure> {
    let mut files = Vec::new();
    files_under(dir, &mut files).map_err(|e| {
        config_error(
            format!("cannot read the directory {var}={}: {e}", dir.display()),
            "point it at a readable directory of PEM files, or unset it",
        )
    })?;
    let mut ca = CaCerts::default();
    for file in &files {
        let pem = read_file(var, file)?;
        let what = format!("{} (in {var})", file.display());
        ca.extend(parse_ca(&pem, &what, var)?);
    }
    if ca.der.is_empty() {
        return Err(config_error(
            format!("{var}={} holds no certificate file", dir.display()),
            "put PEM CA certificates in it, or unset it",
        ));
    }
    Ok(ca)
}

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

/// A client identity for mutual TLS from a PEM certificate chain and a PEM private key,
/// each named by its setting. The key's bytes are zeroized after use.
pub fn client_identity(
    cert: (&str, &Path),
    key: (&str, &Path),
) -> Result<reqwest::Identity, Failure> {
    client_identity_pem(cert, key).map(|(identity, _)| identity)
}

/// [`client_identity`], and the PEM it was made from (the chain, then the key; zeroized on
/// drop) for a preconfigured `rustls` client.
pub fn client_identity_pem(
    (cert_var, cert_path): (&str, &Path),
    (key_var, key_path): (&str, &Path),
) -> Result<(reqwest::Identity, Zeroizing<Vec<u8>>), Failure> {
    let mut pem = Zeroizing::new(read_file(cert_var, cert_path)?);
    let key = Zeroizing::new(read_file(key_var, key_path)?);
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
    Ok((identity, pem))
}

/// A proxy for every request from the setting `var`; shown without its credentials.
pub fn proxy(var: &str, value: &str) -> Result<ShownProxy, Failure> {
    let invalid = || {
        config_error(
            format!("{var} is not a proxy URL"),
            &format!("set {var} to a URL such as http://proxy.example.com:3128"),
        )
    };
    let mut url = reqwest::Url::parse(value).map_err(|_| invalid())?;
    let proxy = reqwest::Proxy::all(url.clone()).map_err(|_| invalid())?;
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok(ShownProxy {
        proxy,
        shown: format!("{var}={url}"),
    })
}

/// A URL without user info, query or fragment, and without a trailing `/`: safe to print.
pub fn display_url(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.as_str().trim_end_matches('/').to_owned()
}

/// A URL as text with any `user:password@` removed, for references and plans; text that
/// is not a URL is returned as is, cut at an `@` that could start a host.
pub fn display_url_text(text: &str) -> String {
    match reqwest::Url::parse(text.trim()) {
        Ok(url) if url.has_host() => display_url(&url),
        _ => match (text.find("://"), text.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}{}", &text[..scheme + 3], &text[at + 1..])
            }
            _ => text.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_never_shown() {
        let p = proxy(
            "VAULT_PROXY_ADDR",
            "http://user:pa55w0rd@proxy.example:8080",
        )
        .unwrap();
        assert_eq!(p.shown, "VAULT_PROXY_ADDR=http://proxy.example:8080/");
        assert!(
            proxy("X", "not a url")
                .unwrap_err()
                .message
                .contains("X is not a proxy URL")
        );
        assert_eq!(
            display_url_text("https://user:pw@vault.example.com:8200/"),
            "https://vault.example.com:8200"
        );
        assert_eq!(display_url_text("$VAULT_SERVER_URL"), "$VAULT_SERVER_URL");
        assert_eq!(display_url_text("https://u:p@[bad"), "https://[bad");
    }

    #[test]
    fn files_are_named_in_errors() {
        let err = read_file("VAULT_CACERT", Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(
            err.message.contains("VAULT_CACERT=/nonexistent/ca.pem"),
            "{err}"
        );
        let err = certs_in_dir("BAO_CAPATH", Path::new("/nonexistent/dir")).unwrap_err();
        assert!(err.message.contains("BAO_CAPATH=/nonexistent/dir"), "{err}");
        let err = parse_certs(b"not a pem", &"ca.pem", "VAULT_CACERT").unwrap_err();
        assert!(err.message.contains("holds no PEM certificate"), "{err}");
    }
}
