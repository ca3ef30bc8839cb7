//! The platform's trust roots for [`crate::transport`], loaded off the critical path.
//!
//! Loading them (`rustls-native-certs`: `SSL_CERT_FILE`/`SSL_CERT_DIR` or the system bundle
//! and directory) takes 4-15 ms of file reads and PEM parsing, once per process. Done before
//! the first connect, as the SDK's default client does, that time is added to every
//! `ci-secrets` run. Here a transport starts the load on a thread of its own, and a handshake
//! waits for it only when the server's certificate has arrived, a connect and half a
//! handshake later. Everything the handshake needs before that (the signature schemes to
//! offer) comes from the crypto provider, not from the roots.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use std::sync::{Arc, Once, OnceLock};

/// The verifier over the platform's roots; `None` when none could be loaded.
static PLATFORM: OnceLock<Option<Arc<WebPkiServerVerifier>>> = OnceLock::new();

/// Starts loading the platform's roots on a thread, once per process.
pub(crate) fn start_loading(provider: &Arc<CryptoProvider>) {
    static START: Once = Once::new();
    START.call_once(|| {
        let provider = provider.clone();
        let spawned = std::thread::Builder::new()
            .name("load-trust-roots".to_owned())
            .spawn(move || {
                platform(&provider);
            });
        if spawned.is_err() {
            tracing::debug!("no thread for the trust roots; the first handshake loads them");
        }
    });
}

/// The verifier, loading the roots now if no thread has (or waiting for the one that is).
fn platform(provider: &Arc<CryptoProvider>) -> Option<&'static Arc<WebPkiServerVerifier>> {
    PLATFORM
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            if !loaded.errors.is_empty() {
                tracing::warn!(
                    errors = loaded.errors.len(),
                    "some platform CA certificates could not be loaded"
                );
            }
            let mut roots = RootCertStore::empty();
            let (_added, ignored) = roots.add_parsable_certificates(loaded.certs);
            if ignored > 0 {
                tracing::debug!(ignored, "platform CA certificates rustls cannot use");
            }
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .ok()
        })
        .as_ref()
}

/// Verifies servers against the platform's roots, waiting for them only in
/// [`ServerCertVerifier::verify_server_cert`].
#[derive(Debug)]
pub(crate) struct PlatformRoots {
    provider: Arc<CryptoProvider>,
}

impl PlatformRoots {
    /// A verifier whose roots start loading now (see [`start_loading`]).
    pub(crate) fn new(provider: Arc<CryptoProvider>) -> Self {
        start_loading(&provider);
        Self { provider }
    }
}

impl ServerCertVerifier for PlatformRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match platform(&self.provider) {
            Some(verifier) => verifier.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            // No root at all: nobody is trusted, as with an empty root store.
            None => Err(Error::InvalidCertificate(CertificateError::UnknownIssuer)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
