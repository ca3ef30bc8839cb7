//! TLS and proxy settings from files and URLs, with messages that name the setting (the
//! environment variable) and the path. Which variables a provider reads is its own business;
//! these functions take the name for messages.

use crate::Failure;
use crate::client::ShownProxy;
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

/// The certificates of a PEM bundle; `what` says where it came from.
pub fn parse_certs(
    pem: &[u8],
    what: &dyn fmt::Display,
    var: &str,
) -> Result<Vec<reqwest::Certificate>, Failure> {
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

/// Every certificate in the files under `dir` (recursively, in a stable order).
pub fn certs_in_dir(var: &str, dir: &Path) -> Result<Vec<reqwest::Certificate>, Failure> {
    let mut files = Vec::new();
    files_under(dir, &mut files).map_err(|e| {
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
    Ok(certs)
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
    (cert_var, cert_path): (&str, &Path),
    (key_var, key_path): (&str, &Path),
) -> Result<reqwest::Identity, Failure> {
    let mut pem = Zeroizing::new(read_file(cert_var, cert_path)?);
    let key = Zeroizing::new(read_file(key_var, key_path)?);
    pem.push(b'\n');
    pem.extend_from_slice(&key);
    reqwest::Identity::from_pem(&pem).map_err(|e| {
        config_error(
            format!(
                "{cert_var}={} and {key_var}={} are not a usable PEM certificate and private key: {e}",
                cert_path.display(),
                key_path.display()
            ),
            "use a PEM certificate chain and a PKCS#8, PKCS#1 or SEC1 PEM private key",
        )
    })
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
