//! Reading an ID token's claims without verifying it.

use crate::Clock;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::fmt;

/// Leeway for `exp` and `nbf`, in seconds, for clock skew between GitLab and the runner.
pub const DEFAULT_LEEWAY_SECS: i64 = 30;

/// Why a token cannot be used. The messages never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is empty: usually an ID token variable that is not defined.
    #[error(
        "the ID token is empty; define it under `id_tokens:` in the job (or set the variable the secret's `token:` names); outside GitLab, `ci-secrets` requests it on GitHub Actions (give the job `permissions: id-token: write`) and on Buildkite (`buildkite-agent` on PATH)"
    )]
    Empty,
    /// The token is not a JWT.
    #[error("the ID token is not a valid JWT: {0}")]
    Malformed(&'static str),
    /// The token's `exp` has passed.
    #[error(
        "the ID token expired {ago}s ago (exp {exp}); ID tokens live as long as the job's timeout, so re-run the job or mint a new token"
    )]
    Expired {
        /// The token's `exp`.
        exp: i64,
        /// Seconds since it expired.
        ago: i64,
    },
    /// The token's `nbf` is in the future.
    #[error("the ID token is not valid before {nbf} ({ahead}s from now); check the clocks")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: i64,
        /// Seconds until it becomes valid.
        ahead: i64,
    },
}

/// The `aud` claim: one audience or several.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// `"aud": "x"`
    One(String),
    /// `"aud": ["x", "y"]`
    Many(Vec<String>),
}

impl Audience {
    /// Every audience.
    pub fn as_slice(&self) -> &[String] {
        match self {
            Self::One(one) => std::slice::from_ref(one),
            Self::Many(many) => many,
        }
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_slice().join(", "))
    }
}

/// The claims of a GitLab ID token (the ones this project uses; others are kept as JSON).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Claims {
    /// Issuer: the GitLab instance URL.
    #[serde(default)]
    pub iss: Option<String>,
    /// Audience, from `id_tokens:<NAME>:aud`.
    #[serde(default)]
    pub aud: Option<Audience>,
    /// Subject: `project_path:<group/project>:ref_type:<type>:ref:<ref>`.
    #[serde(default)]
    pub sub: Option<String>,
    /// Expiry, seconds since the epoch.
    #[serde(default)]
    pub exp: Option<i64>,
    /// Not before.
    #[serde(default)]
    pub nbf: Option<i64>,
    /// Issued at.
    #[serde(default)]
    pub iat: Option<i64>,
    /// Every claim, for bound-claim diagnostics.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl Claims {
    /// A claim as text, the way Vault's bound claims compare it (strings as-is, other
    /// scalars as their JSON literal).
    pub fn get_str(&self, name: &str) -> Option<String> {
        let value = match name {
            "iss" => return self.iss.clone(),
            "sub" => return self.sub.clone(),
            "aud" => return self.aud.as_ref().map(ToString::to_string),
            "exp" => return self.exp.map(|v| v.to_string()),
            "nbf" => return self.nbf.map(|v| v.to_string()),
            "iat" => return self.iat.map(|v| v.to_string()),
            other => self.other.get(other)?,
        };
        Some(match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// `project_path`, if present.
    pub fn project_path(&self) -> Option<String> {
        self.get_str("project_path")
    }

    /// `ref`, if present.
    pub fn git_ref(&self) -> Option<String> {
        self.get_str("ref")
    }

    /// The issuer without scheme and trailing slash (`gitlab.example.com`): the OIDC provider
    /// name in AWS IAM and the prefix of trust-policy condition keys (`<host>:aud`, `<host>:sub`).
    pub fn issuer_host(&self) -> Option<String> {
        self.iss.as_deref().map(|iss| {
            iss.trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned()
        })
    }

    /// A one-line summary safe to print: iss, aud, sub and exp.
    pub fn summary(&self) -> String {
        format!(
            "iss {}, aud {}, sub {}, exp {}",
            self.iss.as_deref().unwrap_or("(none)"),
            self.aud
                .as_ref()
                .map_or_else(|| "(none)".to_owned(), ToString::to_string),
            self.sub.as_deref().unwrap_or("(none)"),
            self.exp
                .map_or_else(|| "(none)".to_owned(), |e| e.to_string())
        )
    }
}

/// An ID token: the raw token held as a secret, and its claims read without verification.
pub struct IdToken {
    raw: SecretString,
    claims: Claims,
    algorithm: String,
}

impl IdToken {
    /// Reads a token's header and claims. Does not verify the signature or the times.
    pub fn parse(raw: &str) -> Result<Self, TokenError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(TokenError::Empty);
        }
        if raw.split('.').count() != 3 {
            return Err(TokenError::Malformed(
                "expected three base64url parts separated by dots",
            ));
        }
        let header = jsonwebtoken::decode_header(raw)
            .map_err(|_| TokenError::Malformed("the header is not base64url-encoded JSON"))?;
        let claims =
            jsonwebtoken::dangerous::insecure_decode_claims::<Claims>(raw).map_err(|_| {
                TokenError::Malformed("the claims are not a base64url-encoded JSON object")
            })?;
        Ok(Self {
            raw: SecretString::from(raw.to_owned()),
            claims,
            algorithm: format!("{:?}", header.alg),
        })
    }

    /// [`IdToken::parse`], then [`IdToken::check_times`] with the default leeway.
    pub fn parse_and_check(raw: &str, clock: &dyn Clock) -> Result<Self, TokenError> {
        let token = Self::parse(raw)?;
        token.check_times(clock, DEFAULT_LEEWAY_SECS)?;
        Ok(token)
    }

    /// Fails when the token has expired or is not valid yet, allowing `leeway` seconds.
    pub fn check_times(&self, clock: &dyn Clock, leeway: i64) -> Result<(), TokenError> {
        let now = clock.now_unix();
        if let Some(exp) = self.claims.exp
            && now > exp + leeway
        {
            return Err(TokenError::Expired {
                exp,
                ago: now - exp,
            });
        }
        if let Some(nbf) = self.claims.nbf
            && nbf > now + leeway
        {
            return Err(TokenError::NotYetValid {
                nbf,
                ahead: nbf - now,
            });
        }
        Ok(())
    }

    /// The claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The signing algorithm named in the header, e.g. `RS256`.
    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    /// Seconds left before `exp` (negative once expired), if the token has an `exp`.
    pub fn remaining_secs(&self, clock: &dyn Clock) -> Option<i64> {
        self.claims.exp.map(|exp| exp - clock.now_unix())
    }

    /// The token itself, for the login request only.
    pub fn expose(&self) -> &str {
        self.raw.expose_secret()
    }
}

impl fmt::Debug for IdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdToken")
            .field("token", &"<redacted>")
            .field("algorithm", &self.algorithm)
            .field("claims", &self.claims.summary())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FixedClock;
    use base64::Engine as _;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    fn token(claims: &str) -> String {
        format!(
            "{}.{}.c2lnbmF0dXJlLWNhbmFyeQ",
            b64(r#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#),
            b64(claims)
        )
    }

    const CLAIMS: &str = r#"{"iss":"https://gitlab.example.com","aud":"https://vault.example.com",
        "sub":"project_path:mygroup/myproject:ref_type:branch:ref:main","exp":2000,"nbf":1000,"iat":1000,
        "project_id":"42","project_path":"mygroup/myproject","ref":"main","ref_protected":"true","job_id":1001}"#;

    #[test]
    fn reads_claims_without_verifying() {
        let t = IdToken::parse_and_check(&token(CLAIMS), &FixedClock(1500)).unwrap();
        let c = t.claims();
        assert_eq!(c.iss.as_deref(), Some("https://gitlab.example.com"));
        assert_eq!(
            c.aud.as_ref().unwrap().as_slice(),
            ["https://vault.example.com"]
        );
        assert_eq!(c.project_path().as_deref(), Some("mygroup/myproject"));
        assert_eq!(c.git_ref().as_deref(), Some("main"));
        assert_eq!(c.get_str("job_id").as_deref(), Some("1001"));
        assert_eq!(c.get_str("project_id").as_deref(), Some("42"));
        assert_eq!(t.algorithm(), "RS256");
        assert_eq!(t.remaining_secs(&FixedClock(1500)), Some(500));
        assert_eq!(c.issuer_host().as_deref(), Some("gitlab.example.com"));
    }

    #[test]
    fn audience_may_be_a_list() {
        let t = IdToken::parse(&token(r#"{"aud":["a","b"]}"#)).unwrap();
        assert_eq!(t.claims().aud.as_ref().unwrap().to_string(), "a, b");
    }

    #[test]
    fn empty_malformed_expired_and_early_tokens_fail() {
        assert_eq!(IdToken::parse("").unwrap_err(), TokenError::Empty);
        assert_eq!(IdToken::parse("  \n").unwrap_err(), TokenError::Empty);
        assert!(matches!(
            IdToken::parse("not-a-jwt").unwrap_err(),
            TokenError::Malformed(_)
        ));
        assert!(matches!(
            IdToken::parse("a.b.c").unwrap_err(),
            TokenError::Malformed(_)
        ));
        let bad_claims = format!("{}.{}.x", b64(r#"{"alg":"RS256"}"#), b64("[1,2]"));
        assert!(matches!(
            IdToken::parse(&bad_claims).unwrap_err(),
            TokenError::Malformed(_)
        ));
        let raw = token(CLAIMS);
        assert_eq!(
            IdToken::parse_and_check(&raw, &FixedClock(2031)).unwrap_err(),
            TokenError::Expired { exp: 2000, ago: 31 }
        );
        assert!(
            IdToken::parse_and_check(&raw, &FixedClock(2030)).is_ok(),
            "leeway"
        );
        assert_eq!(
            IdToken::parse_and_check(&raw, &FixedClock(900)).unwrap_err(),
            TokenError::NotYetValid {
                nbf: 1000,
                ahead: 100
            }
        );
    }

    #[test]
    fn never_prints_the_token() {
        let raw = token(CLAIMS);
        let t = IdToken::parse(&raw).unwrap();
        let printed = format!("{t:?}");
        assert!(!printed.contains(&raw));
        assert!(!printed.contains("c2lnbmF0dXJlLWNhbmFyeQ"));
        assert!(printed.contains("mygroup/myproject"));
        let err = IdToken::parse_and_check(&raw, &FixedClock(99_999)).unwrap_err();
        assert!(!err.to_string().contains("c2lnbmF0dXJl"));
    }
}
