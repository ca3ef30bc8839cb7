//! `POST /v1/token`: the Security Token Service's token exchange (RFC 8693) for an OIDC
//! workload identity pool provider.

use super::{GcpState, Principal};
use crate::counts::Kind;
use crate::fixture::WifProvider;
use crate::jwt;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const SUBJECT_TYPES: [&str; 2] = [
    "urn:ietf:params:oauth:token-type:id_token",
    "urn:ietf:params:oauth:token-type:jwt",
];
/// The most bytes a mapped `google.subject` may have.
pub(crate) const SUBJECT_LIMIT: usize = 127;
/// How long an issued federated token lives.
const LIFETIME: u64 = 3599;

/// An OAuth error as Google's STS answers it: 400 with `error` and `error_description`.
#[derive(Debug)]
struct OauthError {
    error: &'static str,
    description: String,
}

fn oauth_error(error: &'static str, description: &str) -> OauthError {
    OauthError {
        error,
        description: description.to_owned(),
    }
}

impl IntoResponse for OauthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut response = (StatusCode::BAD_REQUEST, super::json_text(&body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        response
    }
}

/// The request fields by their proto names; JSON accepts the proto name or lowerCamelCase
/// (proto3 JSON mapping), the form body the proto names.
fn fields(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(BTreeMap<String, String>, &'static str), OauthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") {
        let value: Value = serde_json::from_slice(body)
            .map_err(|_| oauth_error("invalid_request", "Invalid JSON payload received."))?;
        let Value::Object(map) = value else {
            return Err(oauth_error(
                "invalid_request",
                "Invalid JSON payload received.",
            ));
        };
        let mut out = BTreeMap::new();
        for (key, value) in map {
            let Some(text) = value.as_str() else { continue };
            out.insert(snake_case(&key), text.to_owned());
        }
        Ok((out, "json"))
    } else {
        let mut out = BTreeMap::new();
        for (key, value) in crate::util::form(body) {
            out.insert(snake_case(&key), value);
        }
        Ok((out, "form"))
    }
}

fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `//iam.googleapis.com/projects/<n>/locations/global/workloadIdentityPools/<pool>/providers/<p>`
/// → `(n, pool, provider)`.
fn parse_audience(audience: &str) -> Option<(&str, &str, &str)> {
    let rest = audience.strip_prefix("//iam.googleapis.com/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [
            "projects",
            n,
            "locations",
            "global",
            "workloadIdentityPools",
            pool,
            "providers",
            p,
        ] if !n.is_empty() && !pool.is_empty() && !p.is_empty() => Some((n, pool, p)),
        _ => None,
    }
}

pub(crate) async fn token(
    State(state): State<GcpState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.counters.hit(Kind::GcpStsExchange);
    if let Some(status) = state.counters.take_fault(Kind::GcpStsExchange) {
        return super::fault(status);
    }
    match exchange(&state, &headers, &body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn exchange(
    state: &GcpState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OauthError> {
    let (fields, encoding) = fields(headers, body)?;
    state.counters.sts_encoding(encoding);
    let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();

    if get("grant_type") != GRANT_TYPE {
        return Err(oauth_error(
            "invalid_request",
            "Invalid value for \"grant_type\". Expected \
             \"urn:ietf:params:oauth:grant-type:token-exchange\".",
        ));
    }
    let requested = get("requested_token_type");
    if requested != ACCESS_TOKEN_TYPE {
        return Err(oauth_error(
            "invalid_request",
            "Invalid value for \"requested_token_type\". Expected \
             \"urn:ietf:params:oauth:token-type:access_token\".",
        ));
    }
    if !SUBJECT_TYPES.contains(&get("subject_token_type")) {
        return Err(oauth_error(
            "invalid_request",
            "Invalid value for \"subject_token_type\". For an OIDC provider use \
             \"urn:ietf:params:oauth:token-type:id_token\" or \
             \"urn:ietf:params:oauth:token-type:jwt\".",
        ));
    }
    let audience = get("audience");
    let Some((number, pool, provider_id)) = parse_audience(audience) else {
        return Err(oauth_error(
            "invalid_request",
            "Invalid value for \"audience\". This value should be the full resource name of the \
             Identity Provider. See https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token \
             for the list of possible formats.",
        ));
    };
    let provider = state
        .fixture
        .providers
        .iter()
        .find(|p| {
            p.project_number == number && p.pool == pool && p.provider == provider_id && !p.disabled
        })
        .ok_or_else(|| {
            oauth_error(
                "invalid_target",
                "The target service indicated by the \"audience\" parameters is invalid. This \
                 might either be because the pool or provider is disabled or deleted or because \
                 it doesn't exist.",
            )
        })?;

    let subject_token = get("subject_token");
    if subject_token.is_empty() {
        return Err(oauth_error(
            "invalid_request",
            "The request is missing a required parameter: \"subject_token\".",
        ));
    }
    let principal = verify(state, provider, subject_token).await?;
    let (access_token, _) = state.issue(principal, LIFETIME);
    let body = json!({
        "access_token": access_token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": LIFETIME,
    });
    let mut response = (StatusCode::OK, super::json_text(&body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    Ok(response)
}

/// Checks the subject token as an OIDC provider does and maps it to a principal.
async fn verify(
    state: &GcpState,
    provider: &WifProvider,
    token: &str,
) -> Result<Principal, OauthError> {
    let Some(parsed) = jwt::parse(token) else {
        return Err(oauth_error(
            "invalid_grant",
            "Unable to parse the ID Token.",
        ));
    };
    let iss = parsed.str_claim("iss").unwrap_or_default();
    if iss.trim_end_matches('/') != provider.issuer.trim_end_matches('/') {
        return Err(oauth_error(
            "invalid_grant",
            &format!(
                "The issuer in ID Token {iss} does not match the expected ISSUER {}.",
                provider.issuer
            ),
        ));
    }
    if state
        .jwks
        .verify(token, &parsed, &provider.issuer)
        .await
        .is_err()
    {
        return Err(oauth_error(
            "invalid_grant",
            "Invalid ID Token signature. The JWT signature could not be verified with the keys of \
             the issuer.",
        ));
    }
    let allowed: Vec<String> = if provider.allowed_audiences.is_empty() {
        vec![
            format!("https://iam.googleapis.com/{}", provider.resource()),
            format!("//iam.googleapis.com/{}", provider.resource()),
        ]
    } else {
        provider.allowed_audiences.clone()
    };
    let audiences = parsed.audiences();
    if !audiences.iter().any(|a| allowed.contains(a)) {
        return Err(oauth_error(
            "invalid_grant",
            &format!(
                "The audience in ID Token [{}] does not match the expected audience.",
                audiences.join(", ")
            ),
        ));
    }
    let now = crate::util::now_unix();
    match parsed.num_claim("exp") {
        Some(exp) if exp > now => {}
        _ => {
            return Err(oauth_error(
                "invalid_grant",
                "ID Token has expired. Request a new ID Token.",
            ));
        }
    }
    if parsed.num_claim("nbf").is_some_and(|nbf| nbf > now + 60) {
        return Err(oauth_error("invalid_grant", "ID Token is not yet valid."));
    }

    let claim_text = |name: &str| -> Option<String> {
        match parsed.claims.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    };
    let mut subject = None;
    let mut attributes = BTreeMap::new();
    for (target, claim) in provider.mapping() {
        let Some(value) = claim_text(&claim) else {
            continue;
        };
        if target == "google.subject" {
            subject = Some(value);
        } else if let Some(name) = target.strip_prefix("attribute.") {
            attributes.insert(name.to_owned(), value);
        }
    }
    let Some(subject) = subject.filter(|s| !s.is_empty()) else {
        return Err(oauth_error(
            "invalid_request",
            "The mapped attribute google.subject must not be empty. Check the attribute mapping \
             of the provider.",
        ));
    };
    if subject.len() > SUBJECT_LIMIT {
        return Err(oauth_error(
            "invalid_request",
            "The size of mapped attribute google.subject exceeds the 127 bytes limit. Either \
             modify your attribute mapping or the incoming assertion to produce a mapped \
             attribute that is less than 127 bytes.",
        ));
    }
    for (claim, expected) in &provider.attribute_condition {
        if claim_text(claim).as_deref() != Some(expected.as_str()) {
            return Err(oauth_error(
                "unauthorized_client",
                "The given credential is rejected by the attribute condition.",
            ));
        }
    }
    Ok(Principal::Federated {
        pool: provider.pool_resource(),
        subject,
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_parse_only_in_the_canonical_form() {
        assert_eq!(
            parse_audience(
                "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q"
            ),
            Some(("1", "p", "q"))
        );
        for bad in [
            "https://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q",
            "//iam.googleapis.com/projects/1/locations/us/workloadIdentityPools/p/providers/q",
            "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p",
            "",
        ] {
            assert_eq!(parse_audience(bad), None, "{bad}");
        }
    }

    #[test]
    fn camel_case_becomes_proto_names() {
        assert_eq!(snake_case("subjectTokenType"), "subject_token_type");
        assert_eq!(snake_case("subject_token_type"), "subject_token_type");
    }
}
