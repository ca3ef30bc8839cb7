//! A local GitLab-like OIDC issuer: discovery document and JWKS over HTTP on loopback.

use super::IssuerKey;
use axum::Json;
use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The path of the discovery document.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// The path of the JWKS, where GitLab serves it.
pub const JWKS_PATH: &str = "/oauth/discovery/keys";

/// Serves what Vault/OpenBao fetch to verify GitLab ID tokens.
///
/// `GET /.well-known/openid-configuration` answers the discovery document (its `issuer` is
/// the base URL, exactly, as OIDC discovery requires) and `GET /oauth/discovery/keys` the
/// JWKS with the key's `kid`, `n` and `e`.
#[derive(Clone)]
pub struct Issuer {
    base_url: String,
    discovery: Arc<Value>,
    jwks: Arc<Value>,
}

impl Issuer {
    /// An issuer whose URL is `base_url` (for example `http://127.0.0.1:8080`, no trailing
    /// slash), publishing `key`'s public half.
    pub fn new(base_url: impl Into<String>, key: &IssuerKey) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        let discovery = discovery_document(&base_url);
        let jwks = json!({ "keys": [key.public_jwk()] });
        Self {
            base_url,
            discovery: Arc::new(discovery),
            jwks: Arc::new(jwks),
        }
    }

    /// The issuer URL (the tokens' `iss`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The discovery document.
    pub fn discovery_document(&self) -> &Value {
        &self.discovery
    }

    /// The JWKS.
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        let discovery = Arc::clone(&self.discovery);
        let jwks = Arc::clone(&self.jwks);
        Router::new()
            .route(
                DISCOVERY_PATH,
                get(move || {
                    let body = Value::clone(&discovery);
                    async move { Json(body) }
                }),
            )
            .route(
                JWKS_PATH,
                get(move || {
                    let body = Value::clone(&jwks);
                    async move { Json(body) }
                }),
            )
    }

    /// Serves on `listener` until the task is dropped or the process ends.
    pub async fn serve(self, listener: TcpListener) -> io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Binds `127.0.0.1` on a free port and serves `key` in a background task of the
    /// current Tokio runtime: an issuer for one test.
    pub async fn spawn(key: &IssuerKey) -> io::Result<SpawnedIssuer> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let issuer = Self::new(format!("http://{addr}"), key);
        let url = issuer.base_url.clone();
        let task = tokio::spawn(issuer.serve(listener));
        Ok(SpawnedIssuer { url, addr, task })
    }
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// An issuer running in a background task; stopped when dropped.
#[derive(Debug)]
pub struct SpawnedIssuer {
    url: String,
    addr: SocketAddr,
    task: JoinHandle<io::Result<()>>,
}

impl SpawnedIssuer {
    /// The issuer URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for SpawnedIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The discovery document, with the members GitLab serves.
fn discovery_document(base: &str) -> Value {
    json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "introspection_endpoint": format!("{base}/oauth/introspect"),
        "userinfo_endpoint": format!("{base}/oauth/userinfo"),
        "jwks_uri": format!("{base}{JWKS_PATH}"),
        "scopes_supported": [
            "api", "read_api", "read_user", "read_repository", "write_repository",
            "openid", "profile", "email"
        ],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "grant_types_supported": [
            "authorization_code", "password", "client_credentials", "device_code",
            "refresh_token"
        ],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claim_types_supported": ["normal"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "sub_legacy", "name", "nickname",
            "preferred_username", "email", "email_verified", "website", "profile",
            "picture", "groups", "groups_direct", "https://gitlab.org/claims/groups/owner",
            "https://gitlab.org/claims/groups/maintainer",
            "https://gitlab.org/claims/groups/developer"
        ],
        "code_challenge_methods_supported": ["plain", "S256"],
    })
}
