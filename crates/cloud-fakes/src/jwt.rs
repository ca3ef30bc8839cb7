//! Reading and verifying the ID tokens the fakes are given, against the issuer's JWKS.
//!
//! The JWKS is found as Google and Entra find it: `<iss>/.well-known/openid-configuration`,
//! then its `jwks_uri`. Keys are cached per issuer and refetched once when a `kid` is unknown.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A token's parts, read without trust.
#[derive(Clone)]
pub struct Unverified {
    /// The `kid` header.
    pub kid: Option<String>,
    /// The `alg` header.
    pub alg: String,
    /// The claims.
    pub claims: Value,
}

impl std::fmt::Debug for Unverified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unverified")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Unverified {
    /// A string claim.
    pub fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name)?.as_str()
    }

    /// `aud` as a list (a string or an array of strings).
    pub fn audiences(&self) -> Vec<String> {
        match self.claims.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A numeric claim (`exp`, `nbf`, `iat`).
    pub fn num_claim(&self, name: &str) -> Option<u64> {
        let v = self.claims.get(name)?;
        v.as_u64().or_else(|| v.as_f64().map(|f| f as u64))
    }
}

/// Splits and decodes a compact JWS without checking the signature; `None` when malformed.
pub fn parse(token: &str) -> Option<Unverified> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || s.is_empty() {
        return None;
    }
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header: Value = serde_json::from_slice(&engine.decode(h).ok()?).ok()?;
    let claims: Value = serde_json::from_slice(&engine.decode(p).ok()?).ok()?;
    if !claims.is_object() {
        return None;
    }
    Some(Unverified {
        kid: header.get("kid").and_then(Value::as_str).map(str::to_owned),
        alg: header.get("alg")?.as_str()?.to_owned(),
        claims,
    })
}

/// Why a signature could not be checked or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The issuer's keys could not be fetched.
    #[error("cannot fetch the issuer's JWKS: {0}")]
    Jwks(String),
    /// No key with the token's `kid`.
    #[error("no key with the token's kid in the issuer's JWKS")]
    UnknownKey,
    /// The algorithm is not RS256.
    #[error("unsupported algorithm {0}")]
    Algorithm(String),
    /// The signature does not verify.
    #[error("the signature does not verify")]
    Invalid,
}

/// Fetches and caches issuers' JWKS.
#[derive(Debug, Clone)]
pub struct JwksCache {
    http: reqwest::Client,
    keys: Arc<Mutex<BTreeMap<String, Value>>>,
}

impl Default for JwksCache {
    fn default() -> Self {
        Self::new()
    }
}

impl JwksCache {
    /// An empty cache with a loopback-friendly client (no proxy, short timeouts).
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            http,
            keys: Arc::default(),
        }
    }

    async fn fetch(&self, issuer: &str) -> Result<Value, SignatureError> {
        let err = |e: reqwest::Error| SignatureError::Jwks(e.without_url().to_string());
        let discovery: Value = self
            .http
            .get(format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            ))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(err)?
            .json()
            .await
            .map_err(err)?;
        let uri = discovery
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| SignatureError::Jwks("discovery has no jwks_uri".to_owned()))?;
        let jwks: Value = self
            .http
            .get(uri)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(err)?
            .json()
            .await
            .map_err(err)?;
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(issuer.to_owned(), jwks.clone());
        Ok(jwks)
    }

    fn cached(&self, issuer: &str) -> Option<Value> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(issuer)
            .cloned()
    }

    /// Checks `token`'s RS256 signature with `issuer`'s key named by its `kid` (or its only key).
    pub async fn verify(
        &self,
        token: &str,
        parsed: &Unverified,
        issuer: &str,
    ) -> Result<(), SignatureError> {
        if parsed.alg != "RS256" {
            return Err(SignatureError::Algorithm(parsed.alg.clone()));
        }
        let jwks = match self.cached(issuer) {
            Some(jwks) if find_key(&jwks, parsed.kid.as_deref()).is_some() => jwks,
            _ => self.fetch(issuer).await?,
        };
        let key = find_key(&jwks, parsed.kid.as_deref()).ok_or(SignatureError::UnknownKey)?;
        let (Some(n), Some(e)) = (
            key.get("n").and_then(Value::as_str),
            key.get("e").and_then(Value::as_str),
        ) else {
            return Err(SignatureError::UnknownKey);
        };
        let decoding =
            DecodingKey::from_rsa_components(n, e).map_err(|_| SignatureError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(token, &decoding, &validation)
            .map(drop)
            .map_err(|_| SignatureError::Invalid)
    }
}

fn find_key<'a>(jwks: &'a Value, kid: Option<&str>) -> Option<&'a Value> {
    let keys = jwks.get("keys")?.as_array()?;
    match kid {
        Some(kid) => keys
            .iter()
            .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid)),
        None if keys.len() == 1 => keys.first(),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_tokens_are_refused() {
        assert!(parse("").is_none());
        assert!(parse("a.b").is_none());
        assert!(parse("$AZURE_JWT").is_none());
        assert!(parse("eyJhbGciOiJSUzI1NiJ9.bm90LWpzb24.c2ln").is_none());
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let token = format!(
            "{}.{}.sig",
            engine.encode(r#"{"alg":"RS256","kid":"k"}"#),
            engine.encode(r#"{"sub":"x","aud":["a","b"],"exp":5}"#)
        );
        let parsed = parse(&token).unwrap();
        assert_eq!(parsed.kid.as_deref(), Some("k"));
        assert_eq!(parsed.audiences(), ["a", "b"]);
        assert_eq!(parsed.num_claim("exp"), Some(5));
    }
}
