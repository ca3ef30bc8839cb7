//! Temporary AWS credentials for a job, for a CLI or a runner to hand over: STS
//! `AssumeRoleWithWebIdentity` with an ID token held in memory, or the default credential
//! chain, then optionally `sts:AssumeRole` for each role of a chain.
//!
//! The same parts as the Secrets Manager path: `aws-config` with the host's endpoint
//! overrides (`AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`), the token checked (not empty, a JWT,
//! not expired) before any request, STS refusals classified and explained with the token's
//! `aud` and `sub` and the trust policy to compare. Credentials stay in `secrecy` types until
//! the caller writes them; `Debug` and every error leave them out.
//!
//! ```no_run
//! use provider_aws_sm::AssumeRoleBuilder;
//! use secrecy::SecretString;
//!
//! # async fn run(token: SecretString) -> Result<(), secrets_core::Error> {
//! let credentials = AssumeRoleBuilder::web_identity("arn:aws:iam::123456789012:role/ci", token)
//!     .with_region("eu-west-1")
//!     .with_session_name("1001-42-gitlab.example.com")
//!     .fetch()
//!     .await?;
//! println!("expires {:?}", credentials.expiration_rfc3339());
//! # Ok(())
//! # }
//! ```

use crate::client::CountAttempts;
use crate::config::{AwsSecretsManagerBuilder, Config};
use crate::credentials::{assume_with_web_identity, chain_credentials, check_session_name, loader};
use crate::error::{Failure, classify_sdk};
use crate::requests::STS_ASSUME_ROLE;
use auth_oidc::{Clock, IdToken};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use secrecy::{ExposeSecret, SecretString};
use secrets_core::expand::{
    AWS_SESSION_NAME_MAX, AWS_SESSION_NAME_TEMPLATE, expand_with, truncate_bytes,
};
use secrets_core::{Error, ErrorKind, ResolveContext};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The shortest session STS grants, in seconds.
pub const MIN_DURATION_SECS: u64 = 900;
/// The longest session STS grants (a role's `MaxSessionDuration` can be lower), in seconds.
pub const MAX_DURATION_SECS: u64 = 43_200;
/// The longest session of a role assumed with role chaining, in seconds (an AWS rule).
pub const MAX_CHAINED_DURATION_SECS: u64 = 3_600;

/// The session name GitLab Runner uses when none is set: `${CI_JOB_ID}-${CI_PROJECT_ID}-
/// ${CI_SERVER_HOST}` expanded with `lookup` (unknown names give `""`), cut to 64 bytes
/// (runner-semantics §3.1, §5.2).
pub fn default_session_name(lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut name = expand_with(AWS_SESSION_NAME_TEMPLATE, lookup);
    truncate_bytes(&mut name, AWS_SESSION_NAME_MAX);
    name
}

/// Where the first credentials come from.
enum Source {
    /// `AssumeRoleWithWebIdentity` with an ID token.
    WebIdentity {
        role_arn: String,
        token: SecretString,
    },
    /// The default chain of `aws-config` (environment keys, profiles,
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` with `AWS_ROLE_ARN`, ECS, EC2 IMDS).
    DefaultChain,
}

/// Builds a request for temporary credentials; [`AssumeRoleBuilder::fetch`] makes it.
///
/// Precedence is the caller's: every setting here is explicit. [`default_session_name`]
/// gives the runner's default session name.
pub struct AssumeRoleBuilder {
    source: Source,
    token_name: String,
    aws: AwsSecretsManagerBuilder,
    region: Option<String>,
    session_name: Option<String>,
    chain: Vec<String>,
    duration: Option<Duration>,
    clock: Option<Arc<dyn Clock>>,
    ctx: ResolveContext,
}

impl AssumeRoleBuilder {
    /// `AssumeRoleWithWebIdentity` for `role_arn` with `token` (an ID token's JWT).
    pub fn web_identity(role_arn: impl Into<String>, token: SecretString) -> Self {
        Self::new(Source::WebIdentity {
            role_arn: role_arn.into(),
            token,
        })
    }

    /// The default credential chain of the host.
    pub fn default_chain() -> Self {
        Self::new(Source::DefaultChain)
    }

    fn new(source: Source) -> Self {
        Self {
            source,
            token_name: "AWS_ID_TOKEN".to_owned(),
            aws: AwsSecretsManagerBuilder::new(),
            region: None,
            session_name: None,
            chain: Vec::new(),
            duration: None,
            clock: None,
            ctx: ResolveContext::default(),
        }
    }

    /// Where the token came from, for messages (default `AWS_ID_TOKEN`).
    pub fn with_token_name(mut self, name: impl Into<String>) -> Self {
        self.token_name = name.into();
        self
    }

    /// The region STS is called in, and the region of the credentials. Required.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The role session name (2 to 64 of letters, digits and `_+=,.@-`). Required for web
    /// identity and chained roles; see [`default_session_name`].
    pub fn with_session_name(mut self, name: impl Into<String>) -> Self {
        self.session_name = Some(name.into());
        self
    }

    /// The session's lifetime (`DurationSeconds`, 900 s to 43200 s; at most 3600 s for a
    /// chained role). Unset: STS's default, 3600 s.
    pub fn with_duration(mut self, duration: Duration) -> Self {
        self.duration = Some(duration);
        self
    }

    /// Then assumes `role_arn` with `sts:AssumeRole`, signed with the credentials so far
    /// (role chaining); call again for a longer chain.
    pub fn then_assume_role(mut self, role_arn: impl Into<String>) -> Self {
        self.chain.push(role_arn.into());
        self
    }

    /// Reads the host environment (credential chain, endpoint overrides) from `vars` instead
    /// of the process environment, as [`AwsSecretsManagerBuilder::with_env_vars`].
    pub fn with_env_vars<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.aws = self.aws.with_env_vars(vars);
        self
    }

    /// The clock that checks the token's expiry (default: the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The application name in the `User-Agent` (default `ci-secrets`).
    pub fn with_app_name(mut self, name: impl Into<String>) -> Self {
        self.aws = self.aws.with_app_name(name);
        self
    }

    /// Timeouts, retries, the clock and the request counter (default
    /// [`ResolveContext::default`]); [`Self::with_clock`] wins over its clock.
    pub fn with_context(mut self, ctx: ResolveContext) -> Self {
        self.ctx = ctx;
        self
    }

    /// What the credentials will be, for messages: roles and session, never a token.
    pub fn describe(&self) -> String {
        let mut text = match &self.source {
            Source::WebIdentity { role_arn, .. } => format!(
                "role {role_arn} assumed with the ID token in {}",
                self.token_name
            ),
            Source::DefaultChain => "the default AWS credential chain".to_owned(),
        };
        for role in &self.chain {
            text.push_str(&format!(", then role {role} (sts:AssumeRole)"));
        }
        text
    }

    /// Checks the settings and the token, then calls STS (or the chain).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] before any request: no region, a bad session name or
    /// duration, an empty, malformed or expired token. After a request: STS's refusal
    /// classified ([`ErrorKind::Unauthenticated`] for a web identity the trust policy does
    /// not admit, [`ErrorKind::PermissionDenied`] for a chained role that is refused,
    /// [`ErrorKind::Unavailable`] / [`ErrorKind::RateLimited`] for transport problems), with
    /// the fix.
    #[tracing::instrument(skip_all, fields(region = self.region.as_deref().unwrap_or_default()))]
    pub async fn fetch(self) -> Result<TemporaryCredentials, Error> {
        let reference = self.reference();
        self.fetch_inner()
            .await
            .map_err(|failure| failure.into_reference_error(&reference))
    }

    fn reference(&self) -> String {
        let role = match (&self.source, self.chain.last()) {
            (_, Some(last)) => last.clone(),
            (Source::WebIdentity { role_arn, .. }, None) => role_arn.clone(),
            (Source::DefaultChain, None) => "default chain".to_owned(),
        };
        format!(
            "aws sts {role} in {}",
            self.region.as_deref().unwrap_or("(no region)")
        )
    }

    async fn fetch_inner(self) -> Result<TemporaryCredentials, Failure> {
        let description = self.describe();
        let Some(region) = self.region.clone().filter(|r| !r.trim().is_empty()) else {
            return Err(
                Failure::new(ErrorKind::InvalidConfig, "no AWS region is set")
                    .with_fix("set AWS_REGION (or pass --region)"),
            );
        };
        self.check_duration()?;
        let needs_session =
            matches!(self.source, Source::WebIdentity { .. }) || !self.chain.is_empty();
        let session_name = self.session_name.clone().unwrap_or_default();
        if needs_session {
            check_session_name(&session_name)?;
        }
        let duration = self.duration.map(duration_secs);
        let config = self
            .aws
            .into_config()
            .map_err(|e| Failure::new(e.kind(), e.to_string()))?;
        let mut ctx = self.ctx.clone();
        if let Some(clock) = &self.clock {
            ctx.clock = clock.clone();
        }
        let ctx = &ctx;
        let first_duration = if self.chain.is_empty() {
            duration
        } else {
            None
        };
        let mut credentials = match &self.source {
            Source::WebIdentity { role_arn, token } => {
                check_role_arn(role_arn)?;
                let token = IdToken::parse_and_check(token.expose_secret(), ctx.clock.as_ref())
                    .map_err(|err| {
                        Failure::new(
                            ErrorKind::InvalidConfig,
                            format!(
                                "cannot assume role {role_arn} with the ID token in {}: {err}",
                                self.token_name
                            ),
                        )
                        .with_fix(format!(
                            "define {} under `id_tokens:` with `aud: sts.amazonaws.com` (or the \
                             audience of your IAM OIDC provider), or pass --token-var",
                            self.token_name
                        ))
                    })?;
                let sdk = loader(&config, &region, ctx).no_credentials().load().await;
                assume_with_web_identity(
                    &sdk,
                    role_arn,
                    &session_name,
                    &token,
                    first_duration,
                    &region,
                    ctx,
                )
                .await?
            }
            Source::DefaultChain => {
                let fix = "give this process AWS credentials: AWS_ACCESS_KEY_ID and \
                           AWS_SECRET_ACCESS_KEY, AWS_PROFILE with a shared config file, \
                           AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN (EKS IRSA), an ECS \
                           task role or an EC2 instance profile; or use an ID token (--source \
                           web-identity)";
                chain_credentials(&config, &region, ctx, fix).await?.1
            }
        };
        let mut previous = match &self.source {
            Source::WebIdentity { role_arn, .. } => role_arn.clone(),
            Source::DefaultChain => "the default chain's identity".to_owned(),
        };
        for role_arn in &self.chain {
            check_role_arn(role_arn)?;
            credentials = assume_role(
                &config,
                &region,
                ctx,
                credentials,
                role_arn,
                &session_name,
                duration,
                &previous,
            )
            .await?;
            previous.clone_from(role_arn);
        }
        Ok(TemporaryCredentials::from_sdk(
            &credentials,
            region,
            description,
        ))
    }

    fn check_duration(&self) -> Result<(), Failure> {
        let Some(duration) = self.duration else {
            return Ok(());
        };
        let secs = duration.as_secs();
        let max = if self.chain.is_empty() {
            MAX_DURATION_SECS
        } else {
            MAX_CHAINED_DURATION_SECS
        };
        if (MIN_DURATION_SECS..=max).contains(&secs) {
            return Ok(());
        }
        let why = if self.chain.is_empty() {
            format!("STS grants {MIN_DURATION_SECS} s to {MAX_DURATION_SECS} s")
        } else {
            format!(
                "a role assumed by role chaining lasts {MIN_DURATION_SECS} s to \
                 {MAX_CHAINED_DURATION_SECS} s"
            )
        };
        Err(Failure::new(
            ErrorKind::InvalidConfig,
            format!("a session duration of {secs} s is not possible: {why}"),
        )
        .with_fix(format!(
            "pass a duration between {MIN_DURATION_SECS} and {max} seconds (and not above the \
             role's MaxSessionDuration)"
        )))
    }
}

impl fmt::Debug for AssumeRoleBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssumeRoleBuilder")
            .field("source", &self.describe())
            .field("token", &"<redacted>")
            .field("aws", &self.aws)
            .field("region", &self.region)
            .field("session_name", &self.session_name)
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

fn duration_secs(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

fn check_role_arn(role_arn: &str) -> Result<(), Failure> {
    let parts: Vec<&str> = role_arn.split(':').collect();
    if parts.len() == 6 && parts[0] == "arn" && parts[2] == "iam" && parts[5].starts_with("role/") {
        return Ok(());
    }
    Err(Failure::new(
        ErrorKind::InvalidConfig,
        format!("{role_arn:?} is not an IAM role ARN"),
    )
    .with_fix("give the role as arn:aws:iam::<account>:role/<name>"))
}

/// `sts:AssumeRole` for `role_arn`, signed with `credentials`.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, each part of one request"
)]
async fn assume_role(
    config: &Config,
    region: &str,
    ctx: &ResolveContext,
    credentials: Credentials,
    role_arn: &str,
    session_name: &str,
    duration: Option<i32>,
    previous: &str,
) -> Result<Credentials, Failure> {
    let sdk = loader(config, region, ctx)
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .load()
        .await;
    let answer = aws_sdk_sts::Client::new(&sdk)
        .assume_role()
        .role_arn(role_arn)
        .role_session_name(session_name)
        .set_duration_seconds(duration)
        .customize()
        .interceptor(CountAttempts::new(ctx.requests.clone(), STS_ASSUME_ROLE))
        .send()
        .await
        .map_err(|err| {
            let classified = classify_sdk(&err);
            let (kind, fix) = match classified.kind {
                ErrorKind::RateLimited | ErrorKind::Unavailable => (
                    classified.kind,
                    "STS did not answer in time or throttled the call; retry, or check \
                     AWS_ENDPOINT_URL_STS and the network"
                        .to_owned(),
                ),
                ErrorKind::InvalidSpec | ErrorKind::InvalidConfig => (
                    ErrorKind::InvalidConfig,
                    format!(
                        "STS rejected the request: check the role ARN, the session name and the \
                         duration (role chaining allows at most {MAX_CHAINED_DURATION_SECS} s)"
                    ),
                ),
                ErrorKind::Unexpected => {
                    (ErrorKind::Unexpected, "check the STS endpoint".to_owned())
                }
                _ => (
                    ErrorKind::PermissionDenied,
                    format!(
                        "the trust policy of {role_arn} must allow sts:AssumeRole for the \
                         principal of {previous} (\"Principal\": {{\"AWS\": \"<that role's \
                         ARN>\"}}), and that principal's permissions must allow sts:AssumeRole \
                         on {role_arn}"
                    ),
                ),
            };
            let mut failure = Failure::new(
                kind,
                format!(
                    "AssumeRole for role {role_arn} in {region} (signed by {previous}) failed: {}",
                    classified.detail
                ),
            )
            .with_fix(fix);
            failure.code.clone_from(&classified.code);
            failure
        })?;
    let Some(c) = answer.credentials() else {
        return Err(Failure::new(
            ErrorKind::Unexpected,
            format!("AssumeRole for role {role_arn} in {region} answered without credentials"),
        ));
    };
    Ok(Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        SystemTime::try_from(*c.expiration()).ok(),
        "AssumeRole",
    ))
}

/// Temporary AWS credentials: the key id, secret key and session token in `secrecy` types,
/// the expiry and the region. `Debug` shows neither.
pub struct TemporaryCredentials {
    access_key_id: SecretString,
    secret_access_key: SecretString,
    session_token: Option<SecretString>,
    expiration: Option<SystemTime>,
    region: String,
    description: String,
}

impl TemporaryCredentials {
    fn from_sdk(c: &Credentials, region: String, description: String) -> Self {
        Self {
            access_key_id: SecretString::from(c.access_key_id().to_owned()),
            secret_access_key: SecretString::from(c.secret_access_key().to_owned()),
            session_token: c.session_token().map(|t| SecretString::from(t.to_owned())),
            expiration: c.expiry(),
            region,
            description,
        }
    }

    /// `AWS_ACCESS_KEY_ID`.
    pub fn access_key_id(&self) -> &SecretString {
        &self.access_key_id
    }

    /// `AWS_SECRET_ACCESS_KEY`.
    pub fn secret_access_key(&self) -> &SecretString {
        &self.secret_access_key
    }

    /// `AWS_SESSION_TOKEN`; `None` for long-lived keys the default chain found.
    pub fn session_token(&self) -> Option<&SecretString> {
        self.session_token.as_ref()
    }

    /// When the credentials expire; `None` for long-lived keys.
    pub fn expiration(&self) -> Option<SystemTime> {
        self.expiration
    }

    /// The expiry in RFC 3339 (`2026-12-01T11:05:11Z`), as `credential_process` expects.
    pub fn expiration_rfc3339(&self) -> Option<String> {
        self.expiration.and_then(|t| {
            DateTime::from_secs(DateTime::from(t).secs())
                .fmt(Format::DateTime)
                .ok()
        })
    }

    /// Seconds until expiry at `now` (negative once expired).
    pub fn remaining_secs(&self, now: SystemTime) -> Option<i64> {
        let exp = self.expiration?;
        Some(match exp.duration_since(now) {
            Ok(left) => i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            Err(past) => -i64::try_from(past.duration().as_secs()).unwrap_or(i64::MAX),
        })
    }

    /// The region they were obtained in.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Who they belong to (roles and token variable; never a credential).
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// The JSON document an AWS `credential_process` prints: `Version` 1, `AccessKeyId`,
    /// `SecretAccessKey`, `SessionToken` and `Expiration` (RFC 3339) when there are.
    pub fn credential_process_json(&self) -> SecretString {
        let mut doc = serde_json::Map::new();
        doc.insert("Version".into(), 1.into());
        doc.insert(
            "AccessKeyId".into(),
            self.access_key_id.expose_secret().into(),
        );
        doc.insert(
            "SecretAccessKey".into(),
            self.secret_access_key.expose_secret().into(),
        );
        if let Some(token) = &self.session_token {
            doc.insert("SessionToken".into(), token.expose_secret().into());
        }
        if let Some(exp) = self.expiration_rfc3339() {
            doc.insert("Expiration".into(), exp.into());
        }
        SecretString::from(serde_json::Value::Object(doc).to_string())
    }
}

impl fmt::Debug for TemporaryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemporaryCredentials")
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expiration", &self.expiration_rfc3339())
            .field("region", &self.region)
            .field("description", &self.description)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_name_defaults_as_the_runner_builds_it() {
        let vars = |name: &str| match name {
            "CI_JOB_ID" => Some("1001".to_owned()),
            "CI_PROJECT_ID" => Some("42".to_owned()),
            "CI_SERVER_HOST" => Some("gitlab.example.com".to_owned()),
            _ => None,
        };
        assert_eq!(default_session_name(vars), "1001-42-gitlab.example.com");
        assert_eq!(default_session_name(|_| None), "--");
        let long = default_session_name(|n| Some(n.repeat(10)));
        assert_eq!(long.len(), AWS_SESSION_NAME_MAX);
    }

    #[test]
    fn debug_and_description_never_show_credentials() {
        let c = TemporaryCredentials::from_sdk(
            &Credentials::new(
                "ASIAKEYCANARY",
                "secret-canary-1",
                Some("token-canary-2".to_owned()),
                Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
                "test",
            ),
            "eu-west-1".into(),
            "role r".into(),
        );
        let printed = format!("{c:?} {}", c.describe());
        assert!(
            !printed.contains("CANARY") && !printed.contains("canary"),
            "{printed}"
        );
        assert!(printed.contains("2027-01-15T08:00:00Z"), "{printed}");
        let doc: serde_json::Value =
            serde_json::from_str(c.credential_process_json().expose_secret()).unwrap();
        assert_eq!(doc["Version"], 1);
        assert_eq!(doc["AccessKeyId"], "ASIAKEYCANARY");
        assert_eq!(doc["SessionToken"], "token-canary-2");
        assert_eq!(doc["Expiration"], "2027-01-15T08:00:00Z");
        let b = AssumeRoleBuilder::web_identity(
            "arn:aws:iam::1:role/r",
            SecretString::from("jwt-canary".to_owned()),
        );
        assert!(!format!("{b:?}").contains("canary"));
    }

    #[test]
    fn durations_follow_sts_limits() {
        let b = || AssumeRoleBuilder::default_chain();
        assert!(b().check_duration().is_ok());
        assert!(
            b().with_duration(Duration::from_secs(900))
                .check_duration()
                .is_ok()
        );
        assert!(
            b().with_duration(Duration::from_secs(43_200))
                .check_duration()
                .is_ok()
        );
        assert!(
            b().with_duration(Duration::from_secs(899))
                .check_duration()
                .is_err()
        );
        let chained = b()
            .then_assume_role("arn:aws:iam::1:role/b")
            .with_duration(Duration::from_secs(7200));
        let err = chained.check_duration().unwrap_err();
        assert!(err.message.contains("role chaining"), "{}", err.message);
    }

    #[test]
    fn role_arns_are_checked() {
        assert!(check_role_arn("arn:aws:iam::123456789012:role/ci").is_ok());
        assert!(check_role_arn("arn:aws-cn:iam::123456789012:role/path/ci").is_ok());
        assert!(check_role_arn("").is_err());
        assert!(check_role_arn("arn:aws:iam::123456789012:user/ci").is_err());
        assert!(check_role_arn("ci").is_err());
    }
}
