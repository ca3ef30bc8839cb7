//! The requests, on `provider-http`: the STS token exchange, `:access` and, when the user
//! opts in, IAM Credentials `generateAccessToken`.
//!
//! STS: `POST <sts>/v1/token`, no `Authorization`, the JSON body GitLab Runner's Go client
//! sends (camelCase): `audience`, `grantType`, `requestedTokenType`, `scope`, `subjectToken`,
//! `subjectTokenType`; the answer's `access_token`. Impersonation: `POST
//! <iamcredentials>/v1/projects/-/serviceAccounts/<email>:generateAccessToken` with the
//! federated token as bearer and `{"scope": ["https://www.googleapis.com/auth/cloud-platform"],
//! "lifetime": "3600s"}`; the answer's `accessToken`. Secret Manager: `GET
//! <endpoint>/v1/<resource>:access` with `Authorization: Bearer <access_token>`.

use crate::answer::{AccessError, Accessed, parse_access_answer};
use crate::classify::{ClaimHints, GoogleError, Operation, Outcome, classify};
use crate::requests::{GCP_ACCESS, GCP_GENERATE_ACCESS_TOKEN, GCP_STS_EXCHANGE};
use provider_http::{Endpoint, Failure};
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use secrecy::{ExposeSecret as _, SecretString};
use secrets_core::{ErrorKind, RequestKind, ResolveContext, RetryPolicy};
use serde::Deserialize;
use std::fmt;
use std::future::Future;
use tracing::instrument;
use zeroize::Zeroizing;

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const REQUESTED_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const SUBJECT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The impersonated token's lifetime: Google's default and longest without the org policy.
const LIFETIME: &str = "3600s";

#[derive(serde::Serialize)]
struct GenerateBody<'a> {
    scope: [&'a str; 1],
    lifetime: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateAnswer {
    #[serde(default, deserialize_with = "secret_string")]
    access_token: Option<SecretString>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ExchangeBody<'a> {
    audience: &'a str,
    grant_type: &'a str,
    requested_token_type: &'a str,
    scope: &'a str,
    subject_token: &'a str,
    subject_token_type: &'a str,
}

fn secret_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(SecretString::from))
}

#[derive(Deserialize)]
struct ExchangeAnswer {
    #[serde(default, deserialize_with = "secret_string")]
    access_token: Option<SecretString>,
}

/// The JSON answer of a token request: whose JSON it is, and its token field.
trait TokenAnswer: serde::de::DeserializeOwned {
    const JSON: &'static str;
    const FIELD: &'static str;
    fn token(self) -> Option<SecretString>;
}

impl TokenAnswer for ExchangeAnswer {
    const JSON: &'static str = "STS's JSON";
    const FIELD: &'static str = "access_token";
    fn token(self) -> Option<SecretString> {
        self.access_token
    }
}

impl TokenAnswer for GenerateAnswer {
    const JSON: &'static str = "IAM Credentials' JSON";
    const FIELD: &'static str = "accessToken";
    fn token(self) -> Option<SecretString> {
        self.access_token
    }
}

/// One Google server of one resolution.
pub(crate) struct Server {
    endpoint: Endpoint,
    base: Url,
    /// The base URL, for messages.
    pub(crate) display: String,
    retry: RetryPolicy,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("server", &self.display)
            .finish_non_exhaustive()
    }
}

/// The URL of `/v1/projects/-/serviceAccounts/<account>:generateAccessToken` under `base`.
pub(crate) fn generate_url(base: &Url, account: &str) -> Option<Url> {
    let mut url = base.clone();
    url.path_segments_mut()
        .ok()?
        .pop_if_empty()
        .extend(["v1", "projects", "-", "serviceAccounts"])
        .push(&format!("{account}:generateAccessToken"));
    Some(url)
}

fn bearer(token: &SecretString, from: &str) -> Result<HeaderValue, Failure> {
    let mut bearer =
        HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).map_err(|_| {
            Failure::new(
                ErrorKind::Unexpected,
                format!("{from} returned an access token that is not a valid header value"),
            )
        })?;
    bearer.set_sensitive(true);
    Ok(bearer)
}

/// The URL of `/v1/<resource>:access` under `base`, each segment escaped.
pub(crate) fn access_url(base: &Url, resource: &str) -> Option<Url> {
    let mut url = base.clone();
    {
        let mut segments = url.path_segments_mut().ok()?;
        segments.pop_if_empty().push("v1");
        let parts: Vec<&str> = resource.split('/').collect();
        let (last, rest) = parts.split_last()?;
        segments.extend(rest);
        segments.push(&format!("{last}:access"));
    }
    Some(url)
}

impl Server {
    pub(crate) fn new(http: reqwest::Client, base: Url, ctx: &ResolveContext) -> Self {
        Self {
            display: provider_http::tls::display_url(&base),
            endpoint: Endpoint::new(http, ctx),
            base,
            retry: ctx.retry,
        }
    }

    async fn with_retry<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, Failure>
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
                    "GCP {what} failed, retrying in {:.1}s: {e}",
                    after.as_secs_f64()
                );
            },
            f,
        )
        .await
    }

    /// The STS exchange of `jwt` for an access token for `audience`.
    #[instrument(skip_all, fields(sts = %self.display, audience = %audience))]
    pub(crate) async fn exchange(
        &self,
        audience: &str,
        jwt: &str,
        claims: &ClaimHints,
    ) -> Result<SecretString, Failure> {
        let op = Operation::Exchange { audience, claims };
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| Failure::new(ErrorKind::InvalidConfig, "the STS URL has no path"))?
            .pop_if_empty()
            .extend(["v1", "token"]);
        let body = Zeroizing::new(
            serde_json::to_vec(&ExchangeBody {
                audience,
                grant_type: GRANT_TYPE,
                requested_token_type: REQUESTED_TOKEN_TYPE,
                scope: SCOPE,
                subject_token: jwt,
                subject_token_type: SUBJECT_TOKEN_TYPE,
            })
            .map_err(|_| Failure::new(ErrorKind::Unexpected, "cannot encode the STS request"))?,
        );
        self.with_retry("STS token exchange", || async {
            let request = self
                .endpoint
                .http()
                .post(url.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
            self.fetch_token::<ExchangeAnswer>(&op, GCP_STS_EXCHANGE, request, jwt)
                .await
        })
        .await
    }

    /// IAM Credentials `generateAccessToken` for `account`, with the federated `token`.
    #[instrument(skip_all, fields(server = %self.display, service_account = %account))]
    pub(crate) async fn generate_access_token(
        &self,
        account: &str,
        token: &SecretString,
    ) -> Result<SecretString, Failure> {
        let op = Operation::Impersonate {
            account,
            endpoint: &self.display,
        };
        let url = generate_url(&self.base, account).ok_or_else(|| {
            Failure::new(
                ErrorKind::InvalidConfig,
                format!(
                    "the IAM Credentials URL {} cannot take a path",
                    self.display
                ),
            )
        })?;
        let bearer = bearer(token, "STS")?;
        let body = serde_json::to_vec(&GenerateBody {
            scope: [SCOPE],
            lifetime: LIFETIME,
        })
        .map_err(|_| {
            Failure::new(
                ErrorKind::Unexpected,
                "cannot encode the generateAccessToken request",
            )
        })?;
        self.with_retry("generateAccessToken", || async {
            let request = self
                .endpoint
                .http()
                .post(url.clone())
                .header(AUTHORIZATION, bearer.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
            self.fetch_token::<GenerateAnswer>(
                &op,
                GCP_GENERATE_ACCESS_TOKEN,
                request,
                token.expose_secret(),
            )
            .await
        })
        .await
    }

    /// Sends one token request (the STS exchange or `generateAccessToken`) and returns the
    /// token its JSON answer holds; `scrub` is the credential an error body must not show.
    async fn fetch_token<A: TokenAnswer>(
        &self,
        op: &Operation<'_>,
        kind: RequestKind,
        request: reqwest::RequestBuilder,
        scrub: &str,
    ) -> Result<SecretString, Failure> {
        let answer = self
            .endpoint
            .send(kind, request)
            .await
            .map_err(|t| classify(op, &Outcome::Transport(t)))?;
        if !answer.is_success() {
            let error = GoogleError::parse(&answer.body, &[scrub]);
            return Err(classify(
                op,
                &Outcome::Status {
                    status: answer.status,
                    error,
                },
            )
            .with_retry_after(answer.retry_after));
        }
        let parsed: A = serde_json::from_slice(&answer.body).map_err(|_| {
            classify(
                op,
                &Outcome::Malformed(format!("the answer is not {}", A::JSON)),
            )
        })?;
        parsed
            .token()
            .filter(|t| !t.expose_secret().is_empty())
            .ok_or_else(|| {
                classify(
                    op,
                    &Outcome::Malformed(format!("the answer has no {}", A::FIELD)),
                )
            })
    }

    /// `:access` of `resource` with `token` (federated, or `account`'s when it impersonates).
    #[instrument(skip_all, fields(server = %self.display, resource = %resource))]
    pub(crate) async fn access(
        &self,
        resource: &str,
        account: &str,
        token: &SecretString,
    ) -> Result<Accessed, Failure> {
        let op = Operation::Access {
            resource,
            endpoint: &self.display,
            account,
        };
        let url = access_url(&self.base, resource).ok_or_else(|| {
            Failure::new(
                ErrorKind::InvalidConfig,
                format!("the Secret Manager URL {} cannot take a path", self.display),
            )
        })?;
        let bearer = bearer(
            token,
            if account.is_empty() {
                "STS"
            } else {
                "generateAccessToken"
            },
        )?;
        self.with_retry("secret access", || async {
            let request = self
                .endpoint
                .http()
                .get(url.clone())
                .header(AUTHORIZATION, bearer.clone());
            let answer = self
                .endpoint
                .send(GCP_ACCESS, request)
                .await
                .map_err(|t| classify(&op, &Outcome::Transport(t)))?;
            tracing::trace!(
                status = answer.status,
                bytes = answer.body.len(),
                "access answered"
            );
            if !answer.is_success() {
                let error = GoogleError::parse(&answer.body, &[token.expose_secret()]);
                return Err(classify(
                    &op,
                    &Outcome::Status {
                        status: answer.status,
                        error,
                    },
                )
                .with_retry_after(answer.retry_after));
            }
            parse_access_answer(&answer.body).map_err(|e| answer_failure(&op, &e))
        })
        .await
    }
}

/// A 2xx answer that fails the checks.
fn answer_failure(op: &Operation<'_>, e: &AccessError) -> Failure {
    let Operation::Access {
        resource, endpoint, ..
    } = op
    else {
        return classify(op, &Outcome::Malformed(e.to_string()));
    };
    let what = format!("failed to get secret: access to {resource} at {endpoint}");
    match e {
        AccessError::NoPayload => Failure::new(
            ErrorKind::NotFound,
            format!("secret not found: {what} answered no payload"),
        )
        .with_fix("check that the version holds data"),
        AccessError::NoChecksum => Failure::new(
            ErrorKind::Unexpected,
            format!("{what}: {e}, so the value cannot be checked"),
        )
        .with_fix("Secret Manager always sends one; check what answers at this endpoint (CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER)"),
        AccessError::Corrupted => Failure::new(ErrorKind::Unexpected, format!("{what}: {e}"))
            .with_fix("the payload's CRC32C does not match its checksum; retry the job, and check any proxy between the runner and Google"),
        AccessError::NotUtf8(_) => Failure::new(ErrorKind::InvalidConfig, format!("{what}: {e}"))
            .with_fix("store the value as text (base64-encode binary data and decode it in the job)"),
        AccessError::Malformed(_) | AccessError::NotBase64 | AccessError::BadChecksum => {
            Failure::new(ErrorKind::Unexpected, format!("{what}: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_urls_escape_the_account() {
        let base = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            generate_url(&base, "r@p.iam.gserviceaccount.com")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/v1/projects/-/serviceAccounts/r@p.iam.gserviceaccount.com:generateAccessToken"
        );
        assert_eq!(
            generate_url(&base, "a?b#c").unwrap().path(),
            "/v1/projects/-/serviceAccounts/a%3Fb%23c:generateAccessToken"
        );
    }

    #[test]
    fn access_urls_escape_each_segment() {
        let base = Url::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            access_url(&base, "projects/1/secrets/s/versions/latest")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/v1/projects/1/secrets/s/versions/latest:access"
        );
        assert_eq!(
            access_url(&base, "projects/1/secrets/a b?c#d/versions/1")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/v1/projects/1/secrets/a%20b%3Fc%23d/versions/1:access"
        );
        let prefixed = Url::parse("https://proxy.example/google/").unwrap();
        assert_eq!(
            access_url(&prefixed, "projects/1/secrets/s/versions/2")
                .unwrap()
                .as_str(),
            "https://proxy.example/google/v1/projects/1/secrets/s/versions/2:access"
        );
    }
}
