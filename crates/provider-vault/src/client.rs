//! HTTP calls to one Vault server: login, read, revoke. Plain `reqwest` (see
//! `docs/adr/0001-vault-client.md`), one keep-alive client per server URL per resolution.
//!
//! Every attempt is counted in the resolution's [`RequestCounter`] and holds one of the
//! server's concurrency permits while it runs (not while it backs off). Retryable failures
//! are retried with jittered exponential backoff from the resolution's [`RetryPolicy`].

use crate::config::TlsConfig;
use crate::engine::{login_path, request_path};
use crate::error::{
    ClaimHints, Operation, Outcome, VaultError, classify, server_errors, transport_outcome,
};
use crate::format::not_found_body_has_secret;
use auth_oidc::IdToken;
use backon::{ExponentialBuilder, Retryable as _};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use secrecy::{ExposeSecret as _, SecretString};
use secrets_core::{ErrorKind, RequestCounter, RequestKind, ResolveContext, RetryPolicy};
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::instrument;
use zeroize::Zeroizing;

/// The longest answer read from Vault. Secrets are small; a larger answer is not Vault (or not
/// a secret), and reading it whole would let a server exhaust memory.
pub(crate) const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// The longest `Retry-After` honoured; a longer wait is cut to this (the deadline still
/// bounds the whole resolution).
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

const X_VAULT_REQUEST: HeaderName = HeaderName::from_static("x-vault-request");
const X_VAULT_TOKEN: HeaderName = HeaderName::from_static("x-vault-token");
const X_VAULT_NAMESPACE: HeaderName = HeaderName::from_static("x-vault-namespace");

/// The server URL without user info, query or fragment: safe to print.
pub(crate) fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.as_str().trim_end_matches('/').to_owned()
}

/// A parsed `VAULT_SERVER_URL`.
pub(crate) fn parse_server_url(raw: &str) -> Result<Url, VaultError> {
    let fix = "set the VAULT_SERVER_URL CI/CD variable to the Vault address, e.g. https://vault.example.com:8200";
    if raw.trim().is_empty() {
        return Err(
            VaultError::new(ErrorKind::InvalidConfig, "the Vault server URL is empty")
                .with_fix(fix),
        );
    }
    let url = Url::parse(raw.trim()).map_err(|e| {
        VaultError::new(
            ErrorKind::InvalidConfig,
            format!("the Vault server URL is not a valid URL ({e})"),
        )
        .with_fix(fix)
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(VaultError::new(
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
    http: reqwest::Client,
    /// Where requests go (the host is the TLS server name when one is set).
    base: Url,
    /// The server URL as the job names it, for messages.
    display: String,
    permits: Semaphore,
    timeout: Duration,
    retry: RetryPolicy,
    requests: RequestCounter,
}

impl fmt::Debug for ServerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerClient")
            .field("server", &self.display)
            .field("available_permits", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

#[derive(serde::Serialize)]
struct LoginBody<'a> {
    jwt: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
}

#[derive(serde::Deserialize)]
struct LoginAnswer {
    #[serde(default)]
    auth: Option<LoginAuth>,
}

#[derive(serde::Deserialize)]
struct LoginAuth {
    #[serde(default)]
    client_token: Option<String>,
}

/// An HTTP answer: status and body (zeroized on drop).
struct Answer {
    status: u16,
    body: Zeroizing<Vec<u8>>,
    /// `Retry-After` in seconds (the form Vault's rate-limit quotas send).
    retry_after: Option<Duration>,
}

impl ServerClient {
    /// A client for `url`, with the resolution's timeouts and the provider's TLS settings.
    pub(crate) async fn connect(
        url: &Url,
        tls: &TlsConfig,
        ctx: &ResolveContext,
    ) -> Result<Self, VaultError> {
        let display = display_url(url);
        let mut base = url.clone();
        base.set_query(None);
        base.set_fragment(None);
        let mut builder = reqwest::Client::builder()
            .connect_timeout(ctx.connect_timeout)
            .timeout(ctx.request_timeout)
            .user_agent(concat!(
                "ci-secrets-provider-vault/",
                env!("CARGO_PKG_VERSION")
            ))
            // Follow a standby's redirect to the active node, as the OpenBao client does, but
            // never from https to http: the request carries the Vault token.
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let downgrade = attempt.url().scheme() != "https"
                    && attempt.previous().iter().any(|u| u.scheme() == "https");
                if downgrade || attempt.previous().len() > 3 {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            }));
        if !tls.ca_certs.is_empty() {
            builder = builder.tls_certs_only(tls.ca_certs.iter().cloned());
        }
        if let Some(identity) = &tls.identity {
            builder = builder.identity(identity.clone());
        }
        if tls.skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(proxy) = &tls.proxy {
            tracing::debug!(
                proxy = proxy.shown.as_str(),
                "Vault requests go through a proxy"
            );
            builder = builder.proxy(proxy.proxy.clone());
        }
        if let Some(name) = tls
            .server_name
            .as_deref()
            .filter(|_| url.scheme() == "https")
        {
            // Verify the certificate against `name` while connecting to the URL's address:
            // send the request to `name`, resolved to the URL host's addresses.
            let port = url.port_or_known_default().unwrap_or(443);
            let host = url.host_str().unwrap_or_default();
            let addrs: Vec<SocketAddr> = match host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            {
                Ok(ip) => vec![SocketAddr::new(ip, port)],
                Err(_) => tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|e| {
                        VaultError::new(
                            ErrorKind::Unavailable,
                            format!("cannot resolve the host of {display}: {e}"),
                        )
                        .with_fix("check VAULT_SERVER_URL")
                    })?
                    .collect(),
            };
            builder = builder.resolve_to_addrs(name, &addrs);
            base.set_host(Some(name)).map_err(|e| {
                VaultError::new(
                    ErrorKind::InvalidConfig,
                    format!("VAULT_TLS_SERVER_NAME {name:?} is not a valid host name ({e})"),
                )
            })?;
        }
        let http = builder.build().map_err(|e| {
            VaultError::new(
                ErrorKind::InvalidConfig,
                format!("cannot set up an HTTP client for {display}: {e}"),
            )
            .with_fix("check the VAULT_CACERT / VAULT_CLIENT_CERT settings")
        })?;
        Ok(Self {
            http,
            base,
            display,
            permits: Semaphore::new(ctx.max_concurrency.max(1)),
            timeout: ctx.request_timeout,
            retry: ctx.retry,
            requests: ctx.requests.clone(),
        })
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

    fn headers(
        namespace: Option<&str>,
        token: Option<&SecretString>,
    ) -> Result<HeaderMap, VaultError> {
        let mut headers = HeaderMap::new();
        headers.insert(X_VAULT_REQUEST, HeaderValue::from_static("true"));
        if let Some(ns) = namespace {
            let value = HeaderValue::from_str(ns).map_err(|_| {
                VaultError::new(
                    ErrorKind::InvalidConfig,
                    "the Vault namespace is not a valid header value",
                )
                .with_fix("check the VAULT_NAMESPACE CI/CD variable")
            })?;
            headers.insert(X_VAULT_NAMESPACE, value);
        }
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(token.expose_secret()).map_err(|_| {
                VaultError::new(
                    ErrorKind::Unexpected,
                    "Vault returned a token that is not a valid header value",
                )
            })?;
            value.set_sensitive(true);
            headers.insert(X_VAULT_TOKEN, value);
        }
        Ok(headers)
    }

    /// One attempt: counts it, takes a permit, sends, reads the whole body.
    async fn attempt(
        &self,
        kind: RequestKind,
        method: Method,
        url: &Url,
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Result<Answer, Outcome> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Outcome::Connect("closed".into()))?;
        self.requests.record(kind);
        let mut request = self
            .http
            .request(method, url.clone())
            .headers(headers.clone());
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_outcome(&e, self.timeout))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut response = response;
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(Outcome::TooLarge(MAX_ANSWER_BYTES));
        }
        let mut body = Zeroizing::new(Vec::new());
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| transport_outcome(&e, self.timeout))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(Outcome::TooLarge(MAX_ANSWER_BYTES));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            body,
            retry_after,
        })
    }

    /// Runs `f` again while it fails with a retryable error, as the retry policy allows.
    async fn with_retry<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, VaultError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, VaultError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_attempts.saturating_sub(1) as usize)
            .with_jitter();
        f.retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e: &VaultError| e.retryable)
            // The server's `Retry-After` lengthens the wait, never shortens it.
            .adjust(|e: &VaultError, next: Option<Duration>| {
                next.map(|wait| match e.retry_after {
                    Some(asked) => wait.max(asked.min(MAX_RETRY_AFTER)),
                    None => wait,
                })
            })
            .notify(|e: &VaultError, after: Duration| {
                tracing::warn!(
                    server = %self.display,
                    kind = %e.kind,
                    "Vault {what} failed, retrying in {:.1}s: {e}",
                    after.as_secs_f64()
                );
            })
            .await
    }

    /// `PUT auth/<path>/login` with `{"jwt", "role"}`; the Vault token from `auth.client_token`.
    #[instrument(skip_all, fields(server = %self.display, auth_path = %auth_path, role = role.unwrap_or("")))]
    pub(crate) async fn login(
        &self,
        namespace: Option<&str>,
        auth_path: &str,
        role: Option<&str>,
        token: &IdToken,
        hints: &ClaimHints,
    ) -> Result<SecretString, VaultError> {
        let login = login_path(auth_path);
        let op = Operation::Login {
            login_path: &login,
            auth_path,
            role,
            claims: hints,
        };
        let url = self.url_for(&login).ok_or_else(|| {
            VaultError::new(
                ErrorKind::InvalidConfig,
                format!(
                    "the auth path {auth_path:?} climbs out of /v1/ on {}",
                    self.display
                ),
            )
            .with_fix("set VAULT_AUTH_PATH to the JWT auth method's mount path, e.g. jwt")
        })?;
        let headers = Self::headers(namespace, None)?;
        let body = Zeroizing::new(
            serde_json::to_vec(&LoginBody {
                jwt: token.expose(),
                role,
            })
            .map_err(|_| {
                VaultError::new(ErrorKind::Unexpected, "cannot encode the login request")
            })?,
        );
        self.with_retry("login", || async {
            let answer = self
                .attempt(
                    RequestKind::VaultLogin,
                    Method::PUT,
                    &url,
                    &headers,
                    Some(&body),
                )
                .await
                .map_err(|o| classify(&self.display, &op, &o))?;
            if !(200..300).contains(&answer.status) {
                let errors = server_errors(&answer.body, &[token.expose()]);
                return Err(classify(
                    &self.display,
                    &op,
                    &Outcome::Status {
                        status: answer.status,
                        errors,
                    },
                )
                .with_retry_after(answer.retry_after));
            }
            let parsed: LoginAnswer = serde_json::from_slice(&answer.body).map_err(|_| {
                classify(
                    &self.display,
                    &op,
                    &Outcome::Malformed("the answer is not JSON"),
                )
            })?;
            parsed
                .auth
                .and_then(|a| a.client_token)
                .filter(|t| !t.is_empty())
                .map(SecretString::from)
                .ok_or_else(|| {
                    classify(
                        &self.display,
                        &op,
                        &Outcome::Malformed("it has no auth.client_token"),
                    )
                })
        })
        .await
    }

    /// `GET <logical>`: the answer's body on 2xx, or on a 404 that still carries data or
    /// warnings (the OpenBao client's rule); a `NotFound` error on any other 404.
    #[instrument(skip_all, fields(server = %self.display, path = %logical))]
    pub(crate) async fn read(
        &self,
        namespace: Option<&str>,
        vault_token: &SecretString,
        logical: &str,
        role: Option<&str>,
    ) -> Result<Zeroizing<String>, VaultError> {
        let op = Operation::Read { logical, role };
        let url = self.url_for(logical).ok_or_else(|| {
            VaultError::new(
                ErrorKind::InvalidSpec,
                format!(
                    "the secret path {logical:?} climbs out of /v1/ on {}",
                    self.display
                ),
            )
            .with_fix("remove the `..` segments from the engine path and the secret path")
        })?;
        let headers = Self::headers(namespace, Some(vault_token))?;
        self.with_retry("read", || async {
            let answer = self
                .attempt(RequestKind::VaultRead, Method::GET, &url, &headers, None)
                .await
                .map_err(|o| classify(&self.display, &op, &o))?;
            let text = || {
                String::from_utf8(answer.body.to_vec())
                    .map(Zeroizing::new)
                    .map_err(|_| {
                        classify(
                            &self.display,
                            &op,
                            &Outcome::Malformed("the answer is not UTF-8"),
                        )
                    })
            };
            match answer.status {
                200..=299 => text(),
                404 => {
                    let body = text().unwrap_or_default();
                    if not_found_body_has_secret(&body) {
                        Ok(body)
                    } else {
                        let errors = server_errors(&answer.body, &[vault_token.expose_secret()]);
                        Err(classify(
                            &self.display,
                            &op,
                            &Outcome::Status {
                                status: 404,
                                errors,
                            },
                        ))
                    }
                }
                status => {
                    let errors = server_errors(&answer.body, &[vault_token.expose_secret()]);
                    Err(
                        classify(&self.display, &op, &Outcome::Status { status, errors })
                            .with_retry_after(answer.retry_after),
                    )
                }
            }
        })
        .await
    }

    /// `POST auth/token/revoke-self`. Not retried.
    #[instrument(skip_all, fields(server = %self.display))]
    pub(crate) async fn revoke(
        &self,
        namespace: Option<&str>,
        vault_token: &SecretString,
    ) -> Result<(), VaultError> {
        let op = Operation::Revoke;
        let url = self
            .url_for("auth/token/revoke-self")
            .ok_or_else(|| VaultError::new(ErrorKind::Unexpected, "no revoke URL"))?;
        let headers = Self::headers(namespace, Some(vault_token))?;
        let answer = self
            .attempt(RequestKind::VaultRevoke, Method::POST, &url, &headers, None)
            .await
            .map_err(|o| classify(&self.display, &op, &o))?;
        if (200..300).contains(&answer.status) {
            Ok(())
        } else {
            let errors = server_errors(&answer.body, &[vault_token.expose_secret()]);
            Err(classify(
                &self.display,
                &op,
                &Outcome::Status {
                    status: answer.status,
                    errors,
                },
            ))
        }
    }
}

/// A logged-in Vault token that is revoked even when the resolution is dropped before it
/// ends (a caller's timeout or cancellation, its runtime shutting down): dropped while still
/// held, it revokes the token on a thread of its own (see `revocation.rs`).
/// [`Self::revoke`] revokes in place, [`Self::keep`] lets the token live until its TTL.
pub(crate) struct TokenGuard {
    client: Arc<ServerClient>,
    namespace: Option<String>,
    token: Option<SecretString>,
}

impl TokenGuard {
    pub(crate) fn new(
        client: Arc<ServerClient>,
        namespace: Option<&str>,
        token: SecretString,
    ) -> Self {
        Self {
            client,
            namespace: namespace.map(str::to_owned),
            token: Some(token),
        }
    }

    /// The token, for requests.
    pub(crate) fn token(&self) -> &SecretString {
        self.token.as_ref().expect("held until revoked or kept")
    }

    /// Revokes the token now.
    pub(crate) async fn revoke(mut self) -> Result<(), VaultError> {
        let token = self.token.take().expect("held until revoked or kept");
        self.client.revoke(self.namespace.as_deref(), &token).await
    }

    /// Lets the token live until its TTL ends (revocation turned off).
    pub(crate) fn keep(mut self) {
        self.token = None;
    }
}

impl Drop for TokenGuard {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        tracing::info!(server = %self.client.display, "resolution dropped: revoking its Vault token");
        let bound = self.client.timeout;
        crate::revocation::revoke_detached(
            Arc::clone(&self.client),
            bound,
            self.namespace.take(),
            token,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
