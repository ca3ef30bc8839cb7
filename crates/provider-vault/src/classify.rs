//! Classification of Vault failures (runner-semantics §4.7, extended).
//!
//! | failure | login | read |
//! |---|---|---|
//! | 400 | Unauthenticated: audience / bound claims | InvalidSpec |
//! | 401 | Unauthenticated | Unauthenticated |
//! | 403 | Unauthenticated: bound claims, auth path | PermissionDenied: policies |
//! | 404 | InvalidConfig: no auth method at the path | NotFound |
//! | 412 | Unavailable, retried | Unavailable, retried |
//! | 429 | RateLimited, retried | RateLimited, retried |
//! | 503 "Vault is sealed" | Unavailable, not retried | same |
//! | other 5xx | Unavailable, retried | same |
//! | other 4xx | InvalidConfig | InvalidConfig |
//! | connect error, timeout, broken body | Unavailable, retried | same |
//! | TLS verification | InvalidConfig: how to trust the server | same |
//! | unparsable answer | Unexpected | same |
//!
//! Messages quote Vault's `errors` array (server messages, never values), with any token
//! known to the request scrubbed, and never a response body.

use provider_http::{Failure, Transport};
use secrets_core::ErrorKind;

/// The claims of the ID token that explain a refused login. Safe to print.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ClaimHints {
    pub(crate) aud: String,
    pub(crate) sub: String,
    pub(crate) project_path: String,
    pub(crate) git_ref: String,
    pub(crate) ref_type: String,
}

impl ClaimHints {
    pub(crate) fn from_claims(claims: &auth_oidc::Claims) -> Self {
        let get = |name: &str| claims.get_str(name).unwrap_or_else(|| "(none)".to_owned());
        Self {
            aud: get("aud"),
            sub: get("sub"),
            project_path: get("project_path"),
            git_ref: get("ref"),
            ref_type: get("ref_type"),
        }
    }

    fn describe(&self) -> String {
        format!(
            "aud {}, sub {}, project_path {}, ref {}, ref_type {}",
            self.aud, self.sub, self.project_path, self.git_ref, self.ref_type
        )
    }
}

/// What was being done, for messages.
#[derive(Debug, Clone)]
pub(crate) enum Operation<'a> {
    /// `PUT auth/<path>/login`.
    Login {
        /// The cleaned login path, e.g. `auth/jwt/login`.
        login_path: &'a str,
        /// The auth mount as given (`VAULT_AUTH_PATH`).
        auth_path: &'a str,
        role: Option<&'a str>,
        claims: &'a ClaimHints,
    },
    /// `GET <logical path>`.
    Read {
        /// The logical path, e.g. `ops/data/production/db`.
        logical: &'a str,
        role: Option<&'a str>,
    },
    /// `POST auth/token/revoke-self`.
    Revoke,
}

/// How a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// An HTTP answer with a failing status and Vault's `errors` (already scrubbed).
    Status { status: u16, errors: Vec<String> },
    /// Below HTTP: connect, timeout, TLS, a broken body, an answer over the cap.
    Transport(Transport),
    /// A 2xx answer that is not what Vault sends.
    Malformed(&'static str),
}

impl From<Transport> for Outcome {
    fn from(t: Transport) -> Self {
        Self::Transport(t)
    }
}

/// The one classification of this provider: a failed request to `server` into an error.
pub(crate) fn classify(server: &str, op: &Operation<'_>, outcome: &Outcome) -> Failure {
    use ErrorKind::*;
    let what = match op {
        Operation::Login { login_path, .. } => format!("login (PUT {login_path}) at {server}"),
        Operation::Read { logical, .. } => format!("GET {logical} at {server}"),
        Operation::Revoke => format!("token revocation (POST auth/token/revoke-self) at {server}"),
    };
    match outcome {
        Outcome::Status { status, errors } => {
            let quoted = quote(*status, errors);
            let sealed = *status == 503
                && errors
                    .iter()
                    .any(|e| e.to_ascii_lowercase().contains("is sealed"));
            match (*status, op) {
                (_, _) if sealed => Failure::new(Unavailable, format!("{what} failed: Vault is sealed ({quoted})"))
                    .with_retryable(false)
                    .with_fix("ask the Vault operators to unseal it, then retry the job"),
                (400, Operation::Login { role: Some(role), auth_path, .. })
                    if errors.iter().any(|e| e.contains("could not be found")) =>
                {
                    Failure::new(
                        InvalidConfig,
                        format!("Vault refused the {what} with role `{role}` ({quoted})"),
                    )
                    .with_fix(format!(
                        "check VAULT_AUTH_ROLE: no role `{role}` exists on the auth method at `{auth_path}`"
                    ))
                }
                (400 | 401, Operation::Login { role, claims, .. }) => Failure::new(
                    Unauthenticated,
                    format!("Vault refused the {what}{} ({quoted})", role_text(*role)),
                )
                .with_fix(format!(
                    "check that the role's bound_audiences include the token's aud and that its \
                     bound_claims match the token's claims ({}); the audience comes from \
                     `id_tokens:<NAME>:aud` in the job",
                    claims.describe()
                )),
                (403, Operation::Login { role, claims, auth_path, .. }) => Failure::new(
                    Unauthenticated,
                    format!("Vault denied the {what}{} ({quoted})", role_text(*role)),
                )
                .with_fix(format!(
                    "check the role's bound_claims against the token's claims ({}), and that a JWT \
                     auth method is mounted at `{auth_path}` (VAULT_AUTH_PATH)",
                    claims.describe()
                )),
                (404, Operation::Login { auth_path, .. }) => Failure::new(
                    InvalidConfig,
                    format!("no login endpoint for the {what} ({quoted})"),
                )
                .with_fix(format!(
                    "check VAULT_AUTH_PATH: no JWT auth method is mounted at `{auth_path}`"
                )),
                (400, Operation::Read { .. }) => Failure::new(
                    InvalidSpec,
                    format!("Vault rejected the {what} ({quoted})"),
                )
                .with_fix("check the secret's engine, mount and path"),
                (401, _) => Failure::new(
                    Unauthenticated,
                    format!("Vault did not accept the login token for the {what} ({quoted})"),
                )
                .with_fix("the Vault token may have expired (check the role's token_ttl) or been revoked"),
                (403, Operation::Read { logical, role }) => Failure::new(
                    PermissionDenied,
                    format!(
                        "the role's policies do not grant read on {logical} ({what} answered {quoted})"
                    ),
                )
                .with_fix(format!(
                    "add `path \"{logical}\" {{ capabilities = [\"read\"] }}` to a policy of the role{}, \
                     or check the engine, mount and path (a path with nothing mounted is denied too)",
                    role.map(|r| format!(" `{r}`")).unwrap_or_else(|| " (the auth method's default_role)".to_owned())
                )),
                (404, Operation::Read { .. }) => Failure::new(
                    NotFound,
                    format!("secret not found: {what} answered {quoted}"),
                )
                .with_fix("check the mount and path; for kv-v2 the mount is the engine path, without `data/`"),
                (412, _) => Failure::new(
                    Unavailable,
                    format!("{what} failed: the Vault node is not consistent yet ({quoted})"),
                ),
                (429, _) => Failure::new(RateLimited, format!("Vault throttled the {what} ({quoted})"))
                    .with_fix("lower the concurrency of secret reads, or raise Vault's rate limit quota"),
                (500..=599, _) => Failure::new(Unavailable, format!("{what} failed on the server ({quoted})"))
                    .with_fix("Vault is failing; check its status and logs, then retry"),
                (400..=499, _) => Failure::new(InvalidConfig, format!("Vault rejected the {what} ({quoted})"))
                    .with_fix("the generic engine reads with GET only; check the engine name and path"),
                _ => Failure::new(Unexpected, format!("{what} answered an unexpected status ({quoted})")),
            }
        }
        Outcome::Transport(Transport::Connect(cause)) => Failure::new(
            Unavailable,
            format!("cannot connect for the {what}: {cause}"),
        )
        .with_fix(
            "check VAULT_SERVER_URL and that Vault is reachable from where secrets are resolved",
        ),
        Outcome::Transport(Transport::Timeout(after)) => Failure::new(
            Unavailable,
            format!("no answer to the {what} within {}s", after.as_secs_f64()),
        )
        .with_fix("check that Vault is reachable and healthy"),
        Outcome::Transport(Transport::Body(cause)) => Failure::new(
            Unavailable,
            format!("the connection broke during the {what}: {cause}"),
        ),
        Outcome::Transport(Transport::Tls(cause)) => Failure::new(
            InvalidConfig,
            format!("TLS with {server} failed for the {what}: {cause}"),
        )
        .with_fix(
            "to trust the server, set VAULT_CACERT (or BAO_CACERT) to the PEM file of the CA that \
             signed its certificate in the environment of the process that resolves secrets (or \
             VAULT_CAPATH to a directory of them), or add that CA to the system trust store; if \
             the certificate is not valid for the host in VAULT_SERVER_URL, set \
             VAULT_TLS_SERVER_NAME to a name it holds (the request still goes to that host)",
        ),
        Outcome::Malformed(why) => Failure::new(
            Unexpected,
            format!("the answer to the {what} is malformed: {why}"),
        ),
        Outcome::Transport(Transport::TooLarge(limit)) => Failure::new(
            Unexpected,
            format!("the answer to the {what} is larger than {limit} bytes; not read"),
        )
        .with_fix("check that VAULT_SERVER_URL points at Vault and the path at a secret"),
    }
}

fn role_text(role: Option<&str>) -> String {
    match role {
        Some(r) => format!(" with role `{r}`"),
        None => " with the auth method's default_role".to_owned(),
    }
}

fn quote(status: u16, errors: &[String]) -> String {
    if errors.is_empty() {
        format!("status {status}")
    } else {
        format!("status {status}: {}", errors.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn status(status: u16, errors: &[&str]) -> Outcome {
        Outcome::Status {
            status,
            errors: errors.iter().map(|e| (*e).to_owned()).collect(),
        }
    }

    #[test]
    fn classification_table() {
        let hints = ClaimHints {
            aud: "https://vault.example.com".into(),
            sub: "project_path:g/p:ref_type:branch:ref:main".into(),
            project_path: "g/p".into(),
            git_ref: "main".into(),
            ref_type: "branch".into(),
        };
        let login = Operation::Login {
            login_path: "auth/jwt/login",
            auth_path: "jwt",
            role: Some("ci"),
            claims: &hints,
        };
        let read = Operation::Read {
            logical: "ops/data/production/db",
            role: Some("ci"),
        };
        let server = "https://vault.example.com:8200";
        // (operation, outcome, kind, retryable, text the message or fix must contain)
        let table: Vec<(&Operation<'_>, Outcome, ErrorKind, bool, &str)> = vec![
            (
                &login,
                status(
                    400,
                    &["error validating token: invalid audience (aud) claim"],
                ),
                ErrorKind::Unauthenticated,
                false,
                "bound_audiences",
            ),
            (
                &login,
                status(400, &["x"]),
                ErrorKind::Unauthenticated,
                false,
                "aud https://vault.example.com, sub project_path:g/p",
            ),
            (
                &login,
                status(401, &[]),
                ErrorKind::Unauthenticated,
                false,
                "ref_type branch",
            ),
            (
                &login,
                status(403, &["permission denied"]),
                ErrorKind::Unauthenticated,
                false,
                "check the role's bound_claims",
            ),
            (
                &login,
                status(404, &[]),
                ErrorKind::InvalidConfig,
                false,
                "VAULT_AUTH_PATH",
            ),
            (
                &login,
                status(429, &[]),
                ErrorKind::RateLimited,
                true,
                "throttled",
            ),
            (
                &login,
                status(500, &["internal error"]),
                ErrorKind::Unavailable,
                true,
                "internal error",
            ),
            (
                &login,
                status(503, &["Vault is sealed"]),
                ErrorKind::Unavailable,
                false,
                "unseal",
            ),
            (
                &read,
                status(400, &["bad path"]),
                ErrorKind::InvalidSpec,
                false,
                "bad path",
            ),
            (
                &read,
                status(401, &[]),
                ErrorKind::Unauthenticated,
                false,
                "token",
            ),
            (
                &read,
                status(403, &["permission denied"]),
                ErrorKind::PermissionDenied,
                false,
                "the role's policies do not grant read on ops/data/production/db",
            ),
            (
                &read,
                status(404, &[]),
                ErrorKind::NotFound,
                false,
                "secret not found",
            ),
            (
                &read,
                status(405, &[]),
                ErrorKind::InvalidConfig,
                false,
                "GET only",
            ),
            (
                &read,
                status(412, &[]),
                ErrorKind::Unavailable,
                true,
                "consistent",
            ),
            (&read, status(429, &[]), ErrorKind::RateLimited, true, "429"),
            (&read, status(502, &[]), ErrorKind::Unavailable, true, "502"),
            (&read, status(503, &[]), ErrorKind::Unavailable, true, "503"),
            (
                &read,
                status(503, &["OpenBao is sealed"]),
                ErrorKind::Unavailable,
                false,
                "sealed",
            ),
            (&read, status(302, &[]), ErrorKind::Unexpected, false, "302"),
            (
                &read,
                Outcome::Transport(Transport::Connect(
                    "Connection refused (os error 111)".into(),
                )),
                ErrorKind::Unavailable,
                true,
                "VAULT_SERVER_URL",
            ),
            (
                &read,
                Outcome::Transport(Transport::Timeout(Duration::from_secs(30))),
                ErrorKind::Unavailable,
                true,
                "within 30s",
            ),
            (
                &read,
                Outcome::Transport(Transport::Body("reset".into())),
                ErrorKind::Unavailable,
                true,
                "broke",
            ),
            (
                &login,
                Outcome::Transport(Transport::Tls(
                    "invalid peer certificate: UnknownIssuer".into(),
                )),
                ErrorKind::InvalidConfig,
                false,
                "VAULT_CACERT",
            ),
            (
                &read,
                Outcome::Malformed("not JSON"),
                ErrorKind::Unexpected,
                false,
                "malformed",
            ),
            (
                &Operation::Revoke,
                status(403, &[]),
                ErrorKind::InvalidConfig,
                false,
                "revoke-self",
            ),
        ];
        for (op, outcome, kind, retryable, text) in table {
            let err = classify(server, op, &outcome);
            assert_eq!(err.kind, kind, "{outcome:?} on {op:?}: {err}");
            assert_eq!(err.retryable, retryable, "{outcome:?} on {op:?}: {err}");
            let printed = err.to_string();
            assert!(printed.contains(text), "{outcome:?}: {printed}");
            assert!(
                printed.contains(server) || matches!(outcome, Outcome::Status { .. }),
                "{printed}"
            );
        }
    }

    #[test]
    fn every_message_names_the_server() {
        let read = Operation::Read {
            logical: "a/b",
            role: None,
        };
        for code in [400, 401, 403, 404, 429, 500, 503] {
            let err = classify("http://v:1", &read, &status(code, &[]));
            assert!(err.message.contains("http://v:1"), "{code}: {err}");
            assert!(err.message.contains("a/b"), "{code}: {err}");
        }
    }
}
