//! One OpenBao server of one resolution: its client and the inline-auth read, with retries
//! and classified failures.

use crate::inline::{encode_parameter, login_failed};
use crate::requests::READ;
use provider_http::tls::display_url;
use provider_http::{Answer, ClientSettings, Endpoint, Failure, Transport};
use provider_vault::{request_path, server_errors};
use reqwest::Url;
use reqwest::header::HeaderMap;
use secrets_core::{ErrorKind, ResolveContext, RetryPolicy};
use std::fmt;

/// One OpenBao server, for one resolution.
pub(crate) struct ServerClient {
    endpoint: Endpoint,
    base: Url,
    display: String,
    retry: RetryPolicy,
}

impl fmt::Debug for ServerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerClient")
            .field("server", &self.display)
            .finish_non_exhaustive()
    }
}

/// What one read tells about its identity, for the failure's message and fix.
#[derive(Debug, Clone, Copy)]
pub struct ReadContext<'a> {
    /// The logical path read (`<engine>/data/<path>`).
    pub logical: &'a str,
    /// The inline login path.
    pub auth_path: &'a str,
    /// The OpenBao role.
    pub role: &'a str,
    /// The JWT sent, scrubbed from quoted server messages (raw and as sent in its header).
    pub jwt: &'a str,
}

impl ServerClient {
    /// A client for `url` with the resolution's timeouts.
    pub(crate) fn connect(
        url: &Url,
        settings: &ClientSettings,
        ctx: &ResolveContext,
    ) -> Result<Self, Failure> {
        let display = display_url(url);
        let mut base = url.clone();
        base.set_query(None);
        base.set_fragment(None);
        let http = settings
            .build(ctx, &display)
            .map_err(|e| e.with_fix("check the VAULT_CACERT / BAO_CACERT setting"))?;
        Ok(Self {
            endpoint: Endpoint::new(http, ctx),
            base,
            display,
            retry: ctx.retry,
        })
    }

    /// The server URL, for messages.
    pub(crate) fn display(&self) -> &str {
        &self.display
    }

    /// `GET <logical>` with the identity's inline-auth headers; the answer body on 200.
    pub(crate) async fn read(
        &self,
        headers: &HeaderMap,
        read: &ReadContext<'_>,
    ) -> Result<Answer, Failure> {
        let path = request_path(self.base.path(), read.logical).ok_or_else(|| {
            Failure::new(
                ErrorKind::InvalidSpec,
                format!(
                    "the secret path {:?} climbs out of /v1/ on {}",
                    read.logical, self.display
                ),
            )
        })?;
        let mut url = self.base.clone();
        url.set_path(&path);
        provider_http::with_retry(
            &self.retry,
            |e, after| {
                tracing::warn!(
                    server = %self.display,
                    kind = %e.kind,
                    "OpenBao read failed, retrying in {:.1}s: {e}",
                    after.as_secs_f64()
                );
            },
            || async {
                let request = self
                    .endpoint
                    .http()
                    .get(url.clone())
                    .headers(headers.clone());
                let answer = self
                    .endpoint
                    .send(READ, request)
                    .await
                    .map_err(|t| self.transport(read.logical, &t))?;
                if answer.status == 200 {
                    Ok(answer)
                } else {
                    Err(read_failure(&answer, &self.display, read))
                }
            },
        )
        .await
    }

    /// A transport failure.
    fn transport(&self, logical: &str, t: &Transport) -> Failure {
        let server = &self.display;
        match t {
            Transport::Connect(cause) => Failure::new(
                ErrorKind::Unavailable,
                format!("cannot connect to {server} for GET {logical}: {cause}"),
            )
            .with_fix("check that GitLab's OpenBao URL is reachable from where secrets are resolved"),
            Transport::Timeout(after) => Failure::new(
                ErrorKind::Unavailable,
                format!(
                    "no answer from {server} to GET {logical} within {}s",
                    after.as_secs_f64()
                ),
            ),
            Transport::Body(cause) => Failure::new(
                ErrorKind::Unavailable,
                format!("the connection to {server} broke during GET {logical}: {cause}"),
            ),
            Transport::Tls(cause) => Failure::new(
                ErrorKind::InvalidConfig,
                format!("TLS with {server} failed for GET {logical}: {cause}"),
            )
            .with_fix("set VAULT_CACERT (or BAO_CACERT) to the PEM file of the CA of OpenBao's certificate"),
            Transport::TooLarge(limit) => Failure::new(
                ErrorKind::Unexpected,
                format!("the answer of {server} to GET {logical} is larger than {limit} bytes; not read"),
            ),
        }
    }
}

/// The failure of a read that OpenBao at `server` answered with a status other than 200,
/// classified by OpenBao's inline-auth header. Only OpenBao's `errors` are quoted, with the
/// JWT scrubbed from them (as is and base64url-encoded as its header carries it).
pub fn read_failure(answer: &Answer, server: &str, read: &ReadContext<'_>) -> Failure {
    let encoded = encode_parameter("jwt", read.jwt);
    let errors = server_errors(&answer.body, &[read.jwt, encoded.as_str()]);
    let quoted = if errors.is_empty() {
        format!("HTTP {}", answer.status)
    } else {
        format!("HTTP {}: {}", answer.status, errors.join(", "))
    };
    let (logical, auth, role) = (read.logical, read.auth_path, read.role);
    if login_failed(&answer.headers) {
        let text = errors.join(" ").to_ascii_lowercase();
        let fix = if text.contains("could not be found") || text.contains("missing role") {
            format!(
                "the OpenBao role {role:?} does not exist at {auth}; GitLab uses role all_pipelines"
            )
        } else if text.contains("audience") {
            format!(
                "the JWT's aud must be the OpenBao URL the role binds ({server}); with \
                 --ci-config, mint the ID token with `aud: {server}`"
            )
        } else if text.contains("expired") || text.contains("exp)") {
            "the JWT has expired: GitLab mints it per job; retry the job (with --ci-config, \
             use a fresh ID token)"
                .to_owned()
        } else if text.contains("claim") {
            format!(
                "the JWT's claims do not match the bound_claims of role {role:?} at {auth} \
                 (GitLab binds the project; CEL roles also check `environment:` and the branch)"
            )
        } else if answer.status == 403 {
            format!(
                "no jwt auth method is mounted at {auth} (check the namespace in the path and \
                 the mount name pipeline_jwt)"
            )
        } else {
            format!(
                "OpenBao refused the JWT for role {role:?} at {auth}: check the role's \
                 bound_audiences, bound_issuer and claims, and `environment:` for CEL roles"
            )
        };
        return Failure::new(
            ErrorKind::Unauthenticated,
            format!("inline login at {auth} on {server} failed for GET {logical} ({quoted})"),
        )
        .with_fix(fix)
        .with_code("inline_auth_failed");
    }
    match answer.status {
        404 => Failure::new(
            ErrorKind::NotFound,
            format!("secret not found: GET {logical} at {server} ({quoted})"),
        )
        .with_fix(
            "create the secret in the project's or group's secrets manager, or check its \
             name and `source:` (project or group/<full path>)",
        ),
        403 => Failure::new(
            ErrorKind::PermissionDenied,
            format!("OpenBao denied GET {logical} at {server} after logging in with role {role:?} ({quoted})"),
        )
        .with_fix(
            "the role's policy does not cover this path: grant the project (or the group \
             secret's environment and branch rules) read access to the secret",
        ),
        429 => Failure::new(
            ErrorKind::RateLimited,
            format!("OpenBao throttled GET {logical} at {server} ({quoted})"),
        )
        .with_fix("lower the concurrency of secret reads, or retry later")
        .with_retry_after(answer.retry_after),
        500..=599 => {
            // OpenBao answers 500 to malformed inline auth too: not worth retrying.
            let inline = errors.iter().any(|e| e.contains("inline authentication"));
            Failure::new(
                ErrorKind::Unavailable,
                format!("GET {logical} failed on the server {server} ({quoted})"),
            )
            .with_fix("OpenBao is failing; check its status and logs, then retry")
            .with_retryable(!inline)
            .with_retry_after(answer.retry_after)
        }
        _ => Failure::new(
            ErrorKind::Unexpected,
            format!("GET {logical} at {server} answered an unexpected status ({quoted})"),
        ),
    }
}
