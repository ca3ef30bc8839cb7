//! The three requests: the Entra token (client assertion), the Key Vault challenge (only for
//! vaults outside the known suffixes) and the secret read.

use crate::classify::{
    ReadTarget, TokenFacts, TokenRequest, entra_failure, transport_failure, vault_failure,
};
use crate::grouping::Read;
use crate::requests::{CHALLENGE, GET, TOKEN};
use provider_http::tls::{display_url, display_url_text};
use provider_http::{Endpoint, Failure, with_retry};
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use secrecy::{ExposeSecret as _, SecretString};
use secrets_core::{ErrorKind, RetryPolicy, SecretValue};
use tracing::instrument;
use zeroize::Zeroizing;

/// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn notify(what: &'static str) -> impl Fn(&Failure, std::time::Duration) {
    move |e, after| {
        tracing::warn!(
            kind = %e.kind,
            "Azure {what} failed, retrying in {:.1}s: {e}",
            after.as_secs_f64()
        );
    }
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    access_token: Option<String>,
}

/// Who asks for a token, and with what.
pub(crate) struct Assertion<'a> {
    pub(crate) authority: &'a Url,
    pub(crate) tenant: &'a str,
    pub(crate) client: &'a str,
    pub(crate) jwt: &'a str,
    pub(crate) facts: &'a TokenFacts,
}

/// `POST <authority>/<tenant>/oauth2/v2.0/token` with the ID token as client assertion and
/// `<resource>/.default` as scope; the access token.
#[instrument(skip_all, fields(tenant = a.tenant, client = a.client, resource = resource))]
pub(crate) async fn token(
    entra: &Endpoint,
    retry: &RetryPolicy,
    a: &Assertion<'_>,
    resource: &str,
) -> Result<SecretString, Failure> {
    let authority = display_url(a.authority);
    let mut url = a.authority.clone();
    let base = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{base}/{}/oauth2/v2.0/token", a.tenant));
    let scope = format!("{}/.default", resource.trim_end_matches('/'));
    let body = Zeroizing::new(
        form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", a.client)
            .append_pair("client_assertion", a.jwt)
            .append_pair("client_assertion_type", ASSERTION_TYPE)
            .append_pair("scope", &scope)
            .finish(),
    );
    let req = TokenRequest {
        authority: &authority,
        tenant: a.tenant,
        client: a.client,
        facts: a.facts,
    };
    with_retry(retry, notify("token request"), || async {
        let request = entra
            .http()
            .post(url.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.as_bytes().to_vec());
        let answer = entra
            .send(TOKEN, request)
            .await
            .map_err(|t| transport_failure("the Entra token request", &authority, &t))?;
        if !answer.is_success() {
            return Err(entra_failure(
                &req,
                answer.status,
                &answer.body,
                answer.retry_after,
            ));
        }
        serde_json::from_slice::<TokenAnswer>(&answer.body)
            .ok()
            .and_then(|t| t.access_token)
            .filter(|t| !t.is_empty())
            .map(SecretString::from)
            .ok_or_else(|| {
                Failure::new(
                    ErrorKind::Unexpected,
                    format!("the Entra token answer of {authority} has no access_token"),
                )
                .with_fix("check that AZURE_AUTHORITY_HOST points at Entra ID")
            })
    })
    .await
}

/// The parameters of Key Vault's `WWW-Authenticate: Bearer` challenge: the authorization
/// URL (`authorization` or `authorization_uri`) and the resource (`resource`, or `scope`
/// without `/.default`), when present. Values are unquoted; nothing is validated here.
pub fn parse_challenge(header: &str) -> (Option<String>, Option<String>) {
    let rest = header.trim();
    let rest = rest
        .strip_prefix("Bearer")
        .or_else(|| rest.strip_prefix("bearer"))
        .unwrap_or(rest);
    let (mut authorization, mut resource) = (None, None);
    for part in rest.split(',') {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_owned();
        match k.trim().to_ascii_lowercase().as_str() {
            "authorization" | "authorization_uri" => authorization = Some(v),
            "resource" => resource = Some(v),
            "scope" if resource.is_none() => {
                resource = Some(v.trim_end_matches("/.default").to_owned());
            }
            _ => {}
        }
    }
    (authorization, resource)
}

/// Whether `vault_host` is `resource_host` or a name under it (ASCII case-insensitive): a
/// token is only requested for a challenge's resource that matches the vault.
pub fn resource_matches(vault_host: &str, resource_host: &str) -> bool {
    let (v, r) = (
        vault_host.to_ascii_lowercase(),
        resource_host.to_ascii_lowercase(),
    );
    !r.is_empty() && (v == r || v.ends_with(&format!(".{r}")))
}

/// The unauthenticated `GET` of `read`: Key Vault answers `401` with the resource to ask a
/// token for, which must be the vault's domain, and the tenant, which must be `tenant`.
#[instrument(skip_all, fields(vault = %read.vault_display))]
pub(crate) async fn challenge(
    vault: &Endpoint,
    retry: &RetryPolicy,
    read: &Read,
    tenant: &str,
    client: &str,
) -> Result<String, Failure> {
    let shown = &read.vault_display;
    let target = ReadTarget {
        vault: shown,
        name: &read.name,
        version: &read.version,
        client,
    };
    let header = with_retry(retry, notify("challenge"), || async {
        let answer = vault
            .send(CHALLENGE, vault.http().get(read.url()))
            .await
            .map_err(|t| transport_failure("the Key Vault challenge", shown, &t))?;
        if answer.status != 401 {
            return Err(match answer.status {
                200..=299 => Failure::new(
                    ErrorKind::Unexpected,
                    format!("{shown} answered a read without a token; it is not Key Vault"),
                )
                .with_fix("check AZURE_KEY_VAULT_SERVER_URL"),
                status => vault_failure(&target, status, &answer.body, answer.retry_after),
            });
        }
        answer
            .headers
            .get(WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| {
                Failure::new(
                    ErrorKind::Unexpected,
                    format!("{shown} answered 401 without a WWW-Authenticate challenge"),
                )
                .with_fix("check AZURE_KEY_VAULT_SERVER_URL: it should be the vault's URI")
            })
    })
    .await?;
    let (authorization, resource) = parse_challenge(&header);
    let resource = resource.ok_or_else(|| {
        Failure::new(
            ErrorKind::Unexpected,
            format!("the challenge of {shown} names no resource"),
        )
    })?;
    let resource_host = Url::parse(&resource)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    if !resource_matches(read.vault.host_str().unwrap_or_default(), &resource_host) {
        return Err(Failure::new(
            ErrorKind::InvalidConfig,
            format!(
                "the challenge of {shown} asks for a token for {}, which is not the vault's domain; no token was requested",
                display_url_text(&resource)
            ),
        )
        .with_fix("check AZURE_KEY_VAULT_SERVER_URL: it should be the vault's URI"));
    }
    let vault_tenant = authorization
        .as_deref()
        .and_then(|a| Url::parse(a).ok())
        .and_then(|u| {
            u.path_segments()
                .and_then(|mut s| s.next().map(str::to_owned))
        })
        .filter(|t| !t.is_empty());
    if let Some(vault_tenant) = vault_tenant
        && !vault_tenant.eq_ignore_ascii_case(tenant)
    {
        return Err(Failure::new(
            ErrorKind::InvalidConfig,
            format!("{shown} is in tenant {vault_tenant}, not in AZURE_TENANT_ID {tenant}"),
        )
        .with_fix("set AZURE_TENANT_ID to the vault's tenant"));
    }
    Ok(resource)
}

#[derive(serde::Deserialize)]
struct SecretAnswer {
    #[serde(default)]
    value: Option<String>,
}

/// `GET <vault>/secrets/<name>/<version>?api-version=…` with the bearer token: `value` as is.
#[instrument(skip_all, fields(vault = %read.vault_display, name = %read.name))]
pub(crate) async fn get(
    vault: &Endpoint,
    retry: &RetryPolicy,
    read: &Read,
    token: &SecretString,
    client: &str,
) -> Result<SecretValue, Failure> {
    let shown = &read.vault_display;
    let target = ReadTarget {
        vault: shown,
        name: &read.name,
        version: &read.version,
        client,
    };
    let mut bearer =
        HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).map_err(|_| {
            Failure::new(
                ErrorKind::Unexpected,
                "Entra returned a token that is not a valid header value",
            )
        })?;
    bearer.set_sensitive(true);
    with_retry(retry, notify("secret read"), || async {
        let request = vault
            .http()
            .get(read.url())
            .header(AUTHORIZATION, bearer.clone());
        let answer = vault
            .send(GET, request)
            .await
            .map_err(|t| transport_failure("the secret read", shown, &t))?;
        if !answer.is_success() {
            return Err(vault_failure(
                &target,
                answer.status,
                &answer.body,
                answer.retry_after,
            ));
        }
        parse_secret_answer(&answer.body, &read.name, shown)
    })
    .await
}

/// The `value` of Key Vault's answer `body` to a read of secret `name` at `vault` (shown),
/// as is; or why there is none. Never quotes the body.
pub fn parse_secret_answer(body: &[u8], name: &str, vault: &str) -> Result<SecretValue, Failure> {
    let parsed: SecretAnswer = serde_json::from_slice(body).map_err(|_| {
        Failure::new(
            ErrorKind::Unexpected,
            format!("the answer to GET secret {name} at {vault} is not Key Vault's JSON"),
        )
    })?;
    parsed.value.map(SecretValue::new).ok_or_else(|| {
        Failure::new(
            ErrorKind::NotFound,
            format!("secret not found: secret {name} at {vault} has no value"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let (a, r) = parse_challenge(
            r#"Bearer authorization="https://login.microsoftonline.com/t1", resource="https://vault.azure.net""#,
        );
        assert_eq!(a.as_deref(), Some("https://login.microsoftonline.com/t1"));
        assert_eq!(r.as_deref(), Some("https://vault.azure.net"));
        let (_, r) = parse_challenge(
            r#"Bearer authorization_uri="x", scope="https://vault.example/.default""#,
        );
        assert_eq!(r.as_deref(), Some("https://vault.example"));
        assert!(resource_matches("kv.vault.example", "vault.example"));
        assert!(resource_matches("localhost", "localhost"));
        assert!(!resource_matches("kv.vault.example", "example.org"));
        assert!(!resource_matches("evilvault.example", "vault.example"));
        assert!(!resource_matches("kv.vault.example", ""));
    }
}
