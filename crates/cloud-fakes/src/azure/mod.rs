//! Fake Entra ID and Key Vault, one TLS listener, dispatched on the `Host` header:
//! `login.microsoftonline.com` is Entra, `<vault>.vault.azure.net` a vault.

mod entra;
mod key_vault;

use crate::counts::Counters;
use crate::fixture::AzureFixture;
use crate::jwt::JwksCache;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// Entra's public-cloud host.
pub const LOGIN_HOST: &str = "login.microsoftonline.com";
/// The DNS suffix of public-cloud vaults.
pub const VAULT_SUFFIX: &str = ".vault.azure.net";
/// The Key Vault resource (the challenge's `resource`, the token's audience).
pub const VAULT_RESOURCE: &str = "https://vault.azure.net";

/// Whether `name` is a valid Key Vault object name (`^[0-9A-Za-z-]{1,127}$`).
pub fn valid_secret_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// An access token the fake Entra issued.
#[derive(Debug, Clone)]
pub(crate) struct EntraToken {
    pub(crate) tenant: String,
    pub(crate) client_id: String,
    pub(crate) object_id: String,
    pub(crate) resource: String,
    pub(crate) expires_at: u64,
}

/// The shared state of the Azure fakes.
#[derive(Clone)]
pub struct AzureState {
    pub(crate) fixture: Arc<AzureFixture>,
    pub(crate) jwks: JwksCache,
    pub(crate) counters: Counters,
    pub(crate) tokens: Arc<Mutex<BTreeMap<String, EntraToken>>>,
}

impl fmt::Debug for AzureState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureState")
            .field("tenants", &self.fixture.tenants.len())
            .field("vaults", &self.fixture.vaults.len())
            .field("tokens", &"** redacted **")
            .finish_non_exhaustive()
    }
}

impl AzureState {
    /// State serving `fixture`, counting into `counters`.
    pub fn new(fixture: AzureFixture, counters: Counters) -> Self {
        Self {
            fixture: Arc::new(fixture),
            jwks: JwksCache::new(),
            counters,
            tokens: Arc::default(),
        }
    }

    pub(crate) fn token(&self, token: &str) -> Option<EntraToken> {
        let tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens
            .get(token)
            .filter(|t| t.expires_at > crate::util::now_unix())
            .cloned()
    }

    pub(crate) fn store(&self, token: String, issued: EntraToken) {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(token, issued);
    }
}

/// The request as the dispatcher hands it on. `Debug` omits the headers and the body (they
/// carry tokens and assertions).
pub(crate) struct Request {
    pub(crate) method: Method,
    /// The `Host` header as sent (with a port when not 443).
    pub(crate) host: String,
    pub(crate) path: String,
    pub(crate) query: BTreeMap<String, String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("host", &self.host)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Request {
    /// The host name without the port, lowercased.
    pub(crate) fn hostname(&self) -> String {
        let host = self
            .host
            .rsplit_once(':')
            .map_or(self.host.as_str(), |(h, p)| {
                if p.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    self.host.as_str()
                }
            });
        host.to_ascii_lowercase()
    }
}

/// The routes (everything goes through the host dispatcher).
pub fn router(state: AzureState) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

async fn dispatch(
    State(state): State<AzureState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let request = Request {
        method,
        host,
        path: uri.path().to_owned(),
        query: crate::util::form(uri.query().unwrap_or_default().as_bytes()),
        headers,
        body,
    };
    let hostname = request.hostname();
    if hostname == LOGIN_HOST {
        entra::handle(&state, &request).await
    } else if let Some(vault) = hostname.strip_suffix(VAULT_SUFFIX) {
        key_vault::handle(&state, vault, &request)
    } else {
        (
            StatusCode::MISDIRECTED_REQUEST,
            format!("the Azure fake serves {LOGIN_HOST} and *{VAULT_SUFFIX}, not {hostname}\n"),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_omits_tokens() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            axum::http::HeaderValue::from_static("Bearer canary-token-1234"),
        );
        let request = Request {
            method: Method::POST,
            host: LOGIN_HOST.to_owned(),
            path: "/t/oauth2/v2.0/token".to_owned(),
            query: BTreeMap::new(),
            headers,
            body: Bytes::from_static(b"client_assertion=canary-assertion-5678"),
        };
        let state = AzureState::new(AzureFixture::default(), Counters::default());
        state.store(
            "canary-access-token-9".to_owned(),
            EntraToken {
                tenant: "t".into(),
                client_id: "c".into(),
                object_id: "o".into(),
                resource: VAULT_RESOURCE.into(),
                expires_at: u64::MAX,
            },
        );
        let debug = format!("{request:?} {state:?}");
        assert!(!debug.contains("canary"), "{debug}");
        assert!(state.token("canary-access-token-9").is_some());
    }

    #[test]
    fn secret_names() {
        assert!(valid_secret_name("db-password"));
        assert!(valid_secret_name(&"a".repeat(127)));
        assert!(!valid_secret_name(&"a".repeat(128)));
        assert!(!valid_secret_name(""));
        assert!(!valid_secret_name("a_b"));
        assert!(!valid_secret_name("a/b"));
    }
}
