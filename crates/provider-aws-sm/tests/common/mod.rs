//! Helpers shared by the HTTP-level and end-to-end tests.
#![allow(dead_code, reason = "each test binary uses a part")]

use base64::Engine as _;
use secrets_core::payload::{AwsSecret, AwsServer};
use secrets_core::{ResolveContext, RetryPolicy, Secret, SecretRequest};
use std::time::Duration;

/// A GitLab-shaped ID token (unsigned: neither the provider nor the mocks verify it). The
/// signature part is a canary that must never show up in any output.
pub const TOKEN_CANARY: &str = "dG9rZW4tY2FuYXJ5LTdmM2E5Yw";

pub fn token(aud: &str, sub: &str, exp: i64) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let claims = serde_json::json!({
        "iss": "https://gitlab.example.com",
        "aud": aud,
        "sub": sub,
        "exp": exp,
        "iat": 1_700_000_000,
        "nbf": 1_700_000_000,
        "project_path": "mygroup/myproject",
        "ref": "main",
    });
    format!(
        "{}.{}.{TOKEN_CANARY}",
        b64(r#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#),
        b64(&claims.to_string())
    )
}

/// A valid token for `sts.amazonaws.com`, expiring in 2100.
pub fn job_token() -> String {
    token(
        "sts.amazonaws.com",
        "project_path:mygroup/myproject:ref_type:branch:ref:main",
        4_102_444_800,
    )
}

/// `aws_secrets_manager` with the server block's region (and nothing else).
pub fn aws(secret_id: &str, region: &str) -> AwsSecret {
    AwsSecret {
        secret_id: secret_id.to_owned(),
        server: AwsServer {
            region: region.to_owned(),
            ..AwsServer::default()
        },
        ..AwsSecret::default()
    }
}

/// The same with a role ARN, a session name and the job's token (the OIDC path).
pub fn aws_oidc(secret_id: &str, region: &str, role_arn: &str, jwt: &str) -> AwsSecret {
    let mut s = aws(secret_id, region);
    s.server.role_arn = Some(role_arn.to_owned());
    s.server.role_session_name = Some("1001-42-gitlab.example.com".to_owned());
    s.server.jwt = jwt.into();
    s
}

pub fn with_field(mut s: AwsSecret, field: &str) -> AwsSecret {
    s.field = Some(field.to_owned());
    s
}

pub fn request(variable: &str, aws: AwsSecret) -> SecretRequest {
    SecretRequest {
        variable: variable.to_owned(),
        secret: Secret {
            aws_secrets_manager: Some(Box::new(aws)),
            ..Secret::default()
        },
    }
}

/// Fast retries, short timeouts.
pub fn ctx() -> ResolveContext {
    ResolveContext {
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        retry: RetryPolicy {
            max_attempts: 3,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        },
        ..ResolveContext::default()
    }
}
