//! End-to-end checks of the fixtures that `cargo xtask services up` starts and seeds
//! (`docs/e2e-fixtures.md`): the local issuer's tokens against real OpenBao JWT auth, and
//! LocalStack through the Rust AWS SDK.
//!
//! Every test skips, printing why, unless `CI_SECRETS_E2E_ENV` names the env file
//! (`cargo xtask e2e` sets it).

use auth_oidc::testing::{E2eEnv, GitlabClaims};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use reqwest::StatusCode;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

/// A Vault response: status and JSON body.
struct Reply {
    status: StatusCode,
    body: Value,
}

async fn vault(
    env: &E2eEnv,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    namespace: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut request =
        reqwest::Client::new().request(method, format!("{}/v1/{path}", env.vault_addr()));
    if let Some(token) = token {
        request = request.header("X-Vault-Token", token);
    }
    if let Some(ns) = namespace {
        request = request.header("X-Vault-Namespace", ns);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("OpenBao answers");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    Reply { status, body }
}

/// Logs in at `auth/<mount>/login`; `role: None` uses the mount's default role.
async fn login(
    env: &E2eEnv,
    mount: &str,
    role: Option<&str>,
    jwt: &SecretString,
    namespace: Option<&str>,
) -> Reply {
    let mut body = json!({ "jwt": jwt.expose_secret() });
    if let Some(role) = role {
        body["role"] = json!(role);
    }
    vault(
        env,
        reqwest::Method::PUT,
        &format!("auth/{mount}/login"),
        None,
        namespace,
        Some(body),
    )
    .await
}

/// Logs in and returns the client token, failing the test with Vault's errors otherwise.
async fn client_token(
    env: &E2eEnv,
    role: &str,
    claims: &GitlabClaims,
    namespace: Option<&str>,
) -> String {
    let jwt = env.minter().mint(claims).expect("mint");
    let reply = login(env, "jwt", Some(role), &jwt, namespace).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "login to role {role}: {}",
        reply.body["errors"]
    );
    reply.body["auth"]["client_token"]
        .as_str()
        .expect("a client token")
        .to_owned()
}

async fn read(env: &E2eEnv, token: &str, path: &str, namespace: Option<&str>) -> Reply {
    vault(
        env,
        reqwest::Method::GET,
        path,
        Some(token),
        namespace,
        None,
    )
    .await
}

#[tokio::test]
async fn ci_role_logs_in_and_reads_only_its_paths() {
    let Some(env) = E2eEnv::for_test("ci_role_logs_in_and_reads_only_its_paths") else {
        return;
    };
    let token = client_token(&env, "ci", &GitlabClaims::new(), None).await;

    let app = read(&env, &token, "secret/data/ci/app", None).await;
    assert_eq!(app.status, StatusCode::OK);
    let data = &app.body["data"]["data"];
    assert_eq!(data["username"], "app-user");
    assert_eq!(data["password"], "app-password-1234");
    assert_eq!(data["port"], 5432);
    assert_eq!(data["enabled"], true);
    assert_eq!(data["nested"]["a"], 1);

    let legacy = read(&env, &token, "kv1/ci/legacy", None).await;
    assert_eq!(legacy.body["data"]["api_key"], "legacy-api-key-5678");
    let jfrog = read(&env, &token, "artifactory/production/jfrog", None).await;
    assert_eq!(jfrog.body["data"]["access_token"], "jfrog-token-abcdef12");
    let ops = read(&env, &token, "ops/data/production/db", None).await;
    assert_eq!(ops.body["data"]["data"]["password"], "this-is-a-password");
    let totp = read(&env, &token, "totp/code/ci", None).await;
    let code = totp.body["data"]["code"].as_str().unwrap_or_default();
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "totp code {code:?}"
    );

    let deleted = read(&env, &token, "secret/data/ci/deleted", None).await;
    assert_eq!(deleted.status, StatusCode::NOT_FOUND);
    assert!(
        deleted.body["data"]["metadata"]["deletion_time"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );

    let admin = read(&env, &token, "secret/data/admin/root", None).await;
    assert_eq!(admin.status, StatusCode::FORBIDDEN);
    assert!(
        admin.body["errors"]
            .to_string()
            .contains("permission denied")
    );
}

#[tokio::test]
async fn tokens_outside_the_role_are_refused() {
    let Some(env) = E2eEnv::for_test("tokens_outside_the_role_are_refused") else {
        return;
    };
    let minter = env.minter();
    let cases = [
        (
            "wrong audience",
            GitlabClaims::new().with_audience("https://other.example.com"),
        ),
        (
            "wrong project",
            GitlabClaims::new().with_project("mygroup/other", 43),
        ),
        ("wrong ref", GitlabClaims::new().with_ref("feature")),
        (
            "tag instead of branch",
            GitlabClaims::new().with_tag("main"),
        ),
        ("expired", GitlabClaims::new().expired()),
    ];
    for (case, claims) in cases {
        let jwt = minter.mint(&claims).expect("mint");
        let reply = login(&env, "jwt", Some("ci"), &jwt, None).await;
        assert!(
            matches!(
                reply.status,
                StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN
            ),
            "{case}: HTTP {} {}",
            reply.status,
            reply.body
        );
        assert!(reply.body["auth"].is_null(), "{case}: no token is issued");
    }

    // A token signed by another key is refused too.
    let other = auth_oidc::testing::IssuerKey::generate().expect("key");
    let forged = auth_oidc::testing::Minter::new(env.oidc_issuer(), &other)
        .mint(&GitlabClaims::new())
        .expect("mint");
    let reply = login(&env, "jwt", Some("ci"), &forged, None).await;
    assert!(
        matches!(
            reply.status,
            StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN
        ),
        "forged: {}",
        reply.status
    );
}

#[tokio::test]
async fn production_role_admits_only_protected_auto_deploy_tags() {
    let Some(env) = E2eEnv::for_test("production_role_admits_only_protected_auto_deploy_tags")
    else {
        return;
    };
    let minter = env.minter();
    let refused = [
        ("branch", GitlabClaims::new()),
        (
            "unprotected tag",
            GitlabClaims::new()
                .with_tag("auto-deploy-1")
                .with_protected(false),
        ),
        ("other tag", GitlabClaims::new().with_tag("v1.0.0")),
        (
            "other project",
            GitlabClaims::new()
                .with_tag("auto-deploy-1")
                .with_project("mygroup/other", 43),
        ),
    ];
    for (case, claims) in refused {
        let jwt = minter.mint(&claims).expect("mint");
        let reply = login(&env, "jwt", Some("myproject-production"), &jwt, None).await;
        assert!(
            matches!(
                reply.status,
                StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN
            ),
            "{case}: HTTP {}",
            reply.status
        );
    }

    let tag = GitlabClaims::new().with_tag("auto-deploy-1");
    let token = client_token(&env, "myproject-production", &tag, None).await;
    let db = read(&env, &token, "ops/data/production/db", None).await;
    assert_eq!(db.status, StatusCode::OK);
    assert_eq!(db.body["data"]["data"]["password"], "this-is-a-password");
    assert_eq!(db.body["data"]["data"]["user"], "db-user");
    let app = read(&env, &token, "secret/data/ci/app", None).await;
    assert_eq!(app.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn namespace_team1_has_its_own_auth_and_secrets() {
    let Some(env) = E2eEnv::for_test("namespace_team1_has_its_own_auth_and_secrets") else {
        return;
    };
    let token = client_token(&env, "ci", &GitlabClaims::new(), Some("team1")).await;
    let app = read(&env, &token, "secret/data/ci/app", Some("team1")).await;
    assert_eq!(app.status, StatusCode::OK, "{}", app.body["errors"]);
    assert_eq!(app.body["data"]["data"]["password"], "team1-password");
}

#[tokio::test]
async fn second_mount_and_default_role() {
    let Some(env) = E2eEnv::for_test("second_mount_and_default_role") else {
        return;
    };
    let jwt = env.minter().mint(&GitlabClaims::new()).expect("mint");
    for mount in ["jwt", "jwt-alt"] {
        let reply = login(&env, mount, None, &jwt, None).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{mount}: {}",
            reply.body["errors"]
        );
        assert!(
            reply.body["auth"]["policies"]
                .to_string()
                .contains("ci-read")
        );
    }
}

async fn aws(env: &E2eEnv, region: &str, access_key: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(env.aws_endpoint())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(
            access_key,
            "test",
            None,
            None,
            "e2e-static",
        ))
        .load()
        .await
}

async fn secret_string(client: &aws_sdk_secretsmanager::Client, id: &str) -> String {
    client
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetSecretValue {id}: {e:?}"))
        .secret_string()
        .expect("a string secret")
        .to_owned()
}

#[tokio::test]
async fn localstack_serves_the_seeded_secrets() {
    let Some(env) = E2eEnv::for_test("localstack_serves_the_seeded_secrets") else {
        return;
    };
    let sm = aws_sdk_secretsmanager::Client::new(&aws(&env, "us-east-1", "test").await);
    assert_eq!(
        secret_string(&sm, "app-secrets/database").await,
        r#"{"password":"db-pass-1234","username":"admin","port":5432,"enabled":true}"#
    );
    assert_eq!(
        secret_string(&sm, "plain/string").await,
        "just-a-plain-string"
    );
    assert_eq!(
        secret_string(&sm, "bulk/39").await,
        r#"{"value":"bulk-value-39"}"#
    );

    let blob = sm
        .get_secret_value()
        .secret_id("binary/blob")
        .send()
        .await
        .expect("binary");
    assert_eq!(
        blob.secret_binary().expect("binary").as_ref(),
        &[0x00, 0xff, 0x10, 0x20, 0x7f]
    );

    let id = "prod-app-secrets/database";
    let old = "01234567-89ab-cdef-0123-456789abcdef";
    assert_eq!(
        secret_string(&sm, id).await,
        r#"{"password":"new-pass-2222"}"#
    );
    for stage in ["AWSPREVIOUS", "STAGING"] {
        let v = sm
            .get_secret_value()
            .secret_id(id)
            .version_stage(stage)
            .send()
            .await
            .expect(stage);
        assert_eq!(v.version_id(), Some(old), "{stage}");
        assert_eq!(
            v.secret_string(),
            Some(r#"{"password":"old-pass-1111"}"#),
            "{stage}"
        );
    }
    let by_id = sm
        .get_secret_value()
        .secret_id(id)
        .version_id(old)
        .send()
        .await
        .expect("by id");
    assert_eq!(
        by_id.secret_string(),
        Some(r#"{"password":"old-pass-1111"}"#)
    );

    let eu = aws_sdk_secretsmanager::Client::new(&aws(&env, "eu-west-1", "test").await);
    assert_eq!(
        secret_string(&eu, "eu-app-secrets/database").await,
        r#"{"password":"eu-pass-4444"}"#
    );
}

#[tokio::test]
async fn the_cross_account_arn_reads() {
    let Some(env) = E2eEnv::for_test("the_cross_account_arn_reads") else {
        return;
    };
    let arn = env.shared_secret_arn();
    assert!(
        arn.starts_with("arn:aws:secretsmanager:us-east-1:987654321098:secret:shared-api-keys"),
        "{arn}"
    );
    let sm = aws_sdk_secretsmanager::Client::new(&aws(&env, "us-east-1", "test").await);
    assert_eq!(
        secret_string(&sm, arn).await,
        r#"{"production_key":"shared-prod-key-7777"}"#
    );
}

#[tokio::test]
async fn sts_exchanges_an_id_token_for_credentials_that_read() {
    let Some(env) = E2eEnv::for_test("sts_exchanges_an_id_token_for_credentials_that_read") else {
        return;
    };
    let jwt = env
        .minter()
        .mint(&GitlabClaims::new().with_audience("sts.amazonaws.com"))
        .expect("mint");
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(env.aws_endpoint())
        .region(Region::new("us-east-1"))
        .no_credentials()
        .load()
        .await;
    let role_arn = format!("arn:aws:iam::{}:role/gitlab-ci-e2e", env.aws_account());
    let assumed = aws_sdk_sts::Client::new(&config)
        .assume_role_with_web_identity()
        .role_arn(&role_arn)
        .role_session_name("gitlab-job-1001")
        .web_identity_token(jwt.expose_secret())
        .send()
        .await
        .expect("AssumeRoleWithWebIdentity");
    let creds = assumed.credentials().expect("credentials");
    // Temporary keys: `ASIA...` on AWS, `LSIA...` from LocalStack.
    let key_id = creds.access_key_id();
    assert!(
        key_id.starts_with("ASIA") || key_id.starts_with("LSIA"),
        "temporary credentials, not {}...",
        &key_id[..4.min(key_id.len())]
    );
    assert_eq!(
        assumed.assumed_role_user().map(|u| u.arn()),
        Some(
            format!(
                "arn:aws:sts::{}:assumed-role/gitlab-ci-e2e/gitlab-job-1001",
                env.aws_account()
            )
            .as_str()
        )
    );
    assert!(!creds.session_token().is_empty());

    let sm_config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(env.aws_endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_owned()),
            None,
            "e2e-assumed",
        ))
        .load()
        .await;
    let sm = aws_sdk_secretsmanager::Client::new(&sm_config);
    assert_eq!(
        secret_string(&sm, "app-secrets/api").await,
        r#"{"api_key":"api-key-5678","endpoint":"https://api.example.com"}"#
    );
}
