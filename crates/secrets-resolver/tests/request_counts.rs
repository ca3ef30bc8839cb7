//! Request counts through the resolver with the real providers on mock servers, and the same
//! variables as GitLab Runner's algorithm (one fresh client, login and read per secret).

#![cfg(all(feature = "vault", feature = "aws-sm"))]

use base64::Engine as _;
use provider_aws_sm::AwsSecretsManagerProvider;
use provider_vault::VaultProvider;
use secrets_core::materialise::SecretVariable;
use secrets_core::{
    JobPayload, JobVariable, ResolveContext, SecretProvider, SecretRequest, Variables,
};
use secrets_resolver::{Plan, ResolveOptions, Resolver};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use wiremock::matchers::{body_string_contains, header, method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn id_token() -> String {
    let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.sig",
        b(r#"{"alg":"RS256","kid":"k"}"#),
        b(
            r#"{"aud":"https://vault.example.com","sub":"project_path:g/p:ref_type:branch:ref:main","exp":4102444800}"#
        )
    )
}

fn variables() -> Vec<JobVariable> {
    ["VAULT_ID_TOKEN", "AWS_ID_TOKEN"]
        .into_iter()
        .map(|key| JobVariable {
            key: key.into(),
            value: id_token(),
            masked: true,
            ..JobVariable::default()
        })
        .chain([
            JobVariable::new("CI_JOB_ID", "7"),
            JobVariable::new("CI_PROJECT_ID", "42"),
        ])
        .collect()
}

fn vault_secret(url: &str, path: &str, field: &str) -> Value {
    json!({"vault": {"server": {"url": url, "namespace": null,
        "auth": {"name": "jwt", "path": "jwt", "data": {"jwt": "$VAULT_ID_TOKEN", "role": "ci"}}},
        "engine": {"name": "kv-v2", "path": "secret"}, "path": path, "field": field}, "file": false})
}

fn aws_secret(id: &str) -> Value {
    json!({"aws_secrets_manager": {"secret_id": id, "field": "value", "version_id": null,
        "version_stage": null, "region": null, "role_arn": null, "role_session_name": null,
        "server": {"region": "us-east-1", "jwt": "$AWS_ID_TOKEN",
                   "role_arn": "arn:aws:iam::123456789012:role/ci", "role_session_name": null}}})
}

async fn vault_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v1/auth/jwt/login"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"auth": {"client_token": "s.token", "lease_duration": 60, "renewable": false}}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/token/revoke-self"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v1/secret/data/app/\d+$"))
        .and(header("x-vault-token", "s.token"))
        .respond_with(|req: &Request| {
            let n = req
                .url
                .path()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            let data: serde_json::Map<String, Value> = (0..20)
                .map(|i| (format!("f{i}"), json!(format!("value-{n}-{i}"))))
                .collect();
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {"data": data, "metadata": {}}}))
        })
        .mount(&server)
        .await;
    server
}

fn json_response(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.to_string(), "application/x-amz-json-1.1")
}

async fn aws_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("Action=AssumeRoleWithWebIdentity"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId>
  <SecretAccessKey>secret</SecretAccessKey><SessionToken>session</SessionToken>
  <Expiration>2100-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>"#,
            "text/xml",
        ))
        .mount(&server)
        .await;
    let value_of = |id: &str| {
        json!({"ARN": format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{id}-AbCdEf"),
        "Name": id, "SecretString": json!({"value": format!("aws-{id}")}).to_string(), "VersionId": "v1"})
    };
    Mock::given(method("POST"))
        .and(header("x-amz-target", "secretsmanager.BatchGetSecretValue"))
        .respond_with(move |req: &Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            let found: Vec<Value> = body["SecretIdList"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| value_of(id.as_str().unwrap()))
                .collect();
            json_response(json!({"SecretValues": found, "Errors": []}))
        })
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", "secretsmanager.GetSecretValue"))
        .respond_with(move |req: &Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            json_response(value_of(body["SecretId"].as_str().unwrap()))
        })
        .mount(&server)
        .await;
    server
}

fn aws_env(server: &MockServer) -> Vec<(String, String)> {
    vec![
        ("AWS_ENDPOINT_URL".into(), server.uri()),
        ("AWS_ACCESS_KEY_ID".into(), "AKIDEXAMPLE".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "secret".into()),
    ]
}

fn resolver(aws: &MockServer) -> Resolver {
    Resolver::builder()
        .with_provider(Arc::new(VaultProvider::builder().build().unwrap()))
        .with_provider(Arc::new(
            AwsSecretsManagerProvider::builder()
                .with_env_vars(aws_env(aws))
                .build()
                .unwrap(),
        ))
        .with_options(ResolveOptions::default())
        .build()
}

/// GitLab Runner's algorithm with the same crates: each secret on its own, with a new
/// provider (new client, new login or STS call), no batching, no token revocation.
async fn runner_algorithm(
    payload: &JobPayload,
    aws: &MockServer,
) -> BTreeMap<String, (String, bool)> {
    let vars = Variables::new(payload.variables.clone());
    let lookup = |name: &str| vars.get(name).map(|v| v.into_owned());
    let mut out = BTreeMap::new();
    for (key, secret) in &payload.secrets {
        let mut expanded = secret.clone();
        expanded.expand_variables(&lookup);
        let provider: Box<dyn SecretProvider> = if secret.vault.is_some() {
            Box::new(
                VaultProvider::builder()
                    .with_revoke_token(false)
                    .build()
                    .unwrap(),
            )
        } else {
            Box::new(
                AwsSecretsManagerProvider::builder()
                    .with_env_vars(aws_env(aws))
                    .with_batching(false)
                    .build()
                    .unwrap(),
            )
        };
        let request = SecretRequest {
            variable: key.clone(),
            secret: expanded,
        };
        let resolved = provider
            .resolve(std::slice::from_ref(&request), &ResolveContext::default())
            .await
            .pop()
            .unwrap()
            .unwrap();
        let var = SecretVariable::new(key.clone(), secret, resolved.value);
        out.insert(key.clone(), (var.value.expose().to_owned(), var.file));
    }
    out
}

fn as_map(vars: &[SecretVariable]) -> BTreeMap<String, (String, bool)> {
    vars.iter()
        .map(|v| (v.key.clone(), (v.value.expose().to_owned(), v.file)))
        .collect()
}

#[tokio::test]
async fn twenty_vault_secrets_over_five_paths_cost_one_login_five_reads_one_revoke() {
    let vault = vault_server().await;
    let aws = aws_server().await;
    let secrets: serde_json::Map<String, Value> = (0..20)
        .map(|i| {
            (
                format!("V{i:02}"),
                vault_secret(&vault.uri(), &format!("app/{}", i % 5), &format!("f{i}")),
            )
        })
        .collect();
    let payload: JobPayload =
        serde_json::from_value(json!({"secrets": secrets, "variables": variables()})).unwrap();

    let mut resolution = resolver(&aws).resolve_payload(&payload).await.unwrap();
    assert_eq!(
        resolution.report.requests_of("vault_revoke"),
        0,
        "the revoke is counted once it is done"
    );
    resolution.close().await;
    let requests = &resolution.report.requests;
    assert_eq!(
        &Plan::of(&payload.secrets).requests,
        requests,
        "check plans what resolve does"
    );
    assert_eq!(requests.get("vault_login"), Some(&1), "{requests:?}");
    assert_eq!(requests.get("vault_read"), Some(&5), "{requests:?}");
    assert_eq!(requests.get("vault_revoke"), Some(&1), "{requests:?}");
    assert_eq!(
        vault.received_requests().await.unwrap().len(),
        7,
        "what the server saw"
    );
    assert_eq!(resolution.variables[7].value.expose(), "value-2-7");

    let expected = runner_algorithm(&payload, &aws).await;
    assert_eq!(
        as_map(&resolution.variables),
        expected,
        "the runner's variables"
    );
}

#[tokio::test]
async fn thirty_current_aws_secrets_with_one_role_cost_one_sts_call_and_two_batches() {
    let vault = vault_server().await;
    let aws = aws_server().await;
    let mut secrets: serde_json::Map<String, Value> = (0..30)
        .map(|i| (format!("A{i:02}"), aws_secret(&format!("app/{i:02}"))))
        .collect();
    // A Vault secret in the same job: identities resolve concurrently, counted apart.
    secrets.insert("V".into(), vault_secret(&vault.uri(), "app/1", "f3"));
    let payload: JobPayload =
        serde_json::from_value(json!({"secrets": secrets, "variables": variables()})).unwrap();

    let mut resolution = resolver(&aws).resolve_payload(&payload).await.unwrap();
    assert_eq!(
        resolution.report.requests_of("vault_revoke"),
        0,
        "the revoke is counted once it is done"
    );
    resolution.close().await;
    let requests = &resolution.report.requests;
    assert_eq!(
        &Plan::of(&payload.secrets).requests,
        requests,
        "check plans what resolve does"
    );
    assert_eq!(requests.get("sts_assume_role"), Some(&1), "{requests:?}");
    assert_eq!(requests.get("sm_batch_get"), Some(&2), "{requests:?}");
    assert_eq!(requests.get("sm_get"), None, "{requests:?}");
    assert_eq!(requests.get("vault_login"), Some(&1), "{requests:?}");
    assert_eq!(
        aws.received_requests().await.unwrap().len(),
        3,
        "what the server saw"
    );
    assert_eq!(resolution.variables[29].value.expose(), "aws-app/29");

    let expected = runner_algorithm(&payload, &aws).await;
    assert_eq!(
        as_map(&resolution.variables),
        expected,
        "the runner's variables"
    );
}

#[tokio::test]
async fn a_lone_current_aws_secret_and_pinned_ones_are_planned_as_sent() {
    let vault = vault_server().await;
    let aws = aws_server().await;
    let mut pinned = aws_secret("app/03");
    pinned["aws_secrets_manager"]["version_stage"] = json!("AWSCURRENT");
    let payload: JobPayload = serde_json::from_value(json!({"secrets": {
        "ONE": aws_secret("app/01"),
        "PINNED": pinned,
        "V": vault_secret(&vault.uri(), "app/1", "f3"),
    }, "variables": variables()}))
    .unwrap();
    let mut resolution = resolver(&aws).resolve_payload(&payload).await.unwrap();
    resolution.close().await;
    let plan = Plan::of(&payload.secrets);
    assert_eq!(plan.requests, resolution.report.requests);
    assert_eq!(plan.requests.get("sm_get"), Some(&2), "{:?}", plan.requests);
    assert_eq!(plan.requests.get("sm_batch_get"), None);
}

#[tokio::test]
async fn expired_tokens_fail_once_before_any_request_for_every_provider() {
    let vault = vault_server().await;
    let aws = aws_server().await;
    let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let expired = format!(
        "{}.{}.sig",
        b(r#"{"alg":"RS256"}"#),
        b(r#"{"aud":"x","sub":"s","exp":1000}"#)
    );
    let variables: Vec<JobVariable> = ["VAULT_ID_TOKEN", "AWS_ID_TOKEN"]
        .into_iter()
        .map(|key| JobVariable::new(key, &expired))
        .collect();
    let payload: JobPayload = serde_json::from_value(json!({"secrets": {
        "A": aws_secret("app/01"),
        "V": vault_secret(&vault.uri(), "app/1", "f3"),
    }, "variables": variables}))
    .unwrap();
    let failure = resolver(&aws).resolve_payload(&payload).await.unwrap_err();
    assert_eq!(failure.errors.len(), 2);
    for err in &failure.errors {
        assert_eq!(err.kind(), secrets_core::ErrorKind::InvalidConfig, "{err}");
        assert!(err.to_string().contains("expired"), "{err}");
    }
    let text = failure.to_string();
    assert!(
        text.contains("token $AWS_ID_TOKEN") && text.contains("token $VAULT_ID_TOKEN"),
        "{text}"
    );
    assert!(failure.report.requests.is_empty());
    assert!(vault.received_requests().await.unwrap().is_empty());
    assert!(aws.received_requests().await.unwrap().is_empty());
}
