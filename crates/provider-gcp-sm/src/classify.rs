//! The one classification of this provider's failures (GitLab Runner classifies none of
//! them: every GCP error is a system failure there).
//!
//! | request | answer | kind | fix |
//! |---|---|---|---|
//! | STS | 400 `invalid_grant` | Unauthenticated | the token's `aud` must be an allowed audience; not expired |
//! | STS | 400 `unauthorized_client` | Unauthenticated | the provider's attribute condition |
//! | STS | 400 `invalid_target` | InvalidConfig | the pool/provider (the three `GCP_*` variables) |
//! | STS | 400 `invalid_request`, `google.subject` | InvalidConfig | the 127-byte `google.subject` limit |
//! | STS | 400 `invalid_request`, other | InvalidConfig | the `GCP_*` variables |
//! | STS | other 4xx | Unauthenticated | |
//! | generateAccessToken | `PERMISSION_DENIED` | PermissionDenied | `roles/iam.workloadIdentityUser` on the service account |
//! | generateAccessToken | `NOT_FOUND` | NotFound | the service account email |
//! | generateAccessToken | `UNAUTHENTICATED` | Unauthenticated | |
//! | generateAccessToken | `INVALID_ARGUMENT`, `FAILED_PRECONDITION` | InvalidConfig | the email; the IAM Credentials API |
//! | access | `NOT_FOUND` | NotFound | name, version, project |
//! | access | `PERMISSION_DENIED` | PermissionDenied | `roles/secretmanager.secretAccessor` (for the service account when impersonating) |
//! | access | `FAILED_PRECONDITION` | NotFound | the version is disabled or destroyed |
//! | access | `UNAUTHENTICATED` | Unauthenticated | |
//! | access | `INVALID_ARGUMENT` | InvalidSpec | the name and version |
//! | both | 429 / `RESOURCE_EXHAUSTED` | RateLimited, retried | |
//! | both | 5xx / `UNAVAILABLE`, `INTERNAL`, `DEADLINE_EXCEEDED` | Unavailable, retried | |
//! | both | connect, timeout, broken body | Unavailable, retried | |
//! | both | TLS | InvalidConfig | |
//! | both | an answer that is not Google's | Unexpected | |
//!
//! Secret Manager answers are classified on Google's `error.status` first and the HTTP code
//! only when it is absent. Messages quote Google's error text with every token of the request
//! scrubbed, never a body.

use crate::config::IMPERSONATE_VARIABLE;
use provider_http::{Failure, Transport};
use secrets_core::ErrorKind;

/// The claims of the ID token that explain a refused exchange. Safe to print.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ClaimHints {
    pub(crate) aud: String,
    pub(crate) sub: String,
    pub(crate) sub_bytes: usize,
    pub(crate) project_id: String,
    pub(crate) namespace_path: String,
}

impl ClaimHints {
    pub(crate) fn from_claims(claims: &auth_oidc::Claims) -> Self {
        let get = |name: &str| claims.get_str(name).unwrap_or_else(|| "(none)".to_owned());
        let sub = claims.get_str("sub").unwrap_or_default();
        Self {
            aud: get("aud"),
            sub_bytes: sub.len(),
            sub: if sub.is_empty() {
                "(none)".to_owned()
            } else {
                sub
            },
            project_id: get("project_id"),
            namespace_path: get("namespace_path"),
        }
    }
}

/// What was being done.
#[derive(Debug, Clone)]
pub(crate) enum Operation<'a> {
    /// STS `POST /v1/token`.
    Exchange {
        audience: &'a str,
        claims: &'a ClaimHints,
    },
    /// IAM Credentials `generateAccessToken` for `account` at `endpoint`.
    Impersonate { account: &'a str, endpoint: &'a str },
    /// `GET /v1/<resource>:access` at `endpoint`, as `account` (empty: the federated token).
    Access {
        resource: &'a str,
        endpoint: &'a str,
        account: &'a str,
    },
}

/// Google's error, as far as it is safe to quote (tokens already scrubbed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GoogleError {
    /// STS: the OAuth `error`; Secret Manager: `error.status`.
    pub(crate) code: Option<String>,
    /// STS: `error_description`; Secret Manager: `error.message`.
    pub(crate) message: Option<String>,
}

/// Longest quoted server message.
const MAX_QUOTED: usize = 300;

impl GoogleError {
    /// Reads either error shape from a body, scrubbing `secrets` out of the texts.
    pub(crate) fn parse(body: &[u8], secrets: &[&str]) -> Self {
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Self::default();
        };
        let scrub = |text: &str| {
            let mut out = text.to_owned();
            for secret in secrets.iter().filter(|s| s.len() >= 4) {
                out = out.replace(secret, "<redacted>");
            }
            if out.len() > MAX_QUOTED {
                let mut cut = MAX_QUOTED;
                while !out.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.truncate(cut);
                out.push('…');
            }
            out
        };
        let text = |v: &serde_json::Value| v.as_str().map(scrub);
        match &doc["error"] {
            serde_json::Value::String(code) => Self {
                code: Some(scrub(code)),
                message: text(&doc["error_description"]),
            },
            serde_json::Value::Object(e) => Self {
                code: e.get("status").and_then(text),
                message: e.get("message").and_then(text),
            },
            _ => Self::default(),
        }
    }

    fn quote(&self, status: u16) -> String {
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => format!("HTTP {status} {c}: {m}"),
            (Some(c), None) => format!("HTTP {status} {c}"),
            (None, Some(m)) => format!("HTTP {status}: {m}"),
            (None, None) => format!("HTTP {status}"),
        }
    }
}

/// How a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A failing HTTP status and Google's error.
    Status { status: u16, error: GoogleError },
    /// Below HTTP.
    Transport(Transport),
    /// A 2xx answer that is not Google's.
    Malformed(String),
}

impl From<Transport> for Outcome {
    fn from(t: Transport) -> Self {
        Self::Transport(t)
    }
}

/// Google's `error.status`, or the one the HTTP code stands for when it is absent.
fn http_code(code: &str, status: u16) -> &str {
    if !code.is_empty() {
        return code;
    }
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        _ => "",
    }
}

const GCP_VARS: &str = "GCP_PROJECT_NUMBER, GCP_WORKLOAD_IDENTITY_FEDERATION_POOL_ID and GCP_WORKLOAD_IDENTITY_FEDERATION_PROVIDER_ID";

/// The one classification: a failed request into a [`Failure`] with its fix.
pub(crate) fn classify(op: &Operation<'_>, outcome: &Outcome) -> Failure {
    use ErrorKind::*;
    let what = match op {
        Operation::Exchange { audience, .. } => {
            format!("failed to exchange sts token: the STS token exchange for {audience}")
        }
        Operation::Impersonate { account, endpoint } => format!(
            "failed to impersonate service account {account} ({IMPERSONATE_VARIABLE}): \
             generateAccessToken at {endpoint}"
        ),
        Operation::Access {
            resource, endpoint, ..
        } => {
            format!("failed to get secret: access to {resource} at {endpoint}")
        }
    };
    let status = match outcome {
        Outcome::Transport(Transport::Tls(cause)) => {
            return Failure::new(InvalidConfig, format!("{what} failed: TLS: {cause}"))
                .with_fix("trust the endpoint's CA (system trust store), or check the CLOUDSDK_API_ENDPOINT_OVERRIDES_* URL");
        }
        Outcome::Transport(t) => {
            let cause = match t {
                Transport::Connect(c) => format!("cannot connect: {c}"),
                Transport::Timeout(d) => format!("no answer within {}s", d.as_secs()),
                Transport::Body(c) => format!("the connection broke: {c}"),
                Transport::TooLarge(n) => format!("the answer is larger than {n} bytes"),
                Transport::Tls(c) => c.clone(),
            };
            return Failure::new(Unavailable, format!("{what} failed: {cause}"));
        }
        Outcome::Malformed(why) => {
            return Failure::new(Unexpected, format!("{what} failed: {why}"));
        }
        Outcome::Status { status, error } => (*status, error),
    };
    let (status, error) = status;
    let quoted = error.quote(status);
    let code = error.code.as_deref().unwrap_or("");
    let message = error.message.as_deref().unwrap_or("");
    let failure = |kind: ErrorKind| Failure::new(kind, format!("{what} failed ({quoted})"));
    let with_code = |f: Failure| match &error.code {
        Some(c) => f.with_code(c.clone()),
        None => f,
    };
    if status == 429 || code == "RESOURCE_EXHAUSTED" {
        return with_code(failure(RateLimited));
    }
    if status >= 500 || matches!(code, "UNAVAILABLE" | "INTERNAL" | "DEADLINE_EXCEEDED") {
        return with_code(failure(Unavailable));
    }
    let classified = match op {
        Operation::Exchange { audience, claims } => match code {
            "invalid_grant" => failure(Unauthenticated).with_fix(format!(
                "the ID token was refused (its aud is {}): give the job an `id_tokens:` token whose \
                 `aud` is an allowed audience of the provider (by default https:{audience}), and use it \
                 before it expires",
                claims.aud
            )),
            "unauthorized_client" => failure(Unauthenticated).with_fix(format!(
                "the provider's attribute condition rejected the token (namespace_path {}, project_id {}): \
                 change the condition or run the job where it matches",
                claims.namespace_path, claims.project_id
            )),
            "invalid_target" => failure(InvalidConfig).with_fix(format!(
                "the workload identity pool or provider does not exist or is disabled: check {GCP_VARS}"
            )),
            "invalid_request" if message.contains("google.subject") => failure(InvalidConfig)
                .with_fix(format!(
                    "the mapped google.subject is longer than 127 bytes (sub is {} bytes; long branch \
                     names do this): map google.subject to a shorter claim, e.g. \
                     `assertion.project_id + \"::\" + assertion.ref`, or shorten the branch name",
                    claims.sub_bytes
                )),
            "invalid_request" => failure(InvalidConfig).with_fix(format!("check {GCP_VARS}")),
            _ => failure(Unauthenticated)
                .with_fix(format!("check the ID token and {GCP_VARS}")),
        },
        Operation::Impersonate { account, .. } => match http_code(code, status) {
            "PERMISSION_DENIED" => failure(PermissionDenied).with_fix(format!(
                "grant the federated principal roles/iam.workloadIdentityUser (or \
                 roles/iam.serviceAccountTokenCreator) on the service account {account}, e.g. \
                 principalSet://iam.googleapis.com/projects/<number>/locations/global/\
                 workloadIdentityPools/<pool>/attribute.gitlab_project_id/<id>; check the email in \
                 {IMPERSONATE_VARIABLE} (Google also answers this when the account does not \
                 exist), or unset it to read with the federated identity"
            )),
            "NOT_FOUND" => failure(NotFound).with_fix(format!(
                "the service account {account} does not exist: set {IMPERSONATE_VARIABLE} to \
                 the email of an existing service account (NAME@PROJECT.iam.gserviceaccount.com), \
                 or unset it"
            )),
            "UNAUTHENTICATED" => failure(Unauthenticated)
                .with_fix("IAM Credentials refused the federated access token; retry the job"),
            "FAILED_PRECONDITION" | "INVALID_ARGUMENT" => failure(InvalidConfig).with_fix(format!(
                "check {IMPERSONATE_VARIABLE} (a service account email) and that the IAM \
                 Credentials API (iamcredentials.googleapis.com) is enabled in the service \
                 account's project"
            )),
            _ => failure(InvalidConfig).with_fix(format!(
                "check {IMPERSONATE_VARIABLE} and CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS"
            )),
        },
        Operation::Access { account, .. } => {
            match http_code(code, status) {
                "NOT_FOUND" => failure(NotFound).with_fix(
                    "check the secret name, its version and the project (GCP_PROJECT_NUMBER, or name the \
                     secret in full as projects/<project>/secrets/<id>)",
                ),
                "PERMISSION_DENIED" if !account.is_empty() => failure(PermissionDenied)
                    .with_fix(format!(
                        "grant roles/secretmanager.secretAccessor on the secret (or its project) to \
                         serviceAccount:{account}, the account {IMPERSONATE_VARIABLE} impersonates; \
                         Google also answers this when the secret does not exist"
                    )),
                "PERMISSION_DENIED" => failure(PermissionDenied).with_fix(
                    "grant roles/secretmanager.secretAccessor on the secret (or its project) to the \
                     federated principal, e.g. principalSet://iam.googleapis.com/projects/<number>/locations/\
                     global/workloadIdentityPools/<pool>/attribute.gitlab_project_id/<id>; Google also \
                     answers this when the secret does not exist",
                ),
                "FAILED_PRECONDITION" => failure(NotFound).with_fix(
                    "the version is disabled or destroyed: enable it, or pin an enabled version \
                     (`latest` is the newest version, whatever its state)",
                ),
                "UNAUTHENTICATED" => failure(Unauthenticated).with_fix(if account.is_empty() {
                    "the federated access token was refused; retry the job".to_owned()
                } else {
                    format!("the access token impersonating {account} was refused; retry the job")
                }),
                "INVALID_ARGUMENT" => failure(InvalidSpec)
                    .with_fix("check the secret's `name` and `version`"),
                _ => failure(InvalidConfig),
            }
        }
    };
    with_code(classified)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(code: &str, description: &str) -> Outcome {
        Outcome::Status {
            status: 400,
            error: GoogleError {
                code: Some(code.into()),
                message: Some(description.into()),
            },
        }
    }

    fn sm(status: u16, code: Option<&str>) -> Outcome {
        Outcome::Status {
            status,
            error: GoogleError {
                code: code.map(Into::into),
                message: Some("text".into()),
            },
        }
    }

    #[test]
    fn the_table() {
        let claims = ClaimHints {
            aud: "https://wrong".into(),
            sub_bytes: 140,
            ..ClaimHints::default()
        };
        let exchange = Operation::Exchange {
            audience: "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q",
            claims: &claims,
        };
        let access = Operation::Access {
            resource: "projects/1/secrets/s/versions/latest",
            endpoint: "https://secretmanager.googleapis.com",
            account: "",
        };
        let as_account = Operation::Access {
            resource: "projects/1/secrets/s/versions/latest",
            endpoint: "https://secretmanager.googleapis.com",
            account: "r@p.iam.gserviceaccount.com",
        };
        let impersonate = Operation::Impersonate {
            account: "r@p.iam.gserviceaccount.com",
            endpoint: "https://iamcredentials.googleapis.com",
        };
        use ErrorKind::*;
        let cases: Vec<(&Operation<'_>, Outcome, ErrorKind, bool, &str)> = vec![
            (
                &exchange,
                sts("invalid_grant", "The audience does not match"),
                Unauthenticated,
                false,
                "allowed audience",
            ),
            (
                &exchange,
                sts("unauthorized_client", "condition"),
                Unauthenticated,
                false,
                "attribute condition",
            ),
            (
                &exchange,
                sts("invalid_target", "The target service"),
                InvalidConfig,
                false,
                "GCP_WORKLOAD_IDENTITY_FEDERATION_POOL_ID",
            ),
            (
                &exchange,
                sts(
                    "invalid_request",
                    "The size of mapped attribute google.subject exceeds the 127 bytes limit.",
                ),
                InvalidConfig,
                false,
                "140 bytes",
            ),
            (
                &exchange,
                sts("invalid_request", "Invalid value for audience"),
                InvalidConfig,
                false,
                "GCP_PROJECT_NUMBER",
            ),
            (
                &exchange,
                sts("access_denied", "x"),
                Unauthenticated,
                false,
                "ID token",
            ),
            (&exchange, sm(429, None), RateLimited, true, ""),
            (&exchange, sm(503, None), Unavailable, true, ""),
            (
                &access,
                sm(404, Some("NOT_FOUND")),
                NotFound,
                false,
                "secret name",
            ),
            (
                &access,
                sm(403, Some("PERMISSION_DENIED")),
                PermissionDenied,
                false,
                "roles/secretmanager.secretAccessor",
            ),
            (
                &access,
                sm(400, Some("FAILED_PRECONDITION")),
                NotFound,
                false,
                "disabled or destroyed",
            ),
            (
                &access,
                sm(401, Some("UNAUTHENTICATED")),
                Unauthenticated,
                false,
                "retry",
            ),
            (
                &access,
                sm(400, Some("INVALID_ARGUMENT")),
                InvalidSpec,
                false,
                "`name`",
            ),
            // `error.status` decides, not the HTTP code.
            (
                &access,
                sm(400, Some("PERMISSION_DENIED")),
                PermissionDenied,
                false,
                "secretAccessor",
            ),
            (&access, sm(404, None), NotFound, false, "secret name"),
            (
                &as_account,
                sm(403, Some("PERMISSION_DENIED")),
                PermissionDenied,
                false,
                "serviceAccount:r@p.iam.gserviceaccount.com",
            ),
            (
                &impersonate,
                sm(403, Some("PERMISSION_DENIED")),
                PermissionDenied,
                false,
                "roles/iam.workloadIdentityUser",
            ),
            (
                &impersonate,
                sm(404, None),
                NotFound,
                false,
                "CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT",
            ),
            (
                &impersonate,
                sm(401, Some("UNAUTHENTICATED")),
                Unauthenticated,
                false,
                "retry",
            ),
            (
                &impersonate,
                sm(400, Some("FAILED_PRECONDITION")),
                InvalidConfig,
                false,
                "iamcredentials.googleapis.com",
            ),
            (&impersonate, sm(503, None), Unavailable, true, ""),
            (
                &access,
                sm(429, Some("RESOURCE_EXHAUSTED")),
                RateLimited,
                true,
                "",
            ),
            (&access, sm(500, Some("INTERNAL")), Unavailable, true, ""),
            (&access, sm(400, Some("UNAVAILABLE")), Unavailable, true, ""),
            (
                &access,
                Outcome::Transport(Transport::Connect("refused".into())),
                Unavailable,
                true,
                "",
            ),
            (
                &access,
                Outcome::Transport(Transport::Tls("unknown issuer".into())),
                InvalidConfig,
                false,
                "CA",
            ),
            (
                &access,
                Outcome::Malformed("not JSON".into()),
                Unexpected,
                false,
                "",
            ),
        ];
        for (op, outcome, kind, retryable, fix) in cases {
            let f = classify(op, &outcome);
            assert_eq!(f.kind, kind, "{outcome:?}: {f}");
            assert_eq!(f.retryable, retryable, "{outcome:?}: {f}");
            assert!(
                f.fix.as_deref().unwrap_or("").contains(fix),
                "{outcome:?}: {f}"
            );
        }
        let f = classify(&access, &sm(403, Some("PERMISSION_DENIED")));
        assert!(
            f.message.starts_with(
                "failed to get secret: access to projects/1/secrets/s/versions/latest"
            ),
            "{f}"
        );
        assert_eq!(f.code.as_deref(), Some("PERMISSION_DENIED"));
    }

    #[test]
    fn quoted_texts_are_scrubbed_and_cut() {
        let body = serde_json::json!({"error": "invalid_grant", "error_description": "bad token eyJcanary.x.y here"});
        let e = GoogleError::parse(body.to_string().as_bytes(), &["eyJcanary.x.y"]);
        assert_eq!(e.message.as_deref(), Some("bad token <redacted> here"));
        let body = serde_json::json!({"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "x".repeat(1000)}});
        let e = GoogleError::parse(body.to_string().as_bytes(), &[]);
        assert_eq!(e.code.as_deref(), Some("PERMISSION_DENIED"));
        assert!(e.message.unwrap().len() < 310);
        assert_eq!(GoogleError::parse(b"not json", &[]), GoogleError::default());
    }
}
