//! Failures of Entra and Key Vault answers, classified with fixes (one table, tested as one).
//! Only codes and our own words reach a message: never a token, a value or a body.

use provider_http::{Failure, Transport};
use secrets_core::ErrorKind;
use std::time::Duration;

/// The Entra error codes this provider explains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntraCode {
    /// `AADSTS70021`: no federated credential matches the token's issuer, subject, audience.
    NoMatchingFederatedCredential,
    /// `AADSTS700016`: the application is not in the tenant.
    AppNotInTenant,
    /// `AADSTS700024`: the client assertion is expired or not yet valid.
    AssertionExpired,
    /// `AADSTS50027`: the client assertion is not a valid JWT.
    MalformedToken,
    /// Any other code.
    Other(u32),
}

impl EntraCode {
    /// The code for an `AADSTS` number.
    pub fn of(number: u32) -> Self {
        match number {
            70021 => Self::NoMatchingFederatedCredential,
            700016 => Self::AppNotInTenant,
            700024 => Self::AssertionExpired,
            50027 => Self::MalformedToken,
            other => Self::Other(other),
        }
    }
}

/// What the ID token says about itself, for the `AADSTS70021` fix (claims, never the token).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFacts {
    /// `iss`, or `(none)`.
    pub issuer: String,
    /// `sub`, or `(none)`.
    pub subject: String,
    /// `aud`, comma-separated, or `(none)`.
    pub audience: String,
}

impl TokenFacts {
    pub(crate) fn of(claims: &auth_oidc::Claims) -> Self {
        let or_none = |s: Option<String>| s.unwrap_or_else(|| "(none)".to_owned());
        Self {
            issuer: or_none(claims.iss.clone()),
            subject: or_none(claims.sub.clone()),
            audience: claims
                .aud
                .as_ref()
                .map(|a| a.as_slice().join(","))
                .unwrap_or_else(|| "(none)".to_owned()),
        }
    }
}

/// Who asked Entra, for messages.
#[derive(Debug, Clone, Copy)]
pub struct TokenRequest<'a> {
    /// The authority (shown).
    pub authority: &'a str,
    /// `AZURE_TENANT_ID`.
    pub tenant: &'a str,
    /// `AZURE_CLIENT_ID`.
    pub client: &'a str,
    /// The ID token's claims that the fixes name.
    pub facts: &'a TokenFacts,
}

#[derive(serde::Deserialize, Default)]
struct EntraBody {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_codes: Vec<u32>,
    #[serde(default)]
    error_description: Option<String>,
}

/// The first `AADSTS<n>` of a description.
fn aadsts_in(text: &str) -> Option<u32> {
    let at = text.find("AADSTS")? + "AADSTS".len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// A word that is safe to print from an answer: a short run of `[0-9A-Za-z_.-]`.
fn safe_code(code: &str) -> Option<String> {
    (!code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')))
    .then(|| code.to_owned())
}

fn server_trouble(status: u16, retry_after: Option<Duration>, what: String) -> Option<Failure> {
    match status {
        429 => Some(
            Failure::new(
                ErrorKind::RateLimited,
                format!("{what}: throttled (HTTP 429)"),
            )
            .with_retry_after(retry_after)
            .with_fix("retry later, or resolve fewer secrets at once"),
        ),
        500..=599 => Some(
            Failure::new(ErrorKind::Unavailable, format!("{what}: HTTP {status}"))
                .with_retry_after(retry_after)
                .with_fix("a transient service error; retry the job"),
        ),
        _ => None,
    }
}

/// The failure of a token request answered with `status` and `body`. Only Entra's error
/// code and our own words reach the message, never the body's text.
pub fn entra_failure(
    req: &TokenRequest<'_>,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> Failure {
    let what = format!(
        "the Entra token request for app {} in tenant {} at {}",
        req.client, req.tenant, req.authority
    );
    let parsed: EntraBody = serde_json::from_slice(body).unwrap_or_default();
    let number = parsed
        .error_codes
        .first()
        .copied()
        .or_else(|| parsed.error_description.as_deref().and_then(aadsts_in));
    let error = parsed.error.as_deref().and_then(safe_code);
    if let Some(f) = server_trouble(status, retry_after, what.clone()) {
        return match number {
            Some(n) => f.with_code(format!("AADSTS{n}")),
            None => f,
        };
    }
    let Some(number) = number else {
        return Failure::new(
            ErrorKind::Unexpected,
            format!(
                "{what} failed with HTTP {status}{}",
                error.map(|e| format!(" ({e})")).unwrap_or_default()
            ),
        )
        .with_fix("check that AZURE_AUTHORITY_HOST points at Entra ID (default https://login.microsoftonline.com)");
    };
    let code = format!("AADSTS{number}");
    let f = req.facts;
    let failure = match EntraCode::of(number) {
        EntraCode::NoMatchingFederatedCredential => Failure::new(
            ErrorKind::PermissionDenied,
            format!("{what} was refused ({code}): no federated credential of the app matches the ID token"),
        )
        .with_fix(format!(
            "add a federated credential to the app with issuer {}, subject {} and audience {} (what the token has), or change the job's id_tokens aud to the credential's audience",
            f.issuer, f.subject, f.audience
        )),
        EntraCode::AppNotInTenant => Failure::new(
            ErrorKind::InvalidConfig,
            format!("{what} was refused ({code}): the application is not in the tenant"),
        )
        .with_fix("set AZURE_CLIENT_ID to the app registration's Application (client) ID and AZURE_TENANT_ID to its Directory (tenant) ID"),
        EntraCode::AssertionExpired => Failure::new(
            ErrorKind::Unauthenticated,
            format!("{what} was refused ({code}): the ID token has expired or is not yet valid"),
        )
        .with_fix("the ID token must be valid when secrets are resolved: rerun the job, and check the runner's clock"),
        EntraCode::MalformedToken => Failure::new(
            ErrorKind::Unauthenticated,
            format!("{what} was refused ({code}): the ID token is invalid or malformed"),
        )
        .with_fix("pass the token itself (`token: $AZURE_JWT`, an `id_tokens:` entry); GitLab Runner 16.3 to 16.5 sent the variable's name instead"),
        EntraCode::Other(_) => Failure::new(
            ErrorKind::Unauthenticated,
            format!(
                "{what} was refused ({code}{}), HTTP {status}",
                error.map(|e| format!(", {e}")).unwrap_or_default()
            ),
        )
        .with_fix(format!("look {code} up in Microsoft Entra's error code list (https://login.microsoftonline.com/error?code={number})")),
    };
    failure.with_code(code)
}

#[derive(serde::Deserialize, Default)]
struct VaultBody {
    #[serde(default)]
    error: Option<VaultError>,
}

#[derive(serde::Deserialize, Default)]
struct VaultError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    innererror: Option<Box<VaultError>>,
}

/// The `AKV<n>` code at the start of a Key Vault message.
fn akv_in(text: &str) -> Option<String> {
    let rest = text.strip_prefix("AKV")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then(|| format!("AKV{digits}"))
}

/// Which secret a read was for, for messages.
#[derive(Debug, Clone, Copy)]
pub struct ReadTarget<'a> {
    /// The vault URL (shown).
    pub vault: &'a str,
    /// The secret name.
    pub name: &'a str,
    /// The version, empty for the latest.
    pub version: &'a str,
    /// `AZURE_CLIENT_ID`.
    pub client: &'a str,
}

/// The failure of a secret read answered with `status` and `body`. Only Key Vault's error
/// codes (short `[0-9A-Za-z_.-]` words) and our own words reach the message.
pub fn vault_failure(
    t: &ReadTarget<'_>,
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> Failure {
    let version = if t.version.is_empty() {
        "(latest)"
    } else {
        t.version
    };
    let what = format!("GET secret {} version {version} at {}", t.name, t.vault);
    if let Some(f) = server_trouble(status, retry_after, what.clone()) {
        return f;
    }
    let parsed: VaultBody = serde_json::from_slice(body).unwrap_or_default();
    let error = parsed.error.unwrap_or_default();
    let code = error.code.as_deref().and_then(safe_code);
    let inner = error
        .innererror
        .as_ref()
        .and_then(|i| i.code.as_deref())
        .and_then(safe_code);
    let akv = error.message.as_deref().and_then(akv_in);
    let shown = inner.clone().or(code.clone());
    let failure = match (status, code.as_deref(), inner.as_deref()) {
        (403, _, Some("ForbiddenByRbac")) => Failure::new(
            ErrorKind::PermissionDenied,
            format!("{what} was refused (ForbiddenByRbac): app {} may not read this secret", t.client),
        )
        .with_fix("assign the app the Key Vault Secrets User role on the vault (or on the secret)"),
        (403, _, Some("SecretDisabled")) => Failure::new(
            ErrorKind::PermissionDenied,
            format!("{what} was refused (SecretDisabled): this version of the secret is disabled"),
        )
        .with_fix("enable the version in the vault, or pin an enabled `version:`"),
        (404, Some("SecretNotFound"), _) => Failure::new(
            ErrorKind::NotFound,
            format!("{what}: secret not found (SecretNotFound)"),
        )
        .with_fix("check the secret's name and version in the vault (names are case-insensitive)"),
        (401, _, _) => {
            let fix = if akv.as_deref() == Some("AKV10032") {
                "the vault belongs to another tenant: set AZURE_TENANT_ID to the vault's tenant"
            } else {
                "Key Vault refused the Entra token; check AZURE_TENANT_ID and the vault URL"
            };
            Failure::new(
                ErrorKind::Unauthenticated,
                format!(
                    "{what} was refused (HTTP 401{})",
                    akv.as_ref().map(|a| format!(", {a}")).unwrap_or_default()
                ),
            )
            .with_fix(fix)
        }
        (400, _, _) => Failure::new(
            ErrorKind::InvalidSpec,
            format!(
                "{what} was refused (HTTP 400{})",
                shown.as_ref().map(|c| format!(", {c}")).unwrap_or_default()
            ),
        )
        .with_fix("check the secret's name and version"),
        (403, _, _) => Failure::new(
            ErrorKind::PermissionDenied,
            format!(
                "{what} was refused (HTTP 403{})",
                shown.as_ref().map(|c| format!(", {c}")).unwrap_or_default()
            ),
        )
        .with_fix("assign the app the Key Vault Secrets User role on the vault, and check the vault's firewall"),
        (404, _, _) => Failure::new(
            ErrorKind::NotFound,
            format!(
                "{what}: HTTP 404{}",
                shown.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()
            ),
        )
        .with_fix("check AZURE_KEY_VAULT_SERVER_URL: it should be the vault's URI"),
        _ => Failure::new(
            ErrorKind::Unexpected,
            format!(
                "{what} failed with HTTP {status}{}",
                shown.as_ref().map(|c| format!(" ({c})")).unwrap_or_default()
            ),
        ),
    };
    match shown {
        Some(c) => failure.with_code(c),
        None => failure,
    }
}

/// A transport failure of `what` (a request to `server`).
pub(crate) fn transport_failure(what: &str, server: &str, t: &Transport) -> Failure {
    match t {
        Transport::Connect(cause) => Failure::new(
            ErrorKind::Unavailable,
            format!("cannot connect to {server} for {what}: {cause}"),
        )
        .with_fix("check the URL and that the runner can reach it (proxy, firewall)"),
        Transport::Timeout(after) => Failure::new(
            ErrorKind::Unavailable,
            format!("no answer from {server} to {what} within {}s", after.as_secs_f64()),
        ),
        Transport::Body(cause) => Failure::new(
            ErrorKind::Unavailable,
            format!("the connection to {server} broke during {what}: {cause}"),
        ),
        Transport::Tls(cause) => Failure::new(
            ErrorKind::InvalidConfig,
            format!("TLS with {server} failed for {what}: {cause}"),
        )
        .with_fix("check the URL's host name and the trusted CAs (a TLS-inspecting proxy needs its CA trusted)"),
        Transport::TooLarge(limit) => Failure::new(
            ErrorKind::Unexpected,
            format!("the answer of {server} to {what} is larger than {limit} bytes; not read"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entra(code: u32) -> Vec<u8> {
        serde_json::json!({
            "error": "invalid_request",
            "error_description": format!("AADSTS{code}: text with CANARY-BODY\r\nTrace ID: x"),
            "error_codes": [code],
        })
        .to_string()
        .into_bytes()
    }

    fn kv(status_code: &str, inner: Option<&str>, message: &str) -> Vec<u8> {
        let mut e = serde_json::json!({"code": status_code, "message": message});
        if let Some(i) = inner {
            e["innererror"] = serde_json::json!({"code": i});
        }
        serde_json::json!({"error": e}).to_string().into_bytes()
    }

    /// Status, body, kind, retryable, words of the message, words of the fix.
    type Row = (u16, Vec<u8>, ErrorKind, bool, &'static str, &'static str);

    /// One table: each answer, its kind, retryability, and words of the message and fix.
    #[test]
    fn the_table() {
        let facts = TokenFacts {
            issuer: "https://gitlab.example.com".into(),
            subject: "project_path:g/p:ref_type:branch:ref:main".into(),
            audience: "api://AzureADTokenExchange".into(),
        };
        let req = TokenRequest {
            authority: "https://login.microsoftonline.com",
            tenant: "t1",
            client: "c1",
            facts: &facts,
        };
        let target = ReadTarget {
            vault: "https://kv.vault.azure.net",
            name: "db",
            version: "",
            client: "c1",
        };
        let entra_rows: &[Row] = &[
            (
                400,
                entra(70021),
                ErrorKind::PermissionDenied,
                false,
                "AADSTS70021",
                "subject project_path:g/p:ref_type:branch:ref:main",
            ),
            (
                400,
                entra(700016),
                ErrorKind::InvalidConfig,
                false,
                "AADSTS700016",
                "AZURE_CLIENT_ID",
            ),
            (
                400,
                entra(700024),
                ErrorKind::Unauthenticated,
                false,
                "AADSTS700024",
                "rerun the job",
            ),
            (
                400,
                entra(50027),
                ErrorKind::Unauthenticated,
                false,
                "AADSTS50027",
                "token: $AZURE_JWT",
            ),
            (
                401,
                entra(7000215),
                ErrorKind::Unauthenticated,
                false,
                "AADSTS7000215",
                "error code list",
            ),
            (
                503,
                entra(90033),
                ErrorKind::Unavailable,
                true,
                "HTTP 503",
                "transient",
            ),
            (
                429,
                b"{}".to_vec(),
                ErrorKind::RateLimited,
                true,
                "429",
                "retry later",
            ),
            (
                404,
                b"<html>CANARY-BODY</html>".to_vec(),
                ErrorKind::Unexpected,
                false,
                "HTTP 404",
                "AZURE_AUTHORITY_HOST",
            ),
        ];
        for (status, body, kind, retryable, message, fix) in entra_rows {
            let f = entra_failure(&req, *status, body, None);
            assert_eq!((f.kind, f.retryable), (*kind, *retryable), "{status}: {f}");
            assert!(f.message.contains(message), "{f}");
            assert!(f.fix.as_deref().unwrap_or("").contains(fix), "{f}");
            assert!(f.message.contains("app c1 in tenant t1"), "{f}");
            assert!(!f.to_string().contains("CANARY"), "{f}");
        }
        let kv_rows: &[Row] = &[
            (
                403,
                kv("Forbidden", Some("ForbiddenByRbac"), "Caller CANARY-BODY"),
                ErrorKind::PermissionDenied,
                false,
                "ForbiddenByRbac",
                "Key Vault Secrets User",
            ),
            (
                403,
                kv("Forbidden", Some("SecretDisabled"), "CANARY-BODY"),
                ErrorKind::PermissionDenied,
                false,
                "SecretDisabled",
                "enable the version",
            ),
            (
                404,
                kv("SecretNotFound", None, "CANARY-BODY"),
                ErrorKind::NotFound,
                false,
                "secret not found",
                "name and version",
            ),
            (
                401,
                kv("Unauthorized", None, "AKV10032: Invalid issuer CANARY-BODY"),
                ErrorKind::Unauthenticated,
                false,
                "AKV10032",
                "another tenant",
            ),
            (
                400,
                kv("BadParameter", None, "CANARY-BODY"),
                ErrorKind::InvalidSpec,
                false,
                "BadParameter",
                "name and version",
            ),
            (
                429,
                kv("Throttled", None, "CANARY-BODY"),
                ErrorKind::RateLimited,
                true,
                "429",
                "retry later",
            ),
            (
                500,
                kv("InternalServerError", None, "CANARY-BODY"),
                ErrorKind::Unavailable,
                true,
                "HTTP 500",
                "transient",
            ),
            (
                418,
                b"CANARY-BODY".to_vec(),
                ErrorKind::Unexpected,
                false,
                "HTTP 418",
                "",
            ),
        ];
        for (status, body, kind, retryable, message, fix) in kv_rows {
            let f = vault_failure(&target, *status, body, Some(Duration::from_secs(1)));
            assert_eq!((f.kind, f.retryable), (*kind, *retryable), "{status}: {f}");
            assert!(f.message.contains(message), "{f}");
            assert!(f.fix.as_deref().unwrap_or("").contains(fix), "{f}");
            assert!(
                f.message
                    .contains("secret db version (latest) at https://kv.vault.azure.net"),
                "{f}"
            );
            assert!(!f.to_string().contains("CANARY"), "{f}");
        }
        assert_eq!(EntraCode::of(1), EntraCode::Other(1));
        assert_eq!(aadsts_in("x AADSTS50027: y"), Some(50027));
        assert_eq!(safe_code("a b"), None);
    }
}
