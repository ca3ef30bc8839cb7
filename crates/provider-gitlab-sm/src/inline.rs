//! OpenBao inline authentication headers (OpenBao ≥ 2.4): the login path, one header per
//! login parameter, and the header OpenBao sets when the login failed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use provider_http::Failure;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrets_core::ErrorKind;
use zeroize::Zeroizing;

/// The login path, relative to `/v1/`.
pub(crate) const AUTH_PATH: HeaderName = HeaderName::from_static("x-vault-inline-auth-path");
/// The `jwt` login parameter.
pub(crate) const PARAM_JWT: HeaderName =
    HeaderName::from_static("x-vault-inline-auth-parameter-jwt");
/// The `role` login parameter.
pub(crate) const PARAM_ROLE: HeaderName =
    HeaderName::from_static("x-vault-inline-auth-parameter-role");
/// Set to `true` by OpenBao on an answer whose inline login failed.
pub(crate) const AUTH_FAILED: HeaderName = HeaderName::from_static("x-vault-inline-auth-failed");
/// The namespace header; sent empty, since the namespace is inside both paths.
pub(crate) const NAMESPACE: HeaderName = HeaderName::from_static("x-vault-namespace");
/// Marks API requests (OpenBao's client sends it).
pub(crate) const REQUEST: HeaderName = HeaderName::from_static("x-vault-request");

/// One inline login parameter as OpenBao reads it: the **unpadded** base64url of the JSON
/// object `{"key": <name>, "value": <value>}` (OpenBao answers 500 to padded base64).
pub fn encode_parameter(key: &str, value: &str) -> Zeroizing<String> {
    let json = Zeroizing::new(serde_json::json!({ "key": key, "value": value }).to_string());
    Zeroizing::new(URL_SAFE_NO_PAD.encode(json.as_bytes()))
}

/// The headers of every read of one identity. The JWT header is marked sensitive.
pub(crate) fn headers(auth_path: &str, jwt: &str, role: &str) -> Result<HeaderMap, Failure> {
    let mut headers = HeaderMap::new();
    headers.insert(REQUEST, HeaderValue::from_static("true"));
    headers.insert(NAMESPACE, HeaderValue::from_static(""));
    let path = HeaderValue::from_str(auth_path).map_err(|_| {
        Failure::new(
            ErrorKind::InvalidSpec,
            format!("the inline auth path {auth_path:?} is not a valid header value"),
        )
    })?;
    headers.insert(AUTH_PATH, path);
    // Base64url text is always a valid header value.
    let mut jwt = HeaderValue::from_str(&encode_parameter("jwt", jwt))
        .map_err(|_| Failure::new(ErrorKind::Unexpected, "cannot encode the inline JWT"))?;
    jwt.set_sensitive(true);
    headers.insert(PARAM_JWT, jwt);
    let role = HeaderValue::from_str(&encode_parameter("role", role))
        .map_err(|_| Failure::new(ErrorKind::Unexpected, "cannot encode the inline role"))?;
    headers.insert(PARAM_ROLE, role);
    Ok(headers)
}

/// Whether OpenBao said the inline login failed.
pub(crate) fn login_failed(headers: &HeaderMap) -> bool {
    headers
        .get(AUTH_FAILED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_unpadded_base64url_of_key_and_value() {
        // {"key":"role","value":"all_pipelines"} is 38 bytes: padded base64 would end in "=".
        let encoded = encode_parameter("role", "all_pipelines");
        assert!(!encoded.contains('='), "{}", &*encoded);
        let decoded = URL_SAFE_NO_PAD.decode(encoded.as_bytes()).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"key": "role", "value": "all_pipelines"})
        );
        // Values whose standard base64 has `+` or `/` use `-` and `_`.
        let encoded = encode_parameter("jwt", "\u{3ff}\u{3ff}?>");
        assert!(!encoded.contains('+') && !encoded.contains('/'));
    }

    #[test]
    fn headers_carry_an_empty_namespace_and_no_token() {
        let h = headers("ns/auth/pipeline_jwt/login", "a.b.c", "all_pipelines").unwrap();
        assert_eq!(h.get(NAMESPACE).unwrap(), "");
        assert!(h.get("x-vault-token").is_none());
        assert!(h.get(PARAM_JWT).unwrap().is_sensitive());
        assert!(!login_failed(&h));
    }
}
