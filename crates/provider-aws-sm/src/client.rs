//! Secrets Manager calls: `GetSecretValue`, `BatchGetSecretValue` (at most 20 ids a call),
//! and the interceptors that count every HTTP attempt and cap answers.

use crate::error::{Classified, Failure, Result, classify, classify_sdk};
use crate::requests::{SM_BATCH_GET, SM_GET};
use crate::transport::SmTransport;
use crate::value::raw_text;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_secretsmanager::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_secretsmanager::error::BoxError;
use aws_smithy_types::body::SdkBody;
use aws_types::SdkConfig;
use aws_types::region::Region;
use provider_http::{AnswerTooLarge, MAX_ANSWER_BYTES};
use secrecy::SecretString;
use secrets_core::{ErrorKind, RequestCounter, RequestKind};

/// `BatchGetSecretValue` takes at most 20 ids in `SecretIdList`.
pub(crate) const BATCH_LIMIT: usize = 20;

/// Pages of one batch call followed at most (a guard against a server that always answers
/// with a `NextToken`).
const MAX_BATCH_PAGES: usize = 20;

/// Counts each HTTP attempt of an operation (SDK retries included) in the resolution's
/// [`RequestCounter`]. Runs just before the request is sent, so a request that could not be
/// signed or built is not counted.
#[derive(Debug, Clone)]
pub(crate) struct CountAttempts {
    counter: RequestCounter,
    kind: RequestKind,
}

impl CountAttempts {
    pub(crate) fn new(counter: RequestCounter, kind: RequestKind) -> Self {
        Self { counter, kind }
    }
}

impl Intercept for CountAttempts {
    fn name(&self) -> &'static str {
        "CountAttempts"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.counter.record(self.kind);
        Ok(())
    }
}

/// Caps answers at [`MAX_ANSWER_BYTES`]: one whose `Content-Length` is larger is refused
/// before its body is read, and a body without a length (chunked) fails once it grows past
/// the cap. A secret holds at most 64 KiB and a batch of 20 about 1.3 MiB; a larger answer
/// is not Secrets Manager, and reading it whole would let an endpoint exhaust memory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CapAnswerSize;

impl Intercept for CapAnswerSize {
    fn name(&self) -> &'static str {
        "CapAnswerSize"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response_mut();
        let length = response
            .headers()
            .get("content-length")
            .and_then(|v| v.parse::<u64>().ok());
        if length.is_some_and(|n| n > MAX_ANSWER_BYTES as u64) {
            return Err(Box::new(AnswerTooLarge {
                limit: MAX_ANSWER_BYTES,
            }));
        }
        let body = response.take_body();
        *response.body_mut() = body.map(|body| {
            SdkBody::from_body_1_x(http_body_util::Limited::new(body, MAX_ANSWER_BYTES))
        });
        Ok(())
    }
}

/// A Secrets Manager client for one identity and one region.
#[derive(Debug, Clone)]
pub(crate) struct SmClient {
    client: Client,
    region: String,
    counter: RequestCounter,
    /// Who reads, for messages.
    identity: String,
}

impl SmClient {
    /// A client of `sdk` (which holds the identity's credentials) calling `region`.
    pub(crate) fn new(
        sdk: &SdkConfig,
        region: &str,
        transport: &SmTransport,
        counter: RequestCounter,
        identity: String,
    ) -> Self {
        let conf = aws_sdk_secretsmanager::config::Builder::from(sdk)
            .region(Region::new(region.to_owned()))
            .http_client(transport.clone())
            .build();
        Self {
            client: Client::from_conf(conf),
            region: region.to_owned(),
            counter,
            identity,
        }
    }

    /// `GetSecretValue`; empty version fields are sent as absent.
    #[tracing::instrument(skip_all, fields(region = %self.region, secret_id = %secret_id))]
    pub(crate) async fn get(
        &self,
        secret_id: &str,
        version_id: Option<&str>,
        version_stage: Option<&str>,
    ) -> Result<SecretString> {
        let answer = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .set_version_id(version_id.map(str::to_owned))
            .set_version_stage(version_stage.map(str::to_owned))
            .customize()
            .interceptor(CountAttempts::new(self.counter.clone(), SM_GET))
            .interceptor(CapAnswerSize)
            .send()
            .await
            .map_err(|err| {
                self.failure(
                    "GetSecretValue",
                    &classify_sdk(&err),
                    version_id.is_some() || version_stage.is_some(),
                )
            })?;
        raw_text(
            answer.secret_string(),
            answer.secret_binary().map(|b| b.as_ref()),
            secret_id,
        )
    }

    /// `BatchGetSecretValue` of at most [`BATCH_LIMIT`] distinct ids at their current version.
    ///
    /// Returns one entry per id, in order: the value, the secret's entry of `Errors[]`, or
    /// `None` when the answer does not mention the id (the caller reads it alone). Fails as a
    /// whole when the call itself fails.
    #[tracing::instrument(skip_all, fields(region = %self.region, ids = ids.len()))]
    pub(crate) async fn batch_get(
        &self,
        ids: &[&str],
    ) -> Result<Vec<Option<Result<SecretString>>>> {
        debug_assert!(ids.len() <= BATCH_LIMIT);
        let mut entries: Vec<Option<Result<SecretString>>> = ids.iter().map(|_| None).collect();
        let mut next_token: Option<String> = None;
        for _ in 0..MAX_BATCH_PAGES {
            let answer = self
                .client
                .batch_get_secret_value()
                .set_secret_id_list(Some(ids.iter().map(|id| (*id).to_owned()).collect()))
                .set_next_token(next_token.take())
                .customize()
                .interceptor(CountAttempts::new(self.counter.clone(), SM_BATCH_GET))
                .interceptor(CapAnswerSize)
                .send()
                .await
                .map_err(|err| self.failure("BatchGetSecretValue", &classify_sdk(&err), false))?;
            for entry in answer.secret_values() {
                if let Some(i) = find(ids, &entries, entry.arn(), entry.name()) {
                    entries[i] = Some(raw_text(
                        entry.secret_string(),
                        entry.secret_binary().map(|b| b.as_ref()),
                        ids[i],
                    ));
                }
            }
            for error in answer.errors() {
                let Some(id) = error.secret_id() else {
                    continue;
                };
                if let Some(i) = find(ids, &entries, Some(id), Some(id)) {
                    let code = error.error_code();
                    let classified = Classified {
                        kind: classify(code, None),
                        code: code.map(str::to_owned),
                        detail: code.unwrap_or("an error without a code").to_owned(),
                        credentials: false,
                    };
                    entries[i] = Some(Err(self.failure("BatchGetSecretValue", &classified, false)));
                }
            }
            match answer.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => break,
            }
        }
        Ok(entries)
    }

    /// Words a failed call: operation, region, AWS code; a fix by kind. Never the service's
    /// message.
    fn failure(&self, operation: &str, c: &Classified, pinned: bool) -> Failure {
        let region = &self.region;
        let identity = &self.identity;
        let fix = match c.kind {
            ErrorKind::NotFound if pinned => format!(
                "check the secret id, the region ({region}) and the version: the secret or that \
                 version does not exist there (a secret in another account needs its full ARN)"
            ),
            ErrorKind::NotFound => format!(
                "check the secret id and the region ({region}); a secret in another account \
                 needs its full ARN"
            ),
            ErrorKind::PermissionDenied if c.code.as_deref() == Some("DecryptionFailure") => {
                format!("{identity} needs kms:Decrypt on the secret's KMS key")
            }
            ErrorKind::PermissionDenied => format!(
                "allow secretsmanager:GetSecretValue on this secret for {identity} (and the \
                 resource policy of a cross-account secret must allow it too)"
            ),
            ErrorKind::Unauthenticated => {
                format!("AWS refused the credentials of {identity}: check they are valid and not expired")
            }
            ErrorKind::InvalidSpec => "check secret_id, version_id and version_stage (a secret \
                                       scheduled for deletion also answers InvalidRequestException)"
                .to_owned(),
            ErrorKind::RateLimited => {
                "AWS throttled the requests; retry later or lower the concurrency".to_owned()
            }
            ErrorKind::Unavailable => "Secrets Manager did not answer; check the network and the \
                                       endpoint (AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL)"
                .to_owned(),
            _ => "check the Secrets Manager endpoint".to_owned(),
        };
        let mut failure = Failure::new(
            c.kind,
            format!("{operation} in {region} failed: {}", c.detail),
        )
        .with_fix(fix);
        failure.code.clone_from(&c.code);
        failure
    }
}

/// The first id not yet answered that an answer entry (its ARN and name) stands for: the
/// name, the full ARN, or a partial ARN (the full ARN without its `-XXXXXX` suffix).
fn find(
    ids: &[&str],
    entries: &[Option<Result<SecretString>>],
    arn: Option<&str>,
    name: Option<&str>,
) -> Option<usize> {
    ids.iter().enumerate().position(|(i, id)| {
        entries[i].is_none()
            && (Some(*id) == name
                || Some(*id) == arn
                || arn.is_some_and(|arn| is_partial_arn_of(id, arn)))
    })
}

/// `arn:aws:secretsmanager:r:a:secret:name` is a partial ARN of
/// `arn:aws:secretsmanager:r:a:secret:name-AbCdEf`.
fn is_partial_arn_of(id: &str, arn: &str) -> bool {
    id.starts_with("arn:")
        && arn
            .strip_prefix(id)
            .is_some_and(|rest| rest.len() == 7 && rest.starts_with('-'))
}

/// The region of a full Secrets Manager ARN (`arn:<partition>:secretsmanager:<region>:...`).
pub(crate) fn arn_region(secret_id: &str) -> Option<&str> {
    let mut parts = secret_id.splitn(7, ':');
    let (Some("arn"), Some(_partition), Some("secretsmanager"), Some(region), Some(_), Some(_)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    (!region.is_empty()).then_some(region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_regions() {
        assert_eq!(
            arn_region("arn:aws:secretsmanager:eu-west-1:987654321098:secret:shared-AbCdEf"),
            Some("eu-west-1")
        );
        assert_eq!(
            arn_region("arn:aws-cn:secretsmanager:cn-north-1:1:secret:x"),
            Some("cn-north-1")
        );
        assert_eq!(arn_region("app-secrets/database"), None);
        assert_eq!(arn_region("arn:aws:iam::1:role/x"), None);
        assert_eq!(arn_region("arn:aws:secretsmanager::1:secret:x"), None);
    }

    #[test]
    fn answers_match_names_full_and_partial_arns() {
        let full = "arn:aws:secretsmanager:us-east-1:1:secret:db-AbCdEf";
        let ids = ["db", "arn:aws:secretsmanager:us-east-1:1:secret:db", full];
        let mut entries: Vec<Option<Result<SecretString>>> = vec![None, None, None];
        assert_eq!(find(&ids, &entries, Some(full), Some("db")), Some(0));
        entries[0] = Some(Ok(SecretString::from("x")));
        assert_eq!(find(&ids, &entries, Some(full), Some("db")), Some(1));
        entries[1] = Some(Ok(SecretString::from("x")));
        assert_eq!(find(&ids, &entries, Some(full), Some("db")), Some(2));
        entries[2] = Some(Ok(SecretString::from("x")));
        assert_eq!(find(&ids, &entries, Some(full), Some("db")), None);
        assert!(!is_partial_arn_of("db", "dbx-AbCdEf"));
    }
}
