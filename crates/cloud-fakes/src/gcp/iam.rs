//! `POST /v1/projects/-/serviceAccounts/<email>:generateAccessToken` (IAM Credentials).

use super::{GcpState, Principal, api_error};
use crate::counts::Kind;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The default and the longest lifetime without the org policy that allows 12 h.
const MAX_LIFETIME: u64 = 3600;

pub(crate) async fn generate_access_token(
    State(state): State<GcpState>,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(email) = rest
        .strip_prefix("projects/-/serviceAccounts/")
        .and_then(|r| r.strip_suffix(":generateAccessToken"))
    else {
        return api_error(StatusCode::NOT_FOUND, "NOT_FOUND", "Method not found.");
    };
    state.counters.hit(Kind::GcpGenerateAccessToken);
    if let Some(status) = state.counters.take_fault(Kind::GcpGenerateAccessToken) {
        return super::fault(status);
    }
    let Some(token) = crate::util::bearer(&headers) else {
        return super::missing_credentials();
    };
    let Some(principal) = state.principal(token) else {
        return super::invalid_credentials();
    };
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "Invalid JSON payload received.",
            );
        }
    };
    let scopes = request["scope"].as_array().map_or(0, Vec::len);
    if scopes == 0 {
        return api_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Scope required.",
        );
    }
    let lifetime = match request.get("lifetime").and_then(Value::as_str) {
        None => MAX_LIFETIME,
        Some(text) => match text.strip_suffix('s').and_then(|n| n.parse::<f64>().ok()) {
            Some(secs) if secs > 0.0 && secs <= MAX_LIFETIME as f64 => secs as u64,
            _ => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    "The lifetime must be between 1s and 3600s.",
                );
            }
        },
    };
    let denied = || {
        api_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not \
             exist).",
        )
    };
    let Some(account) = state
        .fixture
        .service_accounts
        .iter()
        .find(|a| a.email == email)
    else {
        return denied();
    };
    if !account.members.iter().any(|m| principal.is_member(m)) {
        return denied();
    }
    let (access_token, expires_at) =
        state.issue(Principal::ServiceAccount(account.email.clone()), lifetime);
    let body = json!({
        "accessToken": access_token,
        "expireTime": crate::util::rfc3339(expires_at),
    });
    let mut response = (StatusCode::OK, super::json_text(&body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response
}
