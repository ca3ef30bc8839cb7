//! The issuer's RSA signing key.

use super::TestingError;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use rsa::traits::PublicKeyParts as _;
use secrecy::{ExposeSecret as _, SecretSlice, SecretString};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Size of generated keys, in bits (GitLab signs with RSA-2048 too).
pub const KEY_BITS: usize = 2048;

/// An RSA signing key with its public JWK parts and key id.
///
/// The key id is the RFC 7638 JWK thumbprint (SHA-256, base64url), which is also how GitLab
/// names its keys. `Debug` shows only the key id.
pub struct IssuerKey {
    pkcs8_pem: SecretString,
    pkcs1_der: SecretSlice<u8>,
    kid: String,
    n: String,
    e: String,
}

impl IssuerKey {
    /// Generates a fresh RSA-2048 key.
    ///
    /// This is slow in unoptimised builds (seconds): generate once and keep the PEM, as
    /// `cargo xtask services up` does.
    pub fn generate() -> Result<Self, TestingError> {
        let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, KEY_BITS)
            .map_err(|e| TestingError::Key(format!("cannot generate an RSA key: {e}")))?;
        Self::from_rsa(key)
    }

    /// Parses a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, TestingError> {
        let key = RsaPrivateKey::from_pkcs8_pem(pem)
            .map_err(|e| TestingError::Key(format!("not a PKCS#8 PEM RSA private key: {e}")))?;
        Self::from_rsa(key)
    }

    /// Reads a PKCS#8 PEM private key file.
    pub fn from_pem_file(path: &Path) -> Result<Self, TestingError> {
        let pem =
            SecretString::from(fs::read_to_string(path).map_err(|source| TestingError::Io {
                action: "read",
                path: path.to_owned(),
                source,
            })?);
        Self::from_pkcs8_pem(pem.expose_secret())
    }

    /// Writes the private key as PKCS#8 PEM, mode 0600, replacing the file atomically.
    pub fn write_pem_file(&self, path: &Path) -> Result<(), TestingError> {
        let io = |action: &'static str| {
            move |source| TestingError::Io {
                action,
                path: path.to_owned(),
                source,
            }
        };
        let tmp = path.with_extension("pem.tmp");
        let _ = fs::remove_file(&tmp);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("create"))?;
        file.write_all(self.pkcs8_pem.expose_secret().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io("write"))?;
        fs::rename(&tmp, path).map_err(io("rename into place"))
    }

    fn from_rsa(key: RsaPrivateKey) -> Result<Self, TestingError> {
        let pkcs8_pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| TestingError::Key(format!("cannot encode PKCS#8: {e}")))?;
        let pkcs1_der = key
            .to_pkcs1_der()
            .map_err(|e| TestingError::Key(format!("cannot encode PKCS#1: {e}")))?;
        let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
        // RFC 7638: the required members, in lexicographic order, no whitespace.
        let thumbprint_input = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint_input.as_bytes()));
        Ok(Self {
            pkcs8_pem: SecretString::from(pkcs8_pem.as_str()),
            pkcs1_der: SecretSlice::from(pkcs1_der.as_bytes().to_vec()),
            kid,
            n,
            e,
        })
    }

    /// The key id (`kid`) in the JWKS and in minted tokens' header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (`kty`, `kid`, `use`, `alg`, `n`, `e`), as GitLab publishes it.
    pub fn public_jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "RSA",
            "kid": self.kid,
            "e": self.e,
            "n": self.n,
            "use": "sig",
            "alg": "RS256",
        })
    }

    /// The public modulus and exponent, base64url without padding.
    pub fn public_components(&self) -> (&str, &str) {
        (&self.n, &self.e)
    }

    pub(crate) fn encoding_key(&self) -> jsonwebtoken::EncodingKey {
        jsonwebtoken::EncodingKey::from_rsa_der(self.pkcs1_der.expose_secret())
    }
}

impl fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerKey")
            .field("kid", &self.kid)
            .field("private_key", &"** redacted **")
            .finish()
    }
}
