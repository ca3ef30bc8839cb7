//! Test support: a local GitLab-like OIDC issuer, a token minter and the end-to-end fixtures.
//!
//! Only with the `testing` cargo feature, for tests and `cargo xtask`; never in a shipped
//! binary. The contract between `cargo xtask services up` and the tests is
//! `docs/e2e-fixtures.md`:
//!
//! - [`IssuerKey`](crate::testing::IssuerKey): an RSA signing key (PKCS#8 PEM on disk) and its
//!   JWK.
//! - [`Issuer`](crate::testing::Issuer): serves `/.well-known/openid-configuration` and
//!   `/oauth/discovery/keys` on loopback, as GitLab serves them, so Vault/OpenBao can verify
//!   tokens by discovery.
//! - [`Minter`](crate::testing::Minter) and [`GitlabClaims`](crate::testing::GitlabClaims):
//!   RS256 ID tokens with GitLab's claim set.
//! - [`E2eEnv`](crate::testing::E2eEnv): the env file written by `cargo xtask services up`,
//!   found through `CI_SECRETS_E2E_ENV`.
//!
//! Tokens and private keys are never printed: [`Minter::mint`](crate::testing::Minter::mint)
//! returns a [`SecretString`](secrecy::SecretString) and every `Debug` here is hand-written.

mod claims;
mod env;
mod issuer;
mod key;
mod minter;

pub use claims::{DEFAULT_AUDIENCE, GitlabClaims, RefType};
pub use env::{E2E_ENV_VAR, E2eEnv, keys};
pub use issuer::{Issuer, SpawnedIssuer};
pub use key::IssuerKey;
pub use minter::Minter;

use std::path::PathBuf;

/// Why a test fixture could not be made or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestingError {
    /// A file could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `write`, ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The signing key could not be generated, encoded or parsed.
    #[error("issuer key: {0}")]
    Key(String),
    /// A token could not be signed.
    #[error("cannot sign the ID token: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
    /// The end-to-end env file is missing a key or has a bad value.
    #[error("e2e env file {}: {reason}", path.display())]
    Env {
        /// The env file.
        path: PathBuf,
        /// What is wrong (names the key, never a value).
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use secrecy::ExposeSecret as _;
    use std::sync::OnceLock;

    /// One key for every test: generation is slow in unoptimised builds.
    fn key() -> &'static IssuerKey {
        static KEY: OnceLock<IssuerKey> = OnceLock::new();
        KEY.get_or_init(|| IssuerKey::generate().expect("key generation"))
    }

    #[test]
    fn minted_tokens_verify_against_the_published_jwk() {
        let issuer = Issuer::new("http://127.0.0.1:9/", key());
        assert_eq!(issuer.base_url(), "http://127.0.0.1:9");
        let jwk = &issuer.jwks()["keys"][0];
        assert_eq!(jwk["kid"], key().kid());
        let decoding = DecodingKey::from_rsa_components(
            jwk["n"].as_str().unwrap(),
            jwk["e"].as_str().unwrap(),
        )
        .unwrap();

        let minter = Minter::new(issuer.base_url(), key());
        let token = minter.mint(&GitlabClaims::new().with_tag("v1")).unwrap();
        let header = jsonwebtoken::decode_header(token.expose_secret()).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some(key().kid()));

        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[DEFAULT_AUDIENCE]);
        validation.set_issuer(&["http://127.0.0.1:9"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(
            token.expose_secret(),
            &decoding,
            &validation,
        )
        .unwrap();
        assert_eq!(data.claims["ref"], "v1");
        assert_eq!(data.claims["ref_type"], "tag");
    }

    #[test]
    fn the_pem_round_trips_through_a_0600_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("auth-oidc-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("issuer-key.pem");
        key().write_pem_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
        let again = IssuerKey::from_pem_file(&path).unwrap();
        assert_eq!(again.kid(), key().kid());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_never_shows_key_material() {
        let debug = format!("{:?} {:?}", key(), Minter::new("http://x", key()));
        assert!(debug.contains("** redacted **"), "{debug}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
        assert!(!debug.contains(key().public_components().0), "{debug}");
    }

    #[tokio::test]
    async fn the_issuer_serves_discovery_and_keys() {
        let running = Issuer::spawn(key()).await.unwrap();
        let client = reqwest::Client::new();
        let discovery: serde_json::Value = client
            .get(format!(
                "{}/.well-known/openid-configuration",
                running.url()
            ))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(discovery["issuer"], running.url());
        assert_eq!(
            discovery["id_token_signing_alg_values_supported"][0],
            "RS256"
        );
        let jwks_uri = discovery["jwks_uri"].as_str().unwrap();
        assert_eq!(jwks_uri, format!("{}/oauth/discovery/keys", running.url()));
        let jwks: serde_json::Value = client
            .get(jwks_uri)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(jwks["keys"][0]["kid"], key().kid());
        assert_eq!(jwks["keys"][0]["kty"], "RSA");
    }
}
