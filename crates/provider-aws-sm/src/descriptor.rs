//! The offline description of the AWS Secrets Manager provider: token location, reference
//! text, plan, request kinds, log targets and the trust policy a token needs.

use crate::credentials::Auth;
use crate::planning::{Planning, Schedule, objects_of, plan, reference, regions};
use crate::requests::{ALL, SM_BATCH_GET, SM_GET, STS_ASSUME_ROLE};
use auth_oidc::Claims;
use secrecy::ExposeSecret as _;
use secrets_core::payload::{non_empty, token_reference};
use secrets_core::{PlannedIdentity, ProviderDescriptor, ProviderKind, Secret, TrustHint};

/// The AWS Secrets Manager provider's description; register it with the provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsSecretsManagerDescriptor;

/// The one instance.
pub static DESCRIPTOR: AwsSecretsManagerDescriptor = AwsSecretsManagerDescriptor;

impl ProviderDescriptor for AwsSecretsManagerDescriptor {
    fn kind(&self) -> ProviderKind {
        ProviderKind::AwsSecretsManager
    }

    fn feature(&self) -> &'static str {
        "aws-sm"
    }

    /// The token of the web-identity path: only when a role ARN is set.
    fn id_token(&self, secret: &Secret) -> Option<String> {
        let a = secret.aws_secrets_manager.as_deref()?;
        non_empty(&a.role_arn)
            .or(non_empty(&a.server.role_arn))
            .map(|_| a.server.jwt.expose().to_owned())
    }

    fn reference(&self, secret: &Secret) -> String {
        let Some(aws) = secret.aws_secrets_manager.as_deref() else {
            return String::new();
        };
        match plan("", secret) {
            Ok((_, planned)) => planned.reference,
            Err(_) => reference(
                aws,
                non_empty(&aws.region).unwrap_or(aws.server.region.as_str()),
            ),
        }
    }

    /// Per identity: one STS call on the web-identity path, then per region the batches and
    /// single reads the live path schedules (batching is on by default).
    fn plan(&self, secrets: &[(&str, &Secret)]) -> Vec<PlannedIdentity> {
        // Before expansion, the default `$AWS_ID_TOKEN` of a secret without a role is only a
        // reference: a job that does not define it resolves through the default chain, so the
        // plan does too (one that defines it fails with no request either way).
        let owned: Vec<(&str, Secret)> = secrets
            .iter()
            .map(|(variable, secret)| {
                let mut secret = (*secret).clone();
                if let Some(a) = secret.aws_secrets_manager.as_mut()
                    && non_empty(&a.role_arn).is_none()
                    && non_empty(&a.server.role_arn).is_none()
                    && a.server.jwt.expose().starts_with('$')
                {
                    a.server.jwt.clear();
                }
                (*variable, secret)
            })
            .collect();
        let planning = Planning::of(owned.iter().map(|(v, s)| (*v, s)));
        planning
            .identities
            .iter()
            .enumerate()
            .map(|(i, identity)| {
                let objects = objects_of(&planning.fetches, i);
                let (mut batches, mut singles) = (0u64, 0u64);
                for region in regions(&planning.fetches, &objects) {
                    let in_region: Vec<usize> = objects
                        .iter()
                        .copied()
                        .filter(|&f| planning.fetches[f].region == region)
                        .collect();
                    let schedule = Schedule::of(&planning.fetches, &in_region, true);
                    batches += schedule.batches.len() as u64;
                    singles += schedule.singles.len() as u64;
                }
                let (text, logins) = match &identity.auth {
                    Auth::WebIdentity {
                        role_arn,
                        session_name,
                        token,
                    } => (
                        format!(
                            "{} role {role_arn} session {} token {}",
                            identity.region,
                            if session_name.is_empty() {
                                "(default)"
                            } else {
                                session_name
                            },
                            token_reference(token.expose_secret()),
                        ),
                        1,
                    ),
                    Auth::DefaultChain => {
                        (format!("{} default credential chain", identity.region), 0)
                    }
                };
                let variables = planning
                    .planned
                    .iter()
                    .filter(|p| planning.fetches[p.fetch].identity == i)
                    .map(|p| secrets[p.request].0.to_owned())
                    .collect();
                PlannedIdentity::new(
                    ProviderKind::AwsSecretsManager,
                    text,
                    variables,
                    [
                        (STS_ASSUME_ROLE, logins),
                        (SM_GET, singles),
                        (SM_BATCH_GET, batches),
                    ],
                )
            })
            .collect()
    }

    fn request_kinds(&self) -> &'static [secrets_core::RequestKind] {
        ALL
    }

    fn log_targets(&self) -> &'static [&'static str] {
        &["provider_aws_sm"]
    }

    fn quiet_log_targets(&self) -> &'static [&'static str] {
        &[
            "aws_smithy_runtime",
            "aws_smithy_runtime_api",
            "aws_smithy_http_client",
            "aws_config",
            "aws_sdk_secretsmanager",
            "aws_sdk_sts",
        ]
    }

    fn trust_hint(&self, claims: &Claims, role_arn: &str) -> Option<TrustHint> {
        let issuer_host = claims.issuer_host().unwrap_or_default();
        let account = role_arn.split(':').nth(4).unwrap_or("ACCOUNT");
        let claim = |name: &str| claims.get_str(name).unwrap_or_else(|| "(none)".to_owned());
        Some(TrustHint::new(
            "An AWS role trust policy admits this token with",
            serde_json::json!({
                "role_arn": role_arn,
                "Principal": {"Federated": format!("arn:aws:iam::{account}:oidc-provider/{issuer_host}")},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {
                    format!("{issuer_host}:aud"): claim("aud"),
                    format!("{issuer_host}:sub"): claim("sub"),
                }},
            }),
            vec![
                "STS refuses (AccessDenied) when the OIDC provider, aud or sub do not match."
                    .to_owned(),
            ],
        ))
    }
}
