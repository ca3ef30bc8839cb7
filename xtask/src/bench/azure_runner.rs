//! GitLab Runner's Azure Key Vault algorithm, by hand, for the bench's reproduction: for one
//! secret, with a new `azidentity.ClientAssertionCredential` and `azsecrets.Client` (so no
//! token is reused):
//!
//! 1. `GET <vault>/secrets/<name>/<version>?api-version=…` without a token: Key Vault's 401
//!    with the `WWW-Authenticate: Bearer authorization="…", resource="…"` challenge;
//! 2. MSAL's tenant discovery, `GET <authority>/v2.0/.well-known/openid-configuration`;
//! 3. the token request at its `token_endpoint` (client credentials with the ID token as a
//!    federated client assertion, scope `<resource>/.default`);
//! 4. the `GET` again with the bearer token: `value`.
//!
//! The connections are reused across secrets: the runner passes no transport
//! (`azcore.ClientOptions{}` for the credential, `nil` options for `azsecrets.NewClient`), so
//! both use azcore's process-wide default `http.Client` (`defaultHTTPClient` in
//! `sdk/azcore/runtime/transport_default_http_client.go`, `ForceAttemptHTTP2`), whose pool
//! keeps one idle connection per host between the sequential calls. [`client`] stands for
//! that pool: one per resolution, cold at its start, shared by every secret.
//!
//! Tokens and values never appear in errors.

use anyhow::{Context as _, Result, bail};
use secrecy::{ExposeSecret as _, SecretString};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The api-version azsecrets sends.
const API_VERSION: &str = provider_azure_kv::API_VERSION;

/// Where the vault and Entra are (the fake, behind the bench's proxy).
#[derive(Debug)]
pub struct Target<'a> {
    /// The test CA the fake's certificate chains to.
    pub ca_pem: &'a str,
    /// Where the host names below resolve to.
    pub addr: SocketAddr,
    /// The host names resolved to `addr` (test-only: the bench is not the shipped client).
    pub resolve: Vec<String>,
    /// `https://<vault>.vault.azure.net/`.
    pub vault_url: String,
    pub tenant: &'a str,
    pub client: &'a str,
}

/// Requests made, by the fake's kind names.
#[derive(Debug, Default)]
pub struct Counts {
    challenge: u64,
    discovery: u64,
    token: u64,
    get: u64,
}

impl Counts {
    pub fn into_map(self) -> BTreeMap<String, u64> {
        [
            ("azure_challenge", self.challenge),
            ("azure_discovery", self.discovery),
            ("azure_token", self.token),
            ("azure_get", self.get),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// `key="value"` from a `Bearer` challenge.
fn challenge_param<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let rest = header.trim().strip_prefix("Bearer")?;
    rest.split(',').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"'))
    })
}

/// The HTTP client every secret of one resolution shares (azcore's default client: see the
/// module docs), trusting `target`'s CA and resolving its host names to its address.
pub fn client(target: &Target<'_>) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().tls_certs_only(
        reqwest::Certificate::from_pem_bundle(target.ca_pem.as_bytes())?,
    );
    for host in &target.resolve {
        builder = builder.resolve(host, target.addr);
    }
    Ok(builder.no_proxy().build()?)
}

/// One secret, the runner's way, over `http` (from [`client`]). `version` `None` is the
/// latest.
pub async fn get_secret(
    http: &reqwest::Client,
    target: &Target<'_>,
    jwt: &str,
    name: &str,
    version: Option<&str>,
    counts: &mut Counts,
) -> Result<String> {
    let url = format!(
        "{}secrets/{name}/{}?api-version={API_VERSION}",
        target.vault_url,
        version.unwrap_or_default()
    );

    counts.challenge += 1;
    let answer = http.get(&url).send().await.context("challenge GET")?;
    if answer.status() != reqwest::StatusCode::UNAUTHORIZED {
        bail!(
            "the unauthenticated GET answered {}, not 401",
            answer.status()
        );
    }
    let header = answer
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|h| h.to_str().ok())
        .context("the 401 has no WWW-Authenticate challenge")?
        .to_owned();
    // azcore's pipeline reads every body to the end (its body download policy), so the
    // connection goes back to the pool.
    answer.bytes().await.context("challenge GET: the body")?;
    let authority = challenge_param(&header, "authorization")
        .context("the challenge has no authorization")?
        .trim_end_matches('/')
        .to_owned();
    let resource = challenge_param(&header, "resource")
        .or_else(|| challenge_param(&header, "scope"))
        .context("the challenge has no resource")?
        .trim_end_matches("/.default")
        .trim_end_matches('/')
        .to_owned();
    if !authority.ends_with(target.tenant) {
        bail!("the challenge names another tenant");
    }

    counts.discovery += 1;
    let discovery: serde_json::Value = http
        .get(format!("{authority}/v2.0/.well-known/openid-configuration"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .context("tenant discovery")?
        .json()
        .await
        .context("tenant discovery: not JSON")?;
    let token_endpoint = discovery["token_endpoint"]
        .as_str()
        .context("the discovery document has no token_endpoint")?
        .to_owned();

    counts.token += 1;
    let scope = format!("{resource}/.default");
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", target.client)
        .append_pair(
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        )
        .append_pair("client_assertion", jwt)
        .append_pair("scope", &scope)
        .finish();
    let answer = http
        .post(&token_endpoint)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form)
        .send()
        .await
        .context("token request")?;
    if !answer.status().is_success() {
        bail!("the token request answered {}", answer.status());
    }
    let body: serde_json::Value = answer.json().await.context("token answer: not JSON")?;
    let token = SecretString::from(
        body["access_token"]
            .as_str()
            .context("the token answer has no access_token")?
            .to_owned(),
    );

    counts.get += 1;
    let answer = http
        .get(&url)
        .bearer_auth(token.expose_secret())
        .send()
        .await
        .context("secret GET")?;
    if !answer.status().is_success() {
        bail!("GET secret {name} answered {}", answer.status());
    }
    let body: serde_json::Value = answer.json().await.context("secret answer: not JSON")?;
    body["value"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("secret {name} has no value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parameters() {
        let h = r#"Bearer authorization="https://login.microsoftonline.com/t1", resource="https://vault.azure.net""#;
        assert_eq!(
            challenge_param(h, "authorization"),
            Some("https://login.microsoftonline.com/t1")
        );
        assert_eq!(
            challenge_param(h, "resource"),
            Some("https://vault.azure.net")
        );
        assert_eq!(challenge_param(h, "scope"), None);
        assert_eq!(challenge_param("Basic realm=x", "authorization"), None);
    }
}
