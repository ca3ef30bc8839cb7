//! A test CA and a server certificate for the Azure host names (or any names: the bench's
//! TLS proxies use it for `127.0.0.1`), and a TLS listener for axum.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::server::TlsStream;

/// How long a client gets to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A fresh CA and a server certificate it signed.
pub struct Pki {
    /// The CA certificate, PEM (what clients trust).
    pub ca_pem: String,
    server_der: CertificateDer<'static>,
    server_key: Vec<u8>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("server_key", &"** redacted **")
            .finish_non_exhaustive()
    }
}

/// Why the PKI could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make the test PKI: {0}")]
pub struct PkiError(String);

impl Pki {
    /// A CA named "cloud-fakes test CA" and a server certificate for `names` (DNS names,
    /// wildcards or IP addresses).
    pub fn generate(names: &[String]) -> Result<Self, PkiError> {
        let e = |err: rcgen::Error| PkiError(err.to_string());
        let ca_key = KeyPair::generate().map_err(e)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "cloud-fakes test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate().map_err(e)?;
        let mut server = CertificateParams::new(names.to_vec()).map_err(e)?;
        server.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let cert = server.signed_by(&key, &issuer).map_err(e)?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            server_der: cert.der().clone(),
            server_key: key.serialize_der(),
        })
    }

    /// A rustls acceptor serving the server certificate over HTTP/1.1.
    pub fn acceptor(&self) -> Result<TlsAcceptor, PkiError> {
        Ok(TlsAcceptor::from(self.server_config(&[b"http/1.1"])?))
    }

    /// A rustls server configuration for the server certificate offering `alpn` (in order
    /// of preference, e.g. `[b"h2", b"http/1.1"]`): what `loopback-proxy` terminates TLS with.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, PkiError> {
        let provider = Arc::new(aws_lc_rs::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone()));
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PkiError(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![self.server_der.clone()], key)
            .map_err(|e| PkiError(e.to_string()))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

/// A TLS listener for `axum::serve`: handshakes run in their own tasks, so one slow client
/// does not hold up the others; failed handshakes are dropped.
#[derive(Debug)]
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Wraps `listener`.
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let acceptor = acceptor.clone();
                let sender = tx.clone();
                tokio::spawn(async move {
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                    {
                        let _ = sender.send((tls, peer)).await;
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(Self { local, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(pair) => pair,
            // The accept loop never ends while the listener lives; park forever if it did.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
