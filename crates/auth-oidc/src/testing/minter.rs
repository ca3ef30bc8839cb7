//! Signs GitLab-like ID tokens with the issuer's key.

use super::{GitlabClaims, IssuerKey, TestingError};
use crate::{Clock, SystemClock};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// Mints RS256 ID tokens as the local issuer.
///
/// ```no_run
/// # fn main() -> Result<(), auth_oidc::testing::TestingError> {
/// use auth_oidc::testing::{GitlabClaims, IssuerKey, Minter};
/// use secrecy::ExposeSecret as _;
/// let key = IssuerKey::from_pem_file("target/xtask/issuer-key.pem".as_ref())?;
/// let minter = Minter::new("http://127.0.0.1:8080", &key);
/// let token = minter.mint(&GitlabClaims::new().with_tag("auto-deploy-1"))?;
/// assert_eq!(token.expose_secret().split('.').count(), 3);
/// # Ok(()) }
/// ```
pub struct Minter {
    issuer: String,
    kid: String,
    key: EncodingKey,
    clock: Arc<dyn Clock>,
}

impl Minter {
    /// A minter for issuer URL `issuer` (the tokens' `iss`), signing with `key`.
    pub fn new(issuer: impl Into<String>, key: &IssuerKey) -> Self {
        Self {
            issuer: issuer.into(),
            kid: key.kid().to_owned(),
            key: key.encoding_key(),
            clock: Arc::new(SystemClock),
        }
    }

    /// A minter whose key is read from a PKCS#8 PEM file.
    pub fn from_pem_file(issuer: impl Into<String>, path: &Path) -> Result<Self, TestingError> {
        Ok(Self::new(issuer, &IssuerKey::from_pem_file(path)?))
    }

    /// Uses `clock` for `iat`, `nbf` and `exp` instead of the system clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The issuer URL (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The key id put in the tokens' header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs `claims` as an RS256 JWT with the key id in its header.
    pub fn mint(&self, claims: &GitlabClaims) -> Result<SecretString, TestingError> {
        let payload = claims.to_payload(&self.issuer, self.clock.now_unix());
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".to_owned());
        jsonwebtoken::encode(&header, &payload, &self.key)
            .map(SecretString::from)
            .map_err(TestingError::Sign)
    }
}

impl fmt::Debug for Minter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Minter")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .field("key", &"** redacted **")
            .finish_non_exhaustive()
    }
}
