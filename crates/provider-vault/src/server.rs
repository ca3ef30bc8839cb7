//! One Vault server of one resolution: its client (TLS and proxy settings from the
//! provider's configuration, built by `provider-http`), its base URL and headers, and one
//! attempt with retries. The API calls are in `api.rs`.

use crate::classify::Outcome;
use crate::config::TlsConfig;
use crate::engine::request_path;
use provider_http::tls::display_url;
use provider_http::{Answer, Endpoint, Failure};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use secrecy::{ExposeSecret as _, SecretString};
use secrets_core::{ErrorKind, RequestKind, ResolveContext, RetryPolicy};
use std::fmt;
use std::future::Future;

const X_VAULT_REQUEST: HeaderName = HeaderName::from_static("x-vault-request");
const X_VAULT_TOKEN: HeaderName = HeaderName::from_static("x-vault-token");
const X_VAULT_NAMESPACE: HeaderName = HeaderName::from_static("x-vault-namespace");

/// A parsed `VAULT_SERVER_URL`.
pub(crate) fn parse_server_url(raw: &str) -> Result<Url, Failure> {
    let fix = "set the VAULT_SERVER_URL CI/CD variable to the Vault address, e.g. https://vault.example.com:8200";
    if raw.trim().is_empty() {
        return Err(
            Failure::new(ErrorKind::InvalidConfig, "the Vault server URL is empty").with_fix(fix),
        );
    }
    let url = Url::parse(raw.trim()).map_err(|e| {
        Failure::new(
            ErrorKind::InvalidConfig,
            format!("the Vault server URL is not a valid URL ({e})"),
        )
        .with_fix(fix)
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(Failure::new(
            ErrorKind::InvalidConfig,
            format!(
                "the Vault server URL {} is not an http(s) URL with a host",
                display_url(&url)
            ),
        )
        .with_fix(fix));
    }
    Ok(url)
}

/// One Vault server, for one resolution.
pub(crate) struct ServerClient {
    endpoint: Endpoint,
    /// Where requests go: the server URL without query and fragment.
    base: Url,
    /// The server URL as the job names it, for messages.
    pub(crate) display: String,
    retry: RetryPolicy,
}

impl fmt::Debug for ServerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerClient")
            .field("server", &self.display)
            .field("available_permits", &self.endpoint.available_permits())
            .finish_non_exhaustive()
    }
}

impl ServerClient {
    /// A client for `url`, with the resolution's timeouts and the provider's TLS settings.
    pub(crate) async fn connect(
        url: &Url,
        tls: &TlsConfig,
        ctx: &ResolveContext,
    ) -> Result<Self, Failure> {
        let display = display_url(url);
        let mut base = url.clone();
        base.set_query(None);
        base.set_fragment(None);
        // A TLS server name changes only the name the certificate is verified against
        // (see `provider_http::server_name`): requests and `Host` stay the URL's.
        let settings = tls.client_settings();
        let http = settings
            .build(ctx, &display)
            .map_err(|e| e.with_fix("check the VAULT_CACERT / VAULT_CLIENT_CERT settings"))?;
        Ok(Self {
            endpoint: Endpoint::new(http, ctx),
            base,
            display,
            retry: ctx.retry,
        })
    }

    /// The request timeout.
    pub(crate) fn timeout(&self) -> std::time::Duration {
        self.endpoint.timeout()
    }

    /// The server URL, for messages.
    pub(crate) fn display(&self) -> &str {
        &self.display
    }

    /// The URL of a logical path, refusing paths that climb out of `/v1/`.
    pub(crate) fn url_for(&self, logical: &str) -> Option<Url> {
        let path = request_path(self.base.path(), logical)?;
        let mut url = self.base.clone();
        url.set_path(&path);
        Some(url)
    }

    pub(crate) fn headers(
        namespace: Option<&str>,
        token: Option<&SecretString>,
    ) -> Result<HeaderMap, Failure> {
        let mut headers = HeaderMap::new();
        headers.insert(X_VAULT_REQUEST, HeaderValue::from_static("true"));
        if let Some(ns) = namespace {
            let value = HeaderValue::from_str(ns).map_err(|_| {
                Failure::new(
                    ErrorKind::InvalidConfig,
                    "the Vault namespace is not a valid header value",
                )
                .with_fix("check the VAULT_NAMESPACE CI/CD variable")
            })?;
            headers.insert(X_VAULT_NAMESPACE, value);
        }
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(token.expose_secret()).map_err(|_| {
                Failure::new(
                    ErrorKind::Unexpected,
                    "Vault returned a token that is not a valid header value",
                )
            })?;
            value.set_sensitive(true);
            headers.insert(X_VAULT_TOKEN, value);
        }
        Ok(headers)
    }

    /// One attempt: counted as `kind`, bounded per server, its answer capped.
    pub(crate) async fn attempt(
        &self,
        kind: RequestKind,
        method: Method,
        url: &Url,
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<Answer, Outcome> {
        let mut request = self
            .endpoint
            .http()
            .request(method, url.clone())
            .headers(headers.clone());
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        Ok(self.endpoint.send(kind, request).await?)
    }

    /// Runs `f` again while it fails with a retryable error, as the retry policy allows.
    pub(crate) async fn with_retry<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        provider_http::with_retry(
            &self.retry,
            |e, after| {
                tracing::warn!(
                    server = %self.display,
                    kind = %e.kind,
                    "Vault {what} failed, retrying in {:.1}s: {e}",
                    after.as_secs_f64()
                );
            },
            f,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use provider_http::tls::display_url;

    #[test]
    fn display_url_drops_credentials() {
        let url = parse_server_url("https://user:pw@vault.example.com:8200/?x=1#f").unwrap();
        assert_eq!(display_url(&url), "https://vault.example.com:8200");
        assert_eq!(
            parse_server_url("").unwrap_err().kind,
            ErrorKind::InvalidConfig
        );
        assert!(parse_server_url("vault.example.com").is_err());
        assert!(parse_server_url("ftp://vault").is_err());
    }
}
