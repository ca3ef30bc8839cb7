//! Fake Google STS, Secret Manager and IAM Credentials on one HTTP listener.
//!
//! - `POST /v1/token`: STS token exchange (JSON camelCase or snake_case, or a form body).
//! - `GET /v1/projects/<p>[/locations/<l>]/secrets/<s>/versions/<v>:access`: Secret Manager.
//! - `POST /v1/projects/-/serviceAccounts/<email>:generateAccessToken`: IAM Credentials.
//!
//! Paths are the same on every Google host, so one listener serves all three; point
//! `token_url`, `api_endpoint` and the impersonation URL at it.

mod iam;
mod secret_manager;
mod sts;

use crate::counts::Counters;
use crate::fixture::GcpFixture;
use crate::jwt::JwksCache;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// Who an access token the fake issued stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    /// A federated identity from a workload identity pool.
    Federated {
        /// `projects/<n>/locations/global/workloadIdentityPools/<pool>`.
        pool: String,
        /// The mapped `google.subject`.
        subject: String,
        /// Mapped `attribute.*` values, by attribute name (without `attribute.`).
        attributes: BTreeMap<String, String>,
    },
    /// An impersonated service account.
    ServiceAccount(String),
}

impl Principal {
    /// Whether an IAM member string (`principal://…`, `principalSet://…`, `serviceAccount:…`)
    /// covers this principal.
    pub(crate) fn is_member(&self, member: &str) -> bool {
        match self {
            Self::ServiceAccount(email) => member
                .strip_prefix("serviceAccount:")
                .is_some_and(|m| m == email),
            Self::Federated {
                pool,
                subject,
                attributes,
            } => {
                if let Some(rest) = member.strip_prefix("principal://iam.googleapis.com/") {
                    return rest == format!("{pool}/subject/{subject}");
                }
                let Some(rest) = member.strip_prefix("principalSet://iam.googleapis.com/") else {
                    return false;
                };
                let Some(tail) = rest
                    .strip_prefix(pool.as_str())
                    .and_then(|t| t.strip_prefix('/'))
                else {
                    return false;
                };
                if tail == "*" {
                    return true;
                }
                tail.strip_prefix("attribute.")
                    .and_then(|t| t.split_once('/'))
                    .is_some_and(|(name, value)| attributes.get(name).is_some_and(|v| v == value))
            }
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub(crate) principal: Principal,
    pub(crate) expires_at: u64,
}

/// The shared state of the Google fakes.
#[derive(Clone)]
pub struct GcpState {
    pub(crate) fixture: Arc<GcpFixture>,
    pub(crate) jwks: JwksCache,
    pub(crate) counters: Counters,
    pub(crate) tokens: Arc<Mutex<BTreeMap<String, Issued>>>,
}

impl fmt::Debug for GcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpState")
            .field("providers", &self.fixture.providers.len())
            .field("secrets", &self.fixture.secrets.len())
            .field("tokens", &"** redacted **")
            .finish_non_exhaustive()
    }
}

impl GcpState {
    /// State serving `fixture`, counting into `counters`.
    pub fn new(fixture: GcpFixture, counters: Counters) -> Self {
        Self {
            fixture: Arc::new(fixture),
            jwks: JwksCache::new(),
            counters,
            tokens: Arc::default(),
        }
    }

    pub(crate) fn issue(&self, principal: Principal, lifetime: u64) -> (String, u64) {
        let token = format!("ya29.fake-{}", crate::util::random_hex(24));
        let expires_at = crate::util::now_unix() + lifetime;
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                token.clone(),
                Issued {
                    principal,
                    expires_at,
                },
            );
        (token, expires_at)
    }

    /// The principal of a live token.
    pub(crate) fn principal(&self, token: &str) -> Option<Principal> {
        let tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let issued = tokens.get(token)?;
        (issued.expires_at > crate::util::now_unix()).then(|| issued.principal.clone())
    }

    /// The project number for a project id or number.
    pub(crate) fn project_number<'a>(&'a self, project: &'a str) -> &'a str {
        self.fixture
            .project_ids
            .get(project)
            .map_or(project, String::as_str)
    }
}

/// The routes.
pub fn router(state: GcpState) -> Router {
    Router::new()
        .route("/v1/token", post(sts::token))
        .route(
            "/v1/{*rest}",
            get(secret_manager::access).post(iam::generate_access_token),
        )
        .with_state(state)
}

/// Google's API error body: `{"error":{"code":…,"message":…,"status":…}}`.
pub(crate) fn api_error(code: StatusCode, status: &str, message: &str) -> Response {
    let body = json!({
        "error": { "code": code.as_u16(), "message": message, "status": status }
    });
    let mut response = (code, json_text(&body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    if code == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                r#"Bearer realm="https://accounts.google.com/", error="invalid_token""#,
            ),
        );
    }
    response
}

/// An injected fault (`POST /_fake/faults`) in Google's error shape, with `Retry-After: 1`.
pub(crate) fn fault(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let (name, message) = match status {
        429 => (
            "RESOURCE_EXHAUSTED",
            "Quota exceeded for the service; retry later.",
        ),
        500 => ("INTERNAL", "Internal error encountered."),
        504 => (
            "DEADLINE_EXCEEDED",
            "The deadline expired before the operation could complete.",
        ),
        _ => ("UNAVAILABLE", "The service is currently unavailable."),
    };
    let mut response = api_error(code, name, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A JSON value as pretty text, as Google's front ends send it.
pub(crate) fn json_text(body: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(body).unwrap_or_default();
    text.push('\n');
    text
}

/// The 401 for a request with no token.
pub(crate) fn missing_credentials() -> Response {
    api_error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        "Request is missing required authentication credential. Expected OAuth 2 access token, \
         login cookie or other valid authentication credential. See \
         https://developers.google.com/identity/sign-in/web/devconsole-project.",
    )
}

/// The 401 for a token the fake did not issue, or one that expired.
pub(crate) fn invalid_credentials() -> Response {
    api_error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login \
         cookie or other valid authentication credential. See \
         https://developers.google.com/identity/sign-in/web/devconsole-project.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_omits_tokens() {
        let state = GcpState::new(GcpFixture::default(), Counters::default());
        let (token, _) = state.issue(Principal::ServiceAccount("a@b".into()), 60);
        let debug = format!("{state:?}");
        assert!(!debug.contains(&token), "{debug}");
        assert_eq!(
            state.principal(&token),
            Some(Principal::ServiceAccount("a@b".into()))
        );
        assert_eq!(state.principal("ya29.forged"), None);
    }

    #[test]
    fn members_match_principals() {
        let pool = "projects/1/locations/global/workloadIdentityPools/p".to_owned();
        let principal = Principal::Federated {
            pool: pool.clone(),
            subject: "sub-1".to_owned(),
            attributes: BTreeMap::from([("gitlab_project_id".to_owned(), "42".to_owned())]),
        };
        assert!(principal.is_member(&format!(
            "principal://iam.googleapis.com/{pool}/subject/sub-1"
        )));
        assert!(!principal.is_member(&format!(
            "principal://iam.googleapis.com/{pool}/subject/sub-2"
        )));
        assert!(principal.is_member(&format!(
            "principalSet://iam.googleapis.com/{pool}/attribute.gitlab_project_id/42"
        )));
        assert!(!principal.is_member(&format!(
            "principalSet://iam.googleapis.com/{pool}/attribute.gitlab_project_id/43"
        )));
        assert!(principal.is_member(&format!("principalSet://iam.googleapis.com/{pool}/*")));
        assert!(!principal.is_member("principalSet://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/other/*"));
        assert!(!principal.is_member("serviceAccount:a@b"));
        assert!(Principal::ServiceAccount("a@b".into()).is_member("serviceAccount:a@b"));
    }
}
