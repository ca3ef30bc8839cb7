//! Verifying the server's certificate against a configured name instead of the URL's host,
//! as Go's `tls.Config.ServerName` does for Vault's `VAULT_TLS_SERVER_NAME`: the request still
//! goes to the URL, with the URL's host in `Host` (so a proxy that routes by name sees the
//! name the job gave); only the name the certificate must hold changes.
//!
//! `reqwest` has no such setting, so [`TlsServerName`] builds a `rustls` client configuration
//! whose verifier ([`VerifyAsName`]) checks the chain against the same roots the client would
//! use (the given CA certificates only, or the system trust store) with the server name
//! replaced, and hands it to `reqwest` preconfigured.
//!
//! One difference from Go remains: the TLS SNI extension carries the URL's host (none for an
//! IP address), where Go sends the configured name.

use crate::Failure;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use secrets_core::ErrorKind;
use std::fmt;
use std::sync::Arc;

/// A certificate verifier that checks every certificate against one fixed name, whatever
/// name the connection was made to; everything else is the inner verifier's.
#[derive(Debug)]
pub struct VerifyAsName {
    name: ServerName<'static>,
    inner: Arc<dyn ServerCertVerifier>,
}

impl VerifyAsName {
    /// `inner` with the server name replaced by `name`.
    pub fn new(name: ServerName<'static>, inner: Arc<dyn ServerCertVerifier>) -> Self {
        Self { name, inner }
    }
}

impl ServerCertVerifier for VerifyAsName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _connected_to: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

/// A server name to verify certificates against, with the TLS client configuration that
/// does it (roots and client certificate included). Cheap to clone.
#[derive(Clone)]
pub struct TlsServerName {
    name: String,
    config: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for TlsServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServerName")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn config_error(message: String, fix: &str) -> Failure {
    Failure::new(ErrorKind::InvalidConfig, message).with_fix(fix)
}

impl TlsServerName {
    /// Verification against `name` (the value of the setting `var`), over `roots` (empty:
    /// the system trust store), presenting the client certificate chain and key in
    /// `identity_pem` (PEM, certificates and key in one buffer) when one is given.
    pub fn new(
        var: &str,
        name: &str,
        roots: &[CertificateDer<'static>],
        identity_pem: Option<&[u8]>,
    ) -> Result<Self, Failure> {
        let server_name = ServerName::try_from(name.to_owned()).map_err(|e| {
            config_error(
                format!("{var} {name:?} is not a valid host name ({e})"),
                &format!("set {var} to the DNS name or IP address the server's certificate holds"),
            )
        })?;
        let provider = CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let inner: Arc<dyn ServerCertVerifier> = if roots.is_empty() {
            Arc::new(
                rustls_platform_verifier::Verifier::new(provider.clone()).map_err(|e| {
                    config_error(
                        format!("cannot load the system trust store for {var}: {e}"),
                        "set VAULT_CACERT to the PEM file of the CA that signed the server's certificate",
                    )
                })?,
            )
        } else {
            let mut store = RootCertStore::empty();
            for root in roots {
                store.add(root.clone()).map_err(|e| {
                    config_error(
                        format!("a CA certificate is not usable as a trust anchor ({e})"),
                        "use PEM CA certificates",
                    )
                })?;
            }
            WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                .build()
                .map_err(|e| {
                    config_error(
                        format!("cannot verify certificates with the given CA certificates ({e})"),
                        "use PEM CA certificates",
                    )
                })?
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error(format!("no usable TLS version ({e})"), "report a bug"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(VerifyAsName::new(server_name, inner)));
        let mut config = match identity_pem {
            None => builder.with_no_client_auth(),
            Some(pem) => {
                let unusable = |e: &dyn fmt::Display| {
                    config_error(
                        format!("the client certificate and key are not usable with {var} ({e})"),
                        "use a PEM certificate chain and a PKCS#8, PKCS#1 or SEC1 PEM private key",
                    )
                };
                let chain = CertificateDer::pem_slice_iter(pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| unusable(&e))?;
                let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| unusable(&e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| unusable(&e))?
            }
        };
        // As reqwest offers them when it builds the configuration itself.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            name: name.to_owned(),
            config: Arc::new(config),
        })
    }

    /// The name certificates are verified against.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The TLS client configuration, for `reqwest::ClientBuilder::tls_backend_preconfigured`.
    pub fn client_config(&self) -> rustls::ClientConfig {
        (*self.config).clone()
    }
}

/// The DER certificates of a PEM buffer; non-certificate blocks are skipped.
pub fn pem_certs(
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, rustls::pki_types::pem::Error> {
    CertificateDer::pem_slice_iter(pem).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_names_are_refused_naming_the_setting() {
        let err = TlsServerName::new("VAULT_TLS_SERVER_NAME", "not a name", &[], None).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidConfig);
        assert!(err.message.contains("VAULT_TLS_SERVER_NAME"), "{err}");
        let ok = TlsServerName::new("VAULT_TLS_SERVER_NAME", "vault.internal", &[], None).unwrap();
        assert_eq!(ok.name(), "vault.internal");
        assert_eq!(
            ok.client_config().alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert!(format!("{ok:?}").contains("vault.internal"));
    }
}
