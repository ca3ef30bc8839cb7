//! Error classification: one function from an AWS error code and HTTP status to an
//! [`ErrorKind`], and [`Failure`], the cloneable error a fetch shared by several variables
//! carries until it becomes one core [`Error`] per variable.
//!
//! Messages name the operation, the region and the AWS error code, never a service message:
//! AWS messages can quote request content (a secret id is harmless, but a validation message
//! may echo a parameter), and never a value or a token.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use provider_http::{TransportKind, transport_kind};
use secrets_core::{Error, ErrorKind};
use std::error::Error as StdError;

/// A `Result` with this crate's cloneable [`Failure`].
pub(crate) type Result<T, E = Failure> = std::result::Result<T, E>;

/// Classifies an AWS error by its code (`__type` of the JSON protocols, `Code` of the query
/// protocol) and, when the code is unknown, by its HTTP status.
///
/// Configuration problems (`AccessDenied`, `ResourceNotFound`, `InvalidRequest`,
/// `InvalidParameter`, `Validation`, `DecryptionFailure`, refused or expired credentials) are
/// not retryable; throttling and server errors are ([`ErrorKind::RateLimited`],
/// [`ErrorKind::Unavailable`]).
pub fn classify(code: Option<&str>, status: Option<u16>) -> ErrorKind {
    let code = code.unwrap_or_default();
    // AWS codes come with and without the `Exception` suffix depending on the protocol.
    let base = code.strip_suffix("Exception").unwrap_or(code);
    match base {
        "ResourceNotFound" => ErrorKind::NotFound,
        "AccessDenied" | "DecryptionFailure" | "UnauthorizedOperation" => {
            ErrorKind::PermissionDenied
        }
        "InvalidRequest" | "InvalidParameter" | "Validation" | "InvalidNextToken" => {
            ErrorKind::InvalidSpec
        }
        "UnrecognizedClient"
        | "InvalidClientTokenId"
        | "InvalidSignature"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "ExpiredToken"
        | "InvalidIdentityToken"
        | "IDPRejectedClaim" => ErrorKind::Unauthenticated,
        "RegionDisabled" | "MalformedPolicyDocument" | "PackedPolicyTooLarge" => {
            ErrorKind::InvalidConfig
        }
        "Throttling"
        | "ThrottledRequest"
        | "TooManyRequests"
        | "RequestLimitExceeded"
        | "RequestThrottled"
        | "LimitExceeded"
        | "SlowDown" => ErrorKind::RateLimited,
        "InternalServiceError"
        | "InternalFailure"
        | "InternalError"
        | "ServiceUnavailable"
        | "IDPCommunicationError"
        | "RequestTimeout" => ErrorKind::Unavailable,
        _ => match status {
            Some(429) => ErrorKind::RateLimited,
            Some(500..=599) => ErrorKind::Unavailable,
            Some(401) => ErrorKind::Unauthenticated,
            Some(403) => ErrorKind::PermissionDenied,
            Some(404) => ErrorKind::NotFound,
            Some(400) => ErrorKind::InvalidSpec,
            _ => ErrorKind::Unexpected,
        },
    }
}

/// An error of one fetch or one identity; cloned to every variable it affects, then turned
/// into a core [`Error`] with [`Failure::into_error`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
    pub(crate) fix: Option<String>,
    /// The AWS error code, when the service answered with one.
    pub(crate) code: Option<String>,
}

impl Failure {
    /// A failure without a fix.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            fix: None,
            code: None,
        }
    }

    /// Says what to do.
    pub(crate) fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    /// Whether the service refused the operation itself (the batch fallback's trigger).
    pub(crate) fn is_operation_refused(&self) -> bool {
        matches!(
            self.code
                .as_deref()
                .map(|c| c.strip_suffix("Exception").unwrap_or(c)),
            Some("AccessDenied" | "UnknownOperation" | "InvalidAction" | "UnsupportedOperation")
        )
    }

    /// The core error for `variable`, naming `reference` (secret id, field, region).
    pub(crate) fn into_error(self, variable: &str, reference: &str) -> Error {
        self.into_reference_error(reference).with_variable(variable)
    }

    /// The core error naming only `reference`, for callers without a variable.
    pub(crate) fn into_reference_error(self, reference: &str) -> Error {
        let err = Error::new(self.kind, self.message).with_reference(reference);
        match self.fix {
            Some(fix) => err.with_fix(fix),
            None => err,
        }
    }
}

/// What a failed SDK call amounts to, before the caller words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Classified {
    pub(crate) kind: ErrorKind,
    /// The AWS error code of a service error.
    pub(crate) code: Option<String>,
    /// A short description safe to print: the code and status, or the transport problem.
    pub(crate) detail: String,
    /// The request never reached AWS because no credentials could be loaded.
    pub(crate) credentials: bool,
}

/// Classifies any SDK error. Service errors are classified by [`classify`]; credential
/// problems become [`ErrorKind::InvalidConfig`] (or [`ErrorKind::Unauthenticated`] when a
/// credential source refused); timeouts and connection failures are
/// [`ErrorKind::Unavailable`].
pub(crate) fn classify_sdk<E>(err: &SdkError<E, HttpResponse>) -> Classified
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    if !matches!(err, SdkError::ServiceError(_))
        && transport_kind(err) == Some(TransportKind::TooLarge)
    {
        return Classified {
            kind: ErrorKind::Unexpected,
            code: None,
            detail: format!(
                "the answer is larger than {} bytes; not read (is the endpoint Secrets Manager?)",
                provider_http::MAX_ANSWER_BYTES
            ),
            credentials: false,
        };
    }
    match err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().map(str::to_owned);
            let status = raw_status(err);
            let kind = classify(code.as_deref(), status);
            let detail = match (&code, status) {
                (Some(code), Some(status)) => format!("{code} (HTTP {status})"),
                (Some(code), None) => code.clone(),
                (None, Some(status)) => format!("HTTP {status}"),
                (None, None) => "an error without a code".to_owned(),
            };
            Classified {
                kind,
                code,
                detail,
                credentials: false,
            }
        }
        SdkError::TimeoutError(_) => Classified {
            kind: ErrorKind::Unavailable,
            code: None,
            detail: "the request timed out".to_owned(),
            credentials: false,
        },
        SdkError::DispatchFailure(dispatch) => {
            if let Some(creds) = find_source::<CredentialsError>(err) {
                return classify_credentials(creds);
            }
            let what = if dispatch.is_timeout() {
                "the connection timed out"
            } else if dispatch.is_io() {
                "the connection failed"
            } else {
                "the request could not be sent"
            };
            Classified {
                kind: ErrorKind::Unavailable,
                code: None,
                detail: format!("{what}: {}", chain_text(err)),
                credentials: false,
            }
        }
        SdkError::ResponseError(_) if broken_connection(err) => Classified {
            kind: ErrorKind::Unavailable,
            code: None,
            detail: "the connection broke while the answer was read".to_owned(),
            credentials: false,
        },
        SdkError::ResponseError(_) => Classified {
            kind: ErrorKind::Unexpected,
            code: None,
            detail: match raw_status(err) {
                Some(status) => format!("an unreadable response (HTTP {status})"),
                None => "an unreadable response".to_owned(),
            },
            credentials: false,
        },
        _ => {
            if let Some(creds) = find_source::<CredentialsError>(err) {
                return classify_credentials(creds);
            }
            Classified {
                kind: ErrorKind::Unexpected,
                code: None,
                detail: format!("the request could not be built: {}", chain_text(err)),
                credentials: false,
            }
        }
    }
}

/// Classifies a credential provider's error (the default chain, a profile, IMDS, IRSA).
pub(crate) fn classify_credentials(err: &CredentialsError) -> Classified {
    let kind = match err {
        CredentialsError::CredentialsNotLoaded(_)
        | CredentialsError::InvalidConfiguration(_)
        | CredentialsError::ProviderTimedOut(_) => ErrorKind::InvalidConfig,
        CredentialsError::ProviderError(_) => ErrorKind::Unauthenticated,
        _ => ErrorKind::Unavailable,
    };
    Classified {
        kind,
        code: None,
        detail: DisplayErrorContext(err).to_string(),
        credentials: true,
    }
}

/// Whether a response error is a transport failure (a reset or a closed connection while
/// the body was read) rather than an answer we could not understand: by error type.
fn broken_connection(err: &(dyn StdError + 'static)) -> bool {
    find_source::<std::io::Error>(err).is_some()
        || matches!(
            transport_kind(err),
            Some(TransportKind::Body | TransportKind::Connect | TransportKind::Timeout)
        )
}

fn raw_status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

fn find_source<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// The error chain of a transport or build failure, one line. Never used for service errors.
fn chain_text(err: &(dyn StdError + 'static)) -> String {
    DisplayErrorContext(err).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let table: &[(Option<&str>, Option<u16>, ErrorKind)] = &[
            (
                Some("ResourceNotFoundException"),
                Some(400),
                ErrorKind::NotFound,
            ),
            (
                Some("AccessDeniedException"),
                Some(400),
                ErrorKind::PermissionDenied,
            ),
            (Some("AccessDenied"), Some(403), ErrorKind::PermissionDenied),
            (
                Some("DecryptionFailure"),
                Some(400),
                ErrorKind::PermissionDenied,
            ),
            (
                Some("InvalidRequestException"),
                Some(400),
                ErrorKind::InvalidSpec,
            ),
            (
                Some("InvalidParameterException"),
                Some(400),
                ErrorKind::InvalidSpec,
            ),
            (
                Some("ValidationException"),
                Some(400),
                ErrorKind::InvalidSpec,
            ),
            (
                Some("UnrecognizedClientException"),
                Some(400),
                ErrorKind::Unauthenticated,
            ),
            (
                Some("InvalidSignatureException"),
                Some(400),
                ErrorKind::Unauthenticated,
            ),
            (
                Some("ExpiredTokenException"),
                Some(400),
                ErrorKind::Unauthenticated,
            ),
            (
                Some("InvalidIdentityToken"),
                Some(400),
                ErrorKind::Unauthenticated,
            ),
            (
                Some("IDPRejectedClaim"),
                Some(403),
                ErrorKind::Unauthenticated,
            ),
            (
                Some("RegionDisabledException"),
                Some(403),
                ErrorKind::InvalidConfig,
            ),
            (
                Some("ThrottlingException"),
                Some(400),
                ErrorKind::RateLimited,
            ),
            (Some("Throttling"), Some(400), ErrorKind::RateLimited),
            (
                Some("TooManyRequestsException"),
                Some(429),
                ErrorKind::RateLimited,
            ),
            (
                Some("InternalServiceError"),
                Some(500),
                ErrorKind::Unavailable,
            ),
            (
                Some("IDPCommunicationError"),
                Some(400),
                ErrorKind::Unavailable,
            ),
            (None, Some(503), ErrorKind::Unavailable),
            (None, Some(502), ErrorKind::Unavailable),
            (None, Some(429), ErrorKind::RateLimited),
            (Some("SomethingNew"), Some(500), ErrorKind::Unavailable),
            (Some("SomethingNew"), Some(403), ErrorKind::PermissionDenied),
            (Some("SomethingNew"), Some(404), ErrorKind::NotFound),
            (Some("SomethingNew"), Some(400), ErrorKind::InvalidSpec),
            (None, None, ErrorKind::Unexpected),
            (Some("SomethingNew"), Some(302), ErrorKind::Unexpected),
        ];
        for (code, status, want) in table {
            assert_eq!(
                classify(*code, *status),
                *want,
                "code {code:?} status {status:?}"
            );
        }
    }

    #[test]
    fn only_throttling_and_server_errors_are_retryable() {
        for (code, retryable) in [
            ("ResourceNotFoundException", false),
            ("AccessDeniedException", false),
            ("ValidationException", false),
            ("ThrottlingException", true),
            ("InternalServiceError", true),
        ] {
            assert_eq!(
                classify(Some(code), Some(400)).is_retryable_by_default(),
                retryable,
                "{code}"
            );
        }
    }

    #[test]
    fn credential_errors_are_configuration_errors() {
        let c = classify_credentials(&CredentialsError::not_loaded("no providers in chain"));
        assert_eq!(c.kind, ErrorKind::InvalidConfig);
        assert!(c.credentials);
        assert!(c.detail.contains("no providers in chain"), "{}", c.detail);
        let c = classify_credentials(&CredentialsError::provider_error("sts refused"));
        assert_eq!(c.kind, ErrorKind::Unauthenticated);
    }

    #[test]
    fn batch_fallback_triggers() {
        let mut f = Failure::new(ErrorKind::PermissionDenied, "denied");
        f.code = Some("AccessDeniedException".into());
        assert!(f.is_operation_refused());
        f.code = Some("ResourceNotFoundException".into());
        assert!(!f.is_operation_refused());
        f.code = None;
        assert!(!f.is_operation_refused());
    }

    #[test]
    fn into_error_names_variable_and_reference() {
        let err = Failure::new(
            ErrorKind::NotFound,
            "GetSecretValue: ResourceNotFoundException",
        )
        .with_fix("check the id")
        .into_error("DB", "aws_secrets_manager db in us-east-1");
        assert_eq!(
            err.to_string(),
            "DB (aws_secrets_manager db in us-east-1): GetSecretValue: ResourceNotFoundException; check the id"
        );
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }
}
