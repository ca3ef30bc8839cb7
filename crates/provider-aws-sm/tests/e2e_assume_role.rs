//! `AssumeRoleBuilder` against LocalStack (docs/e2e-fixtures.md): credentials from an ID
//! token, from the default chain (static keys; IRSA's `AWS_WEB_IDENTITY_TOKEN_FILE` with
//! `AWS_ROLE_ARN`) and through role chaining, each used by the AWS SDK for real calls.
//! Skipped, with the reason on stderr, unless `CI_SECRETS_E2E_ENV` is set. LocalStack does
//! not check tokens or trust policies; the refusals are in `tests/assume_role_http.rs`.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

use auth_oidc::testing::{E2eEnv, GitlabClaims};
use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use provider_aws_sm::{AssumeRoleBuilder, TemporaryCredentials};
use secrecy::ExposeSecret;
use std::time::Duration;

const SESSION: &str = "1001-42-gitlab.example.com";
/// The account of the seed's role ARNs, where the seed 000 secrets exist too.
const ROLE_ACCOUNT: &str = "123456789012";

fn sts_token(env: &E2eEnv) -> secrecy::SecretString {
    env.minter()
        .mint(&GitlabClaims::new().with_audience("sts.amazonaws.com"))
        .unwrap()
}

fn host(env: &E2eEnv, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars = vec![
        ("AWS_ENDPOINT_URL".to_owned(), env.aws_endpoint().to_owned()),
        ("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned()),
    ];
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    vars
}

/// An SDK config that signs with `c` and nothing else, pointed at LocalStack.
async fn sdk(env: &E2eEnv, c: &TemporaryCredentials) -> aws_types::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_types::region::Region::new(c.region().to_owned()))
        .endpoint_url(env.aws_endpoint())
        .credentials_provider(Credentials::new(
            c.access_key_id().expose_secret(),
            c.secret_access_key().expose_secret(),
            c.session_token().map(|t| t.expose_secret().to_owned()),
            c.expiration(),
            "test",
        ))
        .load()
        .await
}

async fn caller_arn(env: &E2eEnv, c: &TemporaryCredentials) -> String {
    aws_sdk_sts::Client::new(&sdk(env, c).await)
        .get_caller_identity()
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned()
}

async fn read(env: &E2eEnv, c: &TemporaryCredentials, id: &str) -> String {
    aws_sdk_secretsmanager::Client::new(&sdk(env, c).await)
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .unwrap()
        .secret_string()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn credentials_from_an_id_token_make_real_calls() {
    let Some(env) = E2eEnv::for_test("credentials_from_an_id_token_make_real_calls") else {
        return;
    };
    let role = format!("arn:aws:iam::{ROLE_ACCOUNT}:role/gitlab-ci-e2e");
    let c = AssumeRoleBuilder::web_identity(&role, sts_token(&env))
        .with_region("us-east-1")
        .with_session_name(SESSION)
        .with_duration(Duration::from_secs(1200))
        .with_env_vars(host(&env, &[]))
        .fetch()
        .await
        .unwrap();
    assert!(c.session_token().is_some());
    let left = c.remaining_secs(std::time::SystemTime::now()).unwrap();
    assert!((60..=1200).contains(&left), "expires in {left} s");
    let arn = caller_arn(&env, &c).await;
    assert!(
        arn.contains(&format!(
            "{ROLE_ACCOUNT}:assumed-role/gitlab-ci-e2e/{SESSION}"
        )),
        "{arn}"
    );
    assert!(
        read(&env, &c, "app-secrets/database")
            .await
            .contains("db-pass-1234")
    );
}

#[tokio::test]
async fn role_chaining_ends_in_the_last_role() {
    let Some(env) = E2eEnv::for_test("role_chaining_ends_in_the_last_role") else {
        return;
    };
    let first = format!("arn:aws:iam::{}:role/gitlab-ci-e2e", env.aws_account());
    let second = format!("arn:aws:iam::{ROLE_ACCOUNT}:role/deploy");
    let c = AssumeRoleBuilder::web_identity(&first, sts_token(&env))
        .with_region("us-east-1")
        .with_session_name(SESSION)
        .then_assume_role(&second)
        .with_env_vars(host(&env, &[]))
        .fetch()
        .await
        .unwrap();
    let arn = caller_arn(&env, &c).await;
    assert!(
        arn.contains(&format!("{ROLE_ACCOUNT}:assumed-role/deploy/")),
        "{arn}"
    );
    assert!(
        read(&env, &c, "us-app-secrets/database")
            .await
            .contains("us-pass-3333")
    );

    // From the default chain's static keys, as a runner with CI/CD variable keys would.
    let c = AssumeRoleBuilder::default_chain()
        .with_region("us-east-1")
        .with_session_name(SESSION)
        .then_assume_role(&second)
        .with_env_vars(host(
            &env,
            &[
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
            ],
        ))
        .fetch()
        .await
        .unwrap();
    assert!(caller_arn(&env, &c).await.contains("assumed-role/deploy/"));
}

#[tokio::test]
async fn the_default_chain_takes_an_irsa_token_file() {
    let Some(env) = E2eEnv::for_test("the_default_chain_takes_an_irsa_token_file") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, sts_token(&env).expose_secret()).unwrap();
    let role = format!("arn:aws:iam::{ROLE_ACCOUNT}:role/eks-runner");
    let c = AssumeRoleBuilder::default_chain()
        .with_region("eu-west-1")
        .with_env_vars(host(
            &env,
            &[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", file.to_str().unwrap()),
                ("AWS_ROLE_ARN", &role),
                ("AWS_ROLE_SESSION_NAME", "irsa"),
            ],
        ))
        .fetch()
        .await
        .unwrap();
    assert!(c.session_token().is_some() && c.expiration().is_some());
    assert!(
        caller_arn(&env, &c)
            .await
            .contains("assumed-role/eks-runner/irsa")
    );
    assert!(
        read(&env, &c, "eu-app-secrets/database")
            .await
            .contains("eu-pass-4444")
    );
}
