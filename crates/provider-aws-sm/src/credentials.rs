//! Which identity reads a secret, and its credentials (runner-semantics §5.2, §5.3).
//!
//! - A role ARN (the secret's `role_arn`, else `AWS_ROLE_ARN`): STS
//!   `AssumeRoleWithWebIdentity` with the job's ID token held in memory. The call is unsigned
//!   and sets no `DurationSeconds` (STS's default applies), as the runner does; unlike the
//!   runner, the host's endpoint overrides (`AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`) apply.
//!   The resolver checks the token's expiry before any request; an unreadable token fails
//!   here, before STS is called.
//! - No role ARN but a token: the runner's `Role ARN is required when using JWT for AWS
//!   authentication`, with what to set.
//! - Neither: the default chain of `aws-config` on the runner host (environment keys, shared
//!   profile files, `AWS_WEB_IDENTITY_TOKEN_FILE` with `AWS_ROLE_ARN`, ECS, EC2 IMDS).
//!
//! Credentials are loaded once per [`Identity`] and then used as static credentials by every
//! client of that identity, so one resolution makes one STS call (or one chain lookup) per
//! identity whatever the number of secrets and regions.

use crate::client::CountAttempts;
use crate::config::Config;
use crate::error::{Failure, Result, classify_credentials, classify_sdk};
use crate::requests::STS_ASSUME_ROLE;
use crate::transport::SmTransport;
use auth_oidc::IdToken;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_types::SdkConfig;
use aws_types::region::Region;
use secrecy::{ExposeSecret, SecretString};
use secrets_core::{ErrorKind, ResolveContext, RetryPolicy};
use std::fmt;
use std::time::SystemTime;

/// How an identity gets its credentials.
pub(crate) enum Auth {
    /// STS `AssumeRoleWithWebIdentity` with the job's ID token.
    WebIdentity {
        role_arn: String,
        session_name: String,
        token: SecretString,
    },
    /// The default credential chain of the runner host.
    DefaultChain,
}

/// One identity of a resolution: the effective region and how to authenticate.
pub(crate) struct Identity {
    /// The effective region (the secret's `region`, else `AWS_REGION`); STS is called there.
    pub(crate) region: String,
    pub(crate) auth: Auth,
}

impl Identity {
    /// Whether two secrets share credentials: same region, role, session name and token.
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        self.region == other.region
            && match (&self.auth, &other.auth) {
                (Auth::DefaultChain, Auth::DefaultChain) => true,
                (
                    Auth::WebIdentity {
                        role_arn: a,
                        session_name: s,
                        token: t,
                    },
                    Auth::WebIdentity {
                        role_arn: b,
                        session_name: u,
                        token: v,
                    },
                ) => a == b && s == u && t.expose_secret() == v.expose_secret(),
                _ => false,
            }
    }

    /// Who reads the secret, for messages: never the token.
    pub(crate) fn describe(&self) -> String {
        match &self.auth {
            Auth::WebIdentity {
                role_arn,
                session_name,
                ..
            } => {
                format!("role {role_arn} (session {session_name}) assumed with the job's ID token")
            }
            Auth::DefaultChain => {
                "the runner host's default AWS credential chain (no role ARN is set)".to_owned()
            }
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Identity");
        d.field("region", &self.region);
        match &self.auth {
            Auth::WebIdentity {
                role_arn,
                session_name,
                ..
            } => d
                .field("role_arn", role_arn)
                .field("session_name", session_name)
                .field("token", &"<redacted>"),
            Auth::DefaultChain => d.field("auth", &"default chain"),
        };
        d.finish()
    }
}

/// The SDK retry settings for a [`RetryPolicy`]: standard mode (jittered exponential
/// backoff, retryable errors only: throttling, 5xx, timeouts, connection failures).
pub(crate) fn retry_config(policy: &RetryPolicy) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(policy.max_attempts.max(1))
        .with_initial_backoff(policy.min_delay)
        .with_max_backoff(policy.max_delay.max(policy.min_delay))
}

/// The SDK timeouts for a resolution: the connect timeout and a per-attempt timeout.
pub(crate) fn timeout_config(ctx: &ResolveContext) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(ctx.connect_timeout)
        .operation_attempt_timeout(ctx.request_timeout)
        .build()
}

/// The base `aws-config` loader: injected environment and files, the region, our retry and
/// timeout settings and app name. Endpoint overrides come from the environment it reads.
pub(crate) fn loader(
    config: &Config,
    region: &str,
    ctx: &ResolveContext,
) -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .env(config.env.clone())
        .fs(config.fs.clone())
        .region(Region::new(region.to_owned()))
        .app_name(config.app_name.clone())
        .retry_config(retry_config(&ctx.retry))
        .timeout_config(timeout_config(ctx))
}

/// The SDK config of `identity` before its credentials are loaded: none on the web identity
/// path (the STS call is unsigned, and goes through `transport` so its connection can be
/// opened first: [`open_ahead`]), else the default chain, which loads nothing until asked
/// (its calls use the SDK's own client, with the timeouts each source sets). No request is
/// made.
pub(crate) async fn unloaded(
    identity: &Identity,
    config: &Config,
    ctx: &ResolveContext,
    transport: &SmTransport,
) -> SdkConfig {
    let loader = loader(config, &identity.region, ctx);
    match identity.auth {
        Auth::WebIdentity { .. } => {
            loader
                .no_credentials()
                .http_client(transport.clone())
                .load()
                .await
        }
        Auth::DefaultChain => loader.load().await,
    }
}

/// Starts opening the connection the credentials will be loaded over: STS's on the web
/// identity path, the first call on the critical path; nothing on the default chain.
pub(crate) async fn open_ahead(identity: &Identity, sdk: &SdkConfig, transport: &SmTransport) {
    if let Auth::WebIdentity { .. } = identity.auth
        && let Some(sts) = crate::endpoints::sts(sdk, &identity.region).await
    {
        transport.open_ahead(&sts, 1);
    }
}

/// Loads the credentials of `identity` once and returns its SDK config (from [`unloaded`])
/// holding them as static credentials.
#[tracing::instrument(skip_all, fields(region = %identity.region))]
pub(crate) async fn establish(
    identity: &Identity,
    sdk: SdkConfig,
    ctx: &ResolveContext,
) -> Result<SdkConfig> {
    match &identity.auth {
        Auth::WebIdentity {
            role_arn,
            session_name,
            token,
        } => {
            web_identity(
                identity,
                role_arn,
                session_name,
                token.expose_secret(),
                sdk,
                ctx,
            )
            .await
        }
        Auth::DefaultChain => default_chain(identity, sdk, ctx).await,
    }
}

async fn web_identity(
    identity: &Identity,
    role_arn: &str,
    session_name: &str,
    raw_token: &str,
    sdk: SdkConfig,
    ctx: &ResolveContext,
) -> Result<SdkConfig> {
    let token = IdToken::parse(raw_token).map_err(|err| {
        Failure::new(
            ErrorKind::Unauthenticated,
            format!("cannot assume role {role_arn} with the job's ID token: {err}"),
        )
        .with_fix(
            "AWS uses the ID token named by the secret's `token:` (default $AWS_ID_TOKEN); \
             define it under `id_tokens:` with `aud: sts.amazonaws.com` (or your provider's audience)",
        )
    })?;
    check_session_name(session_name)?;
    let credentials = assume_with_web_identity(
        &sdk,
        role_arn,
        session_name,
        &token,
        None,
        &identity.region,
        ctx,
    )
    .await?;
    Ok(sdk
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build())
}

/// STS `AssumeRoleWithWebIdentity` with a checked `token`, unsigned (`sdk` has no
/// credentials), counted as [`RequestKind::StsAssumeRole`]. `duration` unset: STS's default
/// (3600 s), as the runner does. Shared by the provider and [`crate::assume_role`].
pub(crate) async fn assume_with_web_identity(
    sdk: &SdkConfig,
    role_arn: &str,
    session_name: &str,
    token: &IdToken,
    duration: Option<i32>,
    region: &str,
    ctx: &ResolveContext,
) -> Result<Credentials> {
    let sts = aws_sdk_sts::Client::new(sdk);
    let answer = sts
        .assume_role_with_web_identity()
        .role_arn(role_arn)
        .role_session_name(session_name)
        .web_identity_token(token.expose())
        .set_duration_seconds(duration)
        .customize()
        .interceptor(CountAttempts::new(ctx.requests.clone(), STS_ASSUME_ROLE))
        .send()
        .await
        .map_err(|err| sts_failure(&classify_sdk(&err), role_arn, region, token))?;
    let Some(c) = answer.credentials() else {
        return Err(Failure::new(
            ErrorKind::Unexpected,
            format!(
                "AssumeRoleWithWebIdentity for role {role_arn} in {region} answered without credentials"
            ),
        ));
    };
    Ok(Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        SystemTime::try_from(*c.expiration()).ok(),
        "AssumeRoleWithWebIdentity",
    ))
}

/// STS's rules for `RoleSessionName`, checked before the call so the error is clear.
pub(crate) fn check_session_name(name: &str) -> Result<()> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if (2..=64).contains(&name.len()) && valid_chars {
        return Ok(());
    }
    Err(Failure::new(
        ErrorKind::InvalidConfig,
        format!(
            "role session name {name:?} is not valid for STS: it needs 2 to 64 characters among \
             letters, digits and _+=,.@-"
        ),
    )
    .with_fix(
        "set AWS_ROLE_SESSION_NAME (or `role_session_name:` on the secret) to a valid name; \
         the default ${CI_JOB_ID}-${CI_PROJECT_ID}-${CI_SERVER_HOST} breaks when the host has a port",
    ))
}

/// An STS refusal, explained with the token's `aud` and `sub` (never the token) and the trust
/// policy conditions to compare.
fn sts_failure(
    classified: &crate::error::Classified,
    role_arn: &str,
    region: &str,
    token: &IdToken,
) -> Failure {
    let claims = token.claims();
    let aud = claims
        .aud
        .as_ref()
        .map_or_else(|| "(none)".to_owned(), ToString::to_string);
    let sub = claims.sub.as_deref().unwrap_or("(none)");
    let provider = claims
        .issuer_host()
        .unwrap_or_else(|| "<gitlab host>".to_owned());
    let message = format!(
        "AssumeRoleWithWebIdentity for role {role_arn} in {region} failed: {}; \
         the ID token has aud {aud} and sub {sub}",
        classified.detail
    );
    let (kind, fix) = match classified.kind {
        ErrorKind::RateLimited | ErrorKind::Unavailable => (
            classified.kind,
            "STS did not answer in time or throttled the call; retry, or check AWS_ENDPOINT_URL_STS \
             and the network"
                .to_owned(),
        ),
        ErrorKind::InvalidSpec | ErrorKind::InvalidConfig => (
            ErrorKind::InvalidConfig,
            "STS rejected the request: check the role ARN (arn:aws:iam::<account>:role/<name>), \
             the session name, and that STS is enabled in this region"
                .to_owned(),
        ),
        ErrorKind::Unexpected => (ErrorKind::Unexpected, "check the STS endpoint".to_owned()),
        _ => (
            ErrorKind::Unauthenticated,
            format!(
                "compare with the role's trust policy: its principal must be the OIDC provider \
                 {provider} (Federated arn:aws:iam::<account>:oidc-provider/{provider}) with \
                 Action sts:AssumeRoleWithWebIdentity, and its StringEquals conditions \
                 \"{provider}:aud\" and \"{provider}:sub\" must match the aud and sub above \
                 (set `aud:` under `id_tokens:`; sub follows the project, ref type and ref)"
            ),
        ),
    };
    let mut failure = Failure::new(kind, message).with_fix(fix);
    failure.code.clone_from(&classified.code);
    failure
}

async fn default_chain(
    identity: &Identity,
    sdk: SdkConfig,
    ctx: &ResolveContext,
) -> Result<SdkConfig> {
    let fix = "no role ARN is set, so the runner host's default credential chain was used: give \
               the runner manager process credentials (AWS_ACCESS_KEY_ID and \
               AWS_SECRET_ACCESS_KEY, AWS_PROFILE with a shared credentials or config file, \
               AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, an ECS task role, or an EC2 \
               instance profile on the runner manager, not on the job pods), or set \
               AWS_ROLE_ARN and an ID token named AWS_ID_TOKEN to use OIDC";
    let credentials = chain_credentials_of(&sdk, &identity.region, ctx, fix).await?;
    Ok(sdk
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build())
}

/// Loads credentials once from the default chain of `aws-config` for `region`; errors say
/// what was tried and end with `fix`. Returns the loaded SDK config (its provider still the
/// chain) and the credentials. Shared by the provider and [`crate::assume_role`].
pub(crate) async fn chain_credentials(
    config: &Config,
    region: &str,
    ctx: &ResolveContext,
    fix: &str,
) -> Result<(SdkConfig, Credentials)> {
    let sdk = loader(config, region, ctx).load().await;
    let credentials = chain_credentials_of(&sdk, region, ctx, fix).await?;
    Ok((sdk, credentials))
}

/// Loads credentials once from the default chain `sdk` was loaded with.
async fn chain_credentials_of(
    sdk: &SdkConfig,
    region: &str,
    ctx: &ResolveContext,
    fix: &str,
) -> Result<Credentials> {
    let Some(provider) = sdk.credentials_provider() else {
        return Err(Failure::new(
            ErrorKind::InvalidConfig,
            format!("no AWS credentials provider for region {region}"),
        )
        .with_fix(fix));
    };
    // The chain's sources have their own short timeouts (IMDS: 1 s per attempt); this bounds
    // the whole lookup.
    let limit = ctx.request_timeout.max(std::time::Duration::from_secs(1));
    let loaded = tokio::time::timeout(limit, provider.provide_credentials()).await;
    let credentials = match loaded {
        Ok(Ok(credentials)) => credentials,
        Ok(Err(err)) => {
            let classified = classify_credentials(&err);
            return Err(Failure::new(
                classified.kind,
                format!(
                    "cannot load AWS credentials for region {region}: {}",
                    classified.detail
                ),
            )
            .with_fix(fix));
        }
        Err(_) => {
            return Err(Failure::new(
                ErrorKind::InvalidConfig,
                format!(
                    "cannot load AWS credentials for region {region}: the default chain did not \
                     answer within {} s (no EC2 IMDS role found?)",
                    limit.as_secs()
                ),
            )
            .with_fix(fix));
        }
    };
    Ok(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(region: &str, role: &str, session: &str, token: &str) -> Identity {
        Identity {
            region: region.into(),
            auth: Auth::WebIdentity {
                role_arn: role.into(),
                session_name: session.into(),
                token: SecretString::from(token.to_owned()),
            },
        }
    }

    #[test]
    fn identities_compare_every_part() {
        let a = web("us-east-1", "arn:r", "s", "t1");
        assert!(a.same_as(&web("us-east-1", "arn:r", "s", "t1")));
        assert!(!a.same_as(&web("eu-west-1", "arn:r", "s", "t1")));
        assert!(!a.same_as(&web("us-east-1", "arn:q", "s", "t1")));
        assert!(!a.same_as(&web("us-east-1", "arn:r", "z", "t1")));
        assert!(!a.same_as(&web("us-east-1", "arn:r", "s", "t2")));
        let chain = Identity {
            region: "us-east-1".into(),
            auth: Auth::DefaultChain,
        };
        assert!(!a.same_as(&chain));
        assert!(chain.same_as(&Identity {
            region: "us-east-1".into(),
            auth: Auth::DefaultChain
        }));
    }

    #[test]
    fn debug_hides_the_token() {
        let a = web("us-east-1", "arn:r", "s", "token-canary-7f3a9c");
        let printed = format!("{a:?} {}", a.describe());
        assert!(!printed.contains("canary"), "{printed}");
        assert!(printed.contains("arn:r"), "{printed}");
    }

    #[test]
    fn session_names_follow_sts_rules() {
        assert!(check_session_name("1001-42-gitlab.example.com").is_ok());
        assert!(check_session_name("ab").is_ok());
        assert!(check_session_name("a").is_err());
        assert!(check_session_name("").is_err());
        assert!(check_session_name("1001-42-gitlab.example.com:8443").is_err());
        assert!(check_session_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn retry_policy_maps_to_standard_mode() {
        let policy = RetryPolicy::default();
        let rc = retry_config(&policy);
        assert_eq!(rc.max_attempts(), policy.max_attempts);
        assert_eq!(rc.initial_backoff(), policy.min_delay);
        assert_eq!(rc.max_backoff(), policy.max_delay);
        assert_eq!(
            retry_config(&RetryPolicy {
                max_attempts: 0,
                ..policy
            })
            .max_attempts(),
            1
        );
    }
}
