//! The exact requests (wiremock), and the leak canaries: a value, an access token and an ID
//! token that must never reach errors, `Debug`, reports or logs at TRACE, on success and on
//! every failure path, even when the server echoes them in its error texts.

use base64::Engine as _;
use provider_gcp_sm::GcpSecretManagerBuilder;
use secrets_core::{JobPayload, JobVariable};
use secrets_resolver::{ResolveOptions, Resolver};
use serde_json::{Value, json};
use std::sync::Arc;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const VALUE: &str = "canary-value-5c1e9b";
const ACCESS: &str = "ya29.canary-access-77d2";
const AUDIENCE: &str =
    "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/pool/providers/prov";

fn id_token() -> String {
    let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.canary-signature-e0f4",
        b(r#"{"alg":"RS256","kid":"k"}"#),
        b(
            r#"{"aud":"https://iam.googleapis.com/x","sub":"project_path:g/p:ref_type:branch:ref:main","exp":4102444800}"#
        )
    )
}

fn secret(name: &str) -> Value {
    json!({"gcp_secret_manager": {"name": name, "version": "latest", "server": {
        "project_number": "1", "workload_identity_federation_pool_id": "pool",
        "workload_identity_federation_provider_id": "prov", "jwt": "$GCP_ID_TOKEN"}}, "file": false})
}

fn payload(secrets: Value) -> JobPayload {
    let variables = vec![JobVariable::new("GCP_ID_TOKEN", id_token())];
    serde_json::from_value(json!({"secrets": secrets, "variables": variables})).unwrap()
}

fn resolver(server: &MockServer) -> Resolver {
    let provider = GcpSecretManagerBuilder::new()
        .with_sts_endpoint(server.uri())
        .with_secretmanager_endpoint(server.uri())
        .build()
        .unwrap();
    Resolver::builder()
        .with_provider(Arc::new(provider))
        .with_options(ResolveOptions::default())
        .build()
}

fn access_body(value: &str, crc: Option<u32>) -> Value {
    let data = base64::engine::general_purpose::STANDARD.encode(value);
    let crc = crc.unwrap_or_else(|| crc32c::crc32c(value.as_bytes()));
    json!({"name": "projects/1/secrets/s/versions/3", "payload": {"data": data, "dataCrc32c": crc.to_string()}})
}

async fn server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/token"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "audience": AUDIENCE,
            "grantType": "urn:ietf:params:oauth:grant-type:token-exchange",
            "requestedTokenType": "urn:ietf:params:oauth:token-type:access_token",
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "subjectToken": id_token(),
            "subjectTokenType": "urn:ietf:params:oauth:token-type:id_token",
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": ACCESS, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer", "expires_in": 3599})))
        .mount(&server)
        .await;
    let bearer = format!("Bearer {ACCESS}");
    Mock::given(method("GET"))
        .and(path("/v1/projects/1/secrets/ok/versions/latest:access"))
        .and(header("authorization", bearer.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(access_body(VALUE, None)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(
            "/v1/projects/1/secrets/corrupt/versions/latest:access",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(access_body(VALUE, Some(1))))
        .mount(&server)
        .await;
    // An error text that echoes the token and the value.
    Mock::given(method("GET"))
        .and(path("/v1/projects/1/secrets/echo/versions/latest:access"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"error": {
            "code": 403, "status": "PERMISSION_DENIED",
            "message": format!("denied for token {ACCESS}")}})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(
            "/v1/projects/1/secrets/value-in-404/versions/latest:access",
        ))
        .respond_with(ResponseTemplate::new(404).set_body_string(format!("<html>{VALUE}</html>")))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn the_runner_requests_exactly() {
    let server = server().await;
    let p = payload(json!({"A": secret("ok"), "B": secret("projects/1/secrets/ok")}));
    let resolution = resolver(&server).resolve_payload(&p).await.unwrap();
    assert_eq!(resolution.variables[0].value.expose(), VALUE);
    assert_eq!(resolution.variables[1].value.expose(), VALUE);
    let received = server.received_requests().await.unwrap();
    assert_eq!(
        received.len(),
        2,
        "one exchange, one read of the shared version"
    );
    let sts = &received[0];
    assert_eq!(sts.url.path(), "/v1/token");
    assert!(
        !sts.headers.contains_key("authorization"),
        "STS is called without authorization"
    );
    let access = &received[1];
    assert_eq!(
        access.url.path(),
        "/v1/projects/1/secrets/ok/versions/latest:access"
    );
    assert_eq!(
        access.headers["authorization"],
        format!("Bearer {ACCESS}").as_str()
    );
    let notes = &resolution.report.secrets[0].notes;
    assert!(notes.iter().any(|n| n.contains("versions/3")), "{notes:?}");
}

#[tokio::test]
async fn canaries_never_leak() {
    let _ = canary_capture::logs();
    let server = server().await;
    let jwt = id_token();
    let forbidden = [VALUE, ACCESS, jwt.as_str(), "canary-signature-e0f4"];
    let check = |what: &str, text: &str| {
        for canary in &forbidden[1..] {
            assert!(!text.contains(canary), "{what} shows {canary}: {text}");
        }
    };

    let ok = resolver(&server)
        .resolve_payload(&payload(json!({"A": secret("ok")})))
        .await
        .unwrap();
    let shown = format!("{ok:?} {:?} {:?}", ok.report, ok.variables);
    check("a resolution", &shown);
    assert!(!shown.contains(VALUE), "{shown}");

    for name in ["corrupt", "echo", "value-in-404"] {
        let failure = resolver(&server)
            .resolve_payload(&payload(json!({"A": secret(name)})))
            .await
            .unwrap_err();
        let shown = format!("{failure} {failure:?} {:?}", failure.errors);
        for canary in forbidden {
            assert!(!shown.contains(canary), "{name} shows {canary}: {shown}");
        }
    }
    // STS echoing the subject token.
    let sts = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant", "error_description": format!("bad token {jwt}")})))
        .mount(&sts)
        .await;
    let failure = resolver(&sts)
        .resolve_payload(&payload(json!({"A": secret("ok")})))
        .await
        .unwrap_err();
    let shown = format!("{failure} {failure:?}");
    assert!(shown.contains("invalid_grant"), "{shown}");
    check("an STS failure", &shown);

    let logs = canary_capture::logs().text();
    assert!(
        logs.contains("provider_gcp_sm"),
        "the capture sees the provider"
    );
    for canary in forbidden {
        assert!(!logs.contains(canary), "the logs show {canary}");
    }
}

const IMPERSONATED: &str = "ya29.canary-impersonated-3b8a";
const ACCOUNT: &str = "reader@proj.iam.gserviceaccount.com";

fn secret_as(name: &str, account: &str) -> Value {
    let mut s = secret(name);
    s["gcp_secret_manager"]["server"]["impersonate_service_account"] = account.into();
    s
}

fn impersonating_resolver(server: &MockServer) -> Resolver {
    let provider = GcpSecretManagerBuilder::new()
        .with_sts_endpoint(server.uri())
        .with_secretmanager_endpoint(server.uri())
        .with_iamcredentials_endpoint(server.uri())
        .build()
        .unwrap();
    Resolver::builder()
        .with_provider(Arc::new(provider))
        .with_options(ResolveOptions::default())
        .build()
}

/// STS as [`server`], then IAM Credentials and a read that admit only the impersonated token.
async fn impersonation_server() -> MockServer {
    let server = server().await;
    let federated = format!("Bearer {ACCESS}");
    Mock::given(method("POST"))
        .and(path(format!(
            "/v1/projects/-/serviceAccounts/{ACCOUNT}:generateAccessToken"
        )))
        .and(header("authorization", federated.as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "scope": ["https://www.googleapis.com/auth/cloud-platform"],
            "lifetime": "3600s",
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "accessToken": IMPERSONATED, "expireTime": "2099-01-01T00:00:00Z"})))
        .mount(&server)
        .await;
    // A refusal that echoes the federated token.
    Mock::given(method("POST"))
        .and(path(
            "/v1/projects/-/serviceAccounts/echo@proj.iam.gserviceaccount.com:generateAccessToken",
        ))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"error": {
            "code": 403, "status": "PERMISSION_DENIED",
            "message": format!("Permission 'iam.serviceAccounts.getAccessToken' denied for {ACCESS}")}})))
        .mount(&server)
        .await;
    let impersonated = format!("Bearer {IMPERSONATED}");
    Mock::given(method("GET"))
        .and(path("/v1/projects/1/secrets/sa/versions/latest:access"))
        .and(header("authorization", impersonated.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(access_body(VALUE, None)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(
            "/v1/projects/1/secrets/sa-echo/versions/latest:access",
        ))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"error": {
            "code": 403, "status": "PERMISSION_DENIED",
            "message": format!("denied for {IMPERSONATED}")}})))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn impersonation_requests_exactly() {
    let server = impersonation_server().await;
    let p = payload(json!({"A": secret_as("sa", ACCOUNT), "B": secret_as("sa", ACCOUNT)}));
    let resolution = impersonating_resolver(&server)
        .resolve_payload(&p)
        .await
        .unwrap();
    assert_eq!(resolution.variables[0].value.expose(), VALUE);
    assert_eq!(resolution.variables[1].value.expose(), VALUE);
    let received = server.received_requests().await.unwrap();
    let paths: Vec<&str> = received.iter().map(|r| r.url.path()).collect();
    assert_eq!(
        paths,
        [
            "/v1/token",
            "/v1/projects/-/serviceAccounts/reader@proj.iam.gserviceaccount.com:generateAccessToken",
            "/v1/projects/1/secrets/sa/versions/latest:access",
        ]
    );
    assert_eq!(received[1].method.as_str(), "POST");
    assert_eq!(
        received[1].headers["authorization"],
        format!("Bearer {ACCESS}").as_str(),
        "the federated token is the bearer"
    );
    let body: Value = serde_json::from_slice(&received[1].body).unwrap();
    assert_eq!(
        body,
        json!({"scope": ["https://www.googleapis.com/auth/cloud-platform"], "lifetime": "3600s"})
    );
    assert_eq!(
        received[2].headers["authorization"],
        format!("Bearer {IMPERSONATED}").as_str()
    );
    assert_eq!(
        resolution.report.requests_of("gcp_generate_access_token"),
        1
    );
}

#[tokio::test]
async fn impersonation_canaries_never_leak() {
    let _ = canary_capture::logs();
    let server = impersonation_server().await;
    let jwt = id_token();
    let forbidden = [
        VALUE,
        ACCESS,
        IMPERSONATED,
        jwt.as_str(),
        "canary-signature-e0f4",
    ];
    let ok = impersonating_resolver(&server)
        .resolve_payload(&payload(json!({"A": secret_as("sa", ACCOUNT)})))
        .await
        .unwrap();
    let shown = format!("{ok:?} {:?} {:?}", ok.report, ok.variables);
    for canary in &forbidden[1..] {
        assert!(!shown.contains(canary), "a resolution shows {canary}");
    }
    for (name, account) in [
        ("sa", "echo@proj.iam.gserviceaccount.com"),
        ("sa-echo", ACCOUNT),
    ] {
        let failure = impersonating_resolver(&server)
            .resolve_payload(&payload(json!({"A": secret_as(name, account)})))
            .await
            .unwrap_err();
        let shown = format!("{failure} {failure:?} {:?}", failure.errors);
        assert!(shown.contains("PERMISSION_DENIED"), "{shown}");
        for canary in forbidden {
            assert!(!shown.contains(canary), "{name} shows {canary}: {shown}");
        }
    }
    let logs = canary_capture::logs().text();
    for canary in forbidden {
        assert!(!logs.contains(canary), "the logs show {canary}");
    }
}
