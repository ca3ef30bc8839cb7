//! End-to-end tests against LocalStack (docs/e2e-fixtures.md): every example of GitLab's AWS
//! Secrets Manager page, binary secrets, local and remote errors, and the ways to get
//! credentials. Skipped, with the reason on stderr, unless `CI_SECRETS_E2E_ENV` names the env
//! file of `cargo xtask services up`.
//!
//! LocalStack does not validate ID tokens or enforce IAM, so these tests prove the wiring
//! (endpoints, regions, versions, batching, STS credentials reaching Secrets Manager); the
//! exact requests and refusals are covered by `tests/http.rs`.

mod common;

use auth_oidc::testing::{E2eEnv, GitlabClaims};
use common::{aws, ctx, request, with_field};
use provider_aws_sm::{AwsSecretsManagerBuilder, AwsSecretsManagerProvider};
use secrecy::ExposeSecret as _;
use secrets_core::payload::AwsSecret;
use secrets_core::{Error, ErrorKind, ResolveContext, Resolved, SecretProvider, SecretRequest};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const REGION: &str = "us-east-1";
const OLD_VERSION: &str = "01234567-89ab-cdef-0123-456789abcdef";

fn env_or_skip(test: &str) -> Option<E2eEnv> {
    E2eEnv::for_test(test)
}

/// The runner host of the "IAM role" examples: LocalStack's dummy static keys.
fn static_keys(env: &E2eEnv) -> Vec<(String, String)> {
    vec![
        ("AWS_ENDPOINT_URL".into(), env.aws_endpoint().into()),
        ("AWS_ACCESS_KEY_ID".into(), "test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ]
}

/// A runner host without credentials (the OIDC path needs none).
fn no_keys(env: &E2eEnv) -> Vec<(String, String)> {
    vec![
        ("AWS_ENDPOINT_URL".into(), env.aws_endpoint().into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ]
}

fn provider(vars: Vec<(String, String)>) -> AwsSecretsManagerProvider {
    AwsSecretsManagerBuilder::new()
        .with_env_vars(vars)
        .build()
        .unwrap()
}

/// A role in LocalStack's account, so the assumed credentials read its secrets.
fn role(env: &E2eEnv, name: &str) -> String {
    format!("arn:aws:iam::{}:role/{name}", env.aws_account())
}

/// A GitLab ID token for `sts.amazonaws.com` from the running issuer.
fn mint(env: &E2eEnv, claims: GitlabClaims) -> String {
    env.minter()
        .mint(&claims.with_audience("sts.amazonaws.com"))
        .unwrap()
        .expose_secret()
        .to_owned()
}

fn oidc(secret_id: &str, role_arn: &str, jwt: &str) -> AwsSecret {
    common::aws_oidc(secret_id, REGION, role_arn, jwt)
}

async fn run(
    provider: &AwsSecretsManagerProvider,
    requests: &[SecretRequest],
) -> (Vec<Result<Resolved, Error>>, ResolveContext) {
    let ctx = ctx();
    let results = provider.resolve(requests, &ctx).await;
    (results, ctx)
}

fn value(result: &Result<Resolved, Error>) -> &str {
    match result {
        Ok(r) => r.value.expose(),
        Err(e) => panic!("expected a value, got {e}"),
    }
}

fn error(result: &Result<Resolved, Error>) -> &Error {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------
// Seed 000: every example of GitLab's page.

#[tokio::test]
async fn iam_role_through_the_default_chain() {
    let Some(env) = env_or_skip("iam_role_through_the_default_chain") else {
        return;
    };
    let (r, ctx) = run(
        &provider(static_keys(&env)),
        &[request(
            "DATABASE_PASSWORD",
            with_field(aws("app-secrets/database", REGION), "password"),
        )],
    )
    .await;
    assert_eq!(value(&r[0]), "db-pass-1234");
    assert_eq!(
        ctx.requests.get(provider_aws_sm::requests::STS_ASSUME_ROLE),
        0
    );
    assert_eq!(ctx.requests.get(provider_aws_sm::requests::SM_GET), 1);
}

#[tokio::test]
async fn oidc_with_aws_id_token() {
    let Some(env) = env_or_skip("oidc_with_aws_id_token") else {
        return;
    };
    let token = mint(&env, GitlabClaims::new());
    let (r, ctx) = run(
        &provider(no_keys(&env)),
        &[request(
            "DATABASE_PASSWORD",
            with_field(
                oidc(
                    "app-secrets/database",
                    &role(&env, "gitlab-secrets-role"),
                    &token,
                ),
                "password",
            ),
        )],
    )
    .await;
    assert_eq!(value(&r[0]), "db-pass-1234");
    assert_eq!(
        ctx.requests.get(provider_aws_sm::requests::STS_ASSUME_ROLE),
        1
    );
}

#[tokio::test]
async fn oidc_with_a_custom_token() {
    let Some(env) = env_or_skip("oidc_with_a_custom_token") else {
        return;
    };
    // `token: $CUSTOM_AWS_TOKEN`: the server block carries that token instead.
    let custom = mint(&env, GitlabClaims::new().with_job_id(2002));
    let (r, _) = run(
        &provider(no_keys(&env)),
        &[request(
            "DATABASE_PASSWORD",
            with_field(
                oidc(
                    "app-secrets/database",
                    &role(&env, "gitlab-secrets-role"),
                    &custom,
                ),
                "password",
            ),
        )],
    )
    .await;
    assert_eq!(value(&r[0]), "db-pass-1234");
}

#[tokio::test]
async fn short_form_with_and_without_field() {
    let Some(env) = env_or_skip("short_form_with_and_without_field") else {
        return;
    };
    // `'app-secrets/api#api_key'` and `'app-secrets/api'` after the server's split.
    let (r, ctx) = run(
        &provider(static_keys(&env)),
        &[
            request(
                "API_KEY",
                with_field(aws("app-secrets/api", REGION), "api_key"),
            ),
            request("FULL_SECRET", aws("app-secrets/api", REGION)),
        ],
    )
    .await;
    assert_eq!(value(&r[0]), "api-key-5678");
    let full: serde_json::Value = serde_json::from_str(value(&r[1])).unwrap();
    assert_eq!(full["api_key"], "api-key-5678");
    assert_eq!(
        ctx.requests.get(provider_aws_sm::requests::SM_GET),
        1,
        "one read for both"
    );
}

#[tokio::test]
async fn versions_by_id_and_stage() {
    let Some(env) = env_or_skip("versions_by_id_and_stage") else {
        return;
    };
    let pinned = |id: Option<&str>, stage: Option<&str>| {
        let mut s = with_field(aws("prod-app-secrets/database", REGION), "password");
        s.version_id = id.map(str::to_owned);
        s.version_stage = stage.map(str::to_owned);
        s
    };
    let (r, _) = run(
        &provider(static_keys(&env)),
        &[
            request("CURRENT", pinned(None, Some("AWSCURRENT"))),
            request("BY_ID", pinned(Some(OLD_VERSION), None)),
            request("PREVIOUS", pinned(None, Some("AWSPREVIOUS"))),
            request("STAGING", pinned(None, Some("STAGING"))),
            request("LATEST", pinned(None, None)),
        ],
    )
    .await;
    assert_eq!(value(&r[0]), "new-pass-2222");
    assert_eq!(value(&r[1]), "old-pass-1111");
    assert_eq!(value(&r[2]), "old-pass-1111");
    assert_eq!(value(&r[3]), "old-pass-1111");
    assert_eq!(value(&r[4]), "new-pass-2222");
}

#[tokio::test]
async fn cross_account_arn() {
    let Some(env) = env_or_skip("cross_account_arn") else {
        return;
    };
    let token = mint(&env, GitlabClaims::new());
    let (r, _) = run(
        &provider(no_keys(&env)),
        &[request(
            "SHARED_API_KEY",
            with_field(
                oidc(
                    env.shared_secret_arn(),
                    &role(&env, "cross-account-secrets-role"),
                    &token,
                ),
                "production_key",
            ),
        )],
    )
    .await;
    assert_eq!(value(&r[0]), "shared-prod-key-7777");
}

#[tokio::test]
async fn per_secret_overrides_in_two_regions() {
    let Some(env) = env_or_skip("per_secret_overrides_in_two_regions") else {
        return;
    };
    let aws_token = mint(&env, GitlabClaims::new());
    let eu_token = mint(&env, GitlabClaims::new().with_job_id(1002));
    let mut eu = with_field(
        oidc(
            "eu-app-secrets/database",
            &role(&env, "default-role"),
            &eu_token,
        ),
        "password",
    );
    eu.region = Some("eu-west-1".into());
    eu.role_arn = Some(role(&env, "eu-deployment-role"));
    eu.role_session_name = Some("gitlab-eu-deployment".into());
    let us = with_field(
        oidc(
            "us-app-secrets/database",
            &role(&env, "default-role"),
            &aws_token,
        ),
        "password",
    );
    let (r, ctx) = run(
        &provider(no_keys(&env)),
        &[
            request("EU_DATABASE_PASSWORD", eu),
            request("US_DATABASE_PASSWORD", us),
        ],
    )
    .await;
    assert_eq!(value(&r[0]), "eu-pass-4444");
    assert_eq!(value(&r[1]), "us-pass-3333");
    assert_eq!(
        ctx.requests.get(provider_aws_sm::requests::STS_ASSUME_ROLE),
        2
    );
}

// ---------------------------------------------------------------------------------------
// Values and errors.

#[tokio::test]
async fn binary_and_json_values() {
    let Some(env) = env_or_skip("binary_and_json_values") else {
        return;
    };
    let mixed = |field: &str| with_field(aws("json/mixed", REGION), field);
    let (r, ctx) = run(
        &provider(static_keys(&env)),
        &[
            request("BLOB", aws("binary/blob", REGION)),
            request("PLAIN", aws("plain/string", REGION)),
            request("BIG", mixed("big")),
            request("FLOAT", mixed("float")),
            request("FLAG", mixed("flag")),
            request("NULLV", mixed("nullv")),
            request("NESTED", mixed("nested")),
            request("LIST", mixed("list")),
            request("MISSING_FIELD", mixed("absent")),
        ],
    )
    .await;
    assert_eq!(value(&r[0]), "AP8QIH8=");
    assert_eq!(value(&r[1]), "just-a-plain-string");
    assert_eq!(value(&r[2]), "1000000");
    assert_eq!(value(&r[3]), "1.5");
    assert_eq!(value(&r[4]), "false");
    for (i, field) in [(5, "nullv"), (6, "nested"), (7, "list")] {
        let err = error(&r[i]);
        assert_eq!(err.kind(), ErrorKind::InvalidSpec);
        assert_eq!(
            err.message(),
            format!(
                "key '{field}' in aws secrets manager response for secret 'json/mixed' is not a \
                 string, number or boolean"
            )
        );
    }
    let err = error(&r[8]);
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        err.message(),
        "key 'absent' not found in AWS Secrets Manager response for secret 'json/mixed'"
    );
    // Three distinct secrets, read in one batch.
    assert_eq!(ctx.requests.get(provider_aws_sm::requests::SM_BATCH_GET), 1);
    assert_eq!(ctx.requests.get(provider_aws_sm::requests::SM_GET), 0);
}

#[tokio::test]
async fn missing_secrets_are_not_found() {
    let Some(env) = env_or_skip("missing_secrets_are_not_found") else {
        return;
    };
    let p = provider(static_keys(&env));
    // Alone: GetSecretValue answers ResourceNotFoundException.
    let (r, _) = run(&p, &[request("MISSING", aws("does/not-exist", REGION))]).await;
    let err = error(&r[0]);
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        err.to_string().starts_with(
            "MISSING (aws_secrets_manager does/not-exist in us-east-1): GetSecretValue in \
             us-east-1 failed: ResourceNotFoundException"
        ),
        "{err}"
    );
    // In a batch: the answer's Errors[] entry maps to that secret only.
    let (r, _) = run(
        &p,
        &[
            request("MISSING", aws("does/not-exist", REGION)),
            request("PLAIN", aws("plain/string", REGION)),
        ],
    )
    .await;
    assert_eq!(error(&r[0]).kind(), ErrorKind::NotFound, "{}", error(&r[0]));
    assert_eq!(value(&r[1]), "just-a-plain-string");
    // In the wrong region.
    let mut eu = aws("us-app-secrets/database", REGION);
    eu.region = Some("eu-west-1".into());
    let (r, _) = run(&p, &[request("WRONG_REGION", eu)]).await;
    assert_eq!(error(&r[0]).kind(), ErrorKind::NotFound);
    assert!(error(&r[0]).to_string().contains("in eu-west-1"));
}

#[tokio::test]
async fn id_and_stage_conflict_never_reaches_aws() {
    let Some(env) = env_or_skip("id_and_stage_conflict_never_reaches_aws") else {
        return;
    };
    let mut both = aws("prod-app-secrets/database", REGION);
    both.version_id = Some(OLD_VERSION.into());
    both.version_stage = Some("AWSCURRENT".into());
    let (r, ctx) = run(&provider(static_keys(&env)), &[request("V", both)]).await;
    assert_eq!(error(&r[0]).kind(), ErrorKind::InvalidSpec);
    assert_eq!(ctx.requests.total(), 0);
}

#[tokio::test]
async fn forty_secrets_one_role_one_sts_call_two_batches() {
    let Some(env) = env_or_skip("forty_secrets_one_role_one_sts_call_two_batches") else {
        return;
    };
    let token = mint(&env, GitlabClaims::new());
    let role_arn = role(&env, "gitlab-secrets-role");
    let requests: Vec<SecretRequest> = (0..40)
        .map(|n| {
            request(
                &format!("BULK_{n:02}"),
                with_field(oidc(&format!("bulk/{n:02}"), &role_arn, &token), "value"),
            )
        })
        .collect();
    let (r, ctx) = run(&provider(no_keys(&env)), &requests).await;
    for (n, result) in r.iter().enumerate() {
        assert_eq!(value(result), format!("bulk-value-{n:02}"));
    }
    assert_eq!(
        ctx.requests.get(provider_aws_sm::requests::STS_ASSUME_ROLE),
        1
    );
    assert_eq!(ctx.requests.get(provider_aws_sm::requests::SM_BATCH_GET), 2);
    assert_eq!(ctx.requests.get(provider_aws_sm::requests::SM_GET), 0);
}

// ---------------------------------------------------------------------------------------
// Seed 003: the ways a runner gets AWS credentials.

#[tokio::test]
async fn credentials_from_a_shared_profile_file() {
    let Some(env) = env_or_skip("credentials_from_a_shared_profile_file") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    let config = dir.path().join("config");
    std::fs::write(
        &credentials,
        "[ci]\naws_access_key_id = test\naws_secret_access_key = test\n",
    )
    .unwrap();
    std::fs::write(&config, "[profile ci]\nregion = eu-west-1\n").unwrap();
    let vars = vec![
        ("AWS_ENDPOINT_URL".into(), env.aws_endpoint().into()),
        (
            "AWS_SHARED_CREDENTIALS_FILE".into(),
            credentials.display().to_string(),
        ),
        ("AWS_CONFIG_FILE".into(), config.display().to_string()),
        ("AWS_PROFILE".into(), "ci".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
    let (r, _) = run(
        &provider(vars),
        &[request(
            "V",
            with_field(aws("app-secrets/database", REGION), "username"),
        )],
    )
    .await;
    assert_eq!(value(&r[0]), "admin");
}

#[tokio::test]
async fn credentials_from_a_web_identity_token_file() {
    let Some(env) = env_or_skip("credentials_from_a_web_identity_token_file") else {
        return;
    };
    // The IRSA shape: the runner pod's projected token and role in the host environment.
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, mint(&env, GitlabClaims::new())).unwrap();
    let vars = vec![
        ("AWS_ENDPOINT_URL".into(), env.aws_endpoint().into()),
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE".into(),
            token_file.display().to_string(),
        ),
        ("AWS_ROLE_ARN".into(), role(&env, "irsa-runner")),
        ("AWS_ROLE_SESSION_NAME".into(), "irsa-session".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
    let (r, _) = run(
        &provider(vars),
        &[request(
            "V",
            with_field(aws("app-secrets/database", REGION), "password"),
        )],
    )
    .await;
    assert_eq!(value(&r[0]), "db-pass-1234");
}

#[tokio::test]
async fn credentials_from_the_instance_profile() {
    let Some(env) = env_or_skip("credentials_from_the_instance_profile") else {
        return;
    };
    // A local IMDSv2: the token PUT, the role name, then the role's credentials.
    let imds = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/latest/api/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("imds-session")
                .insert_header("x-aws-ec2-metadata-token-ttl-seconds", "21600"),
        )
        .mount(&imds)
        .await;
    Mock::given(method("GET"))
        .and(path("/latest/meta-data/iam/security-credentials/"))
        .respond_with(ResponseTemplate::new(200).set_body_string("runner-manager"))
        .mount(&imds)
        .await;
    Mock::given(method("GET"))
        .and(path(
            "/latest/meta-data/iam/security-credentials/runner-manager",
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(
                json!({
                    "Code": "Success", "LastUpdated": "2026-01-01T00:00:00Z", "Type": "AWS-HMAC",
                    "AccessKeyId": "test", "SecretAccessKey": "test", "Token": "imds-token",
                    "Expiration": "2100-01-01T00:00:00Z",
                })
                .to_string(),
            ),
        )
        .mount(&imds)
        .await;
    let vars = vec![
        ("AWS_ENDPOINT_URL".into(), env.aws_endpoint().into()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT".into(), imds.uri()),
    ];
    let (r, _) = run(
        &provider(vars),
        &[request(
            "V",
            with_field(aws("app-secrets/database", REGION), "password"),
        )],
    )
    .await;
    assert_eq!(value(&r[0]), "db-pass-1234");
    assert!(
        !imds.received_requests().await.unwrap().is_empty(),
        "the credentials came from IMDS"
    );
}
