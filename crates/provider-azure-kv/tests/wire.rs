//! Exact request shapes, against wiremock: the challenge for a vault outside the known
//! suffixes (and its resource check), the token form, the bearer and `api-version` on the
//! read, one token for several secrets, names refused before any request.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use provider_azure_kv::{API_VERSION, AzureKeyVaultBuilder};
use secrets_core::payload::{AzureSecret, AzureServer};
use secrets_core::{
    Environment, ErrorKind, ResolveContext, RetryPolicy, Secret, SecretProvider, SecretRequest,
};
use std::collections::BTreeMap;
use std::time::Duration;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

/// An unsigned JWT with GitLab-like claims (wiremock checks no signature).
fn jwt() -> String {
    let enc = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2ln",
        enc(serde_json::json!({"alg": "RS256", "typ": "JWT"})),
        enc(serde_json::json!({
            "iss": "https://gitlab.example.com",
            "sub": "project_path:g/p:ref_type:branch:ref:main",
            "aud": "api://AzureADTokenExchange",
            "exp": 4_000_000_000u64,
            "iat": 1_700_000_000u64,
        }))
    )
}

fn secret(url: &str, name: &str, version: Option<&str>) -> Secret {
    Secret {
        azure_key_vault: Some(Box::new(AzureSecret {
            name: name.into(),
            version: version.map(Into::into),
            server: AzureServer {
                url: url.into(),
                client_id: "client-1".into(),
                tenant_id: "tenant-1".into(),
                jwt: jwt().into(),
            },
        })),
        ..Secret::default()
    }
}

fn ctx() -> ResolveContext {
    ResolveContext {
        retry: RetryPolicy {
            max_attempts: 2,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        },
        ..ResolveContext::default()
    }
}

struct NoAuthorization;
impl Match for NoAuthorization {
    fn matches(&self, request: &Request) -> bool {
        !request.headers.contains_key("authorization")
    }
}

/// A server that is both the authority and a vault at `http://localhost:<port>`.
async fn server(resource: &str) -> (MockServer, String) {
    let server = MockServer::start().await;
    let authority = server.uri();
    let challenge =
        format!(r#"Bearer authorization="{authority}/tenant-1", resource="{resource}""#);
    Mock::given(method("GET"))
        .and(NoAuthorization)
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("WWW-Authenticate", challenge.as_str())
                .set_body_json(serde_json::json!({"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/tenant-1/oauth2/v2.0/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": "access-token-1"
        })))
        .mount(&server)
        .await;
    for (name, value) in [("db", "v-db"), ("api", "v-api")] {
        Mock::given(method("GET"))
            .and(path(format!("/secrets/{name}/")))
            .and(query_param("api-version", API_VERSION))
            .and(header("authorization", "Bearer access-token-1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "value": value, "id": format!("{authority}/secrets/{name}/0a"), "attributes": {"enabled": true}
            })))
            .mount(&server)
            .await;
    }
    let vault = authority.replace("127.0.0.1", "localhost");
    (server, vault)
}

fn provider(server: &MockServer) -> provider_azure_kv::AzureKeyVaultProvider {
    let env: Environment = [("AZURE_AUTHORITY_HOST", server.uri())]
        .into_iter()
        .collect();
    AzureKeyVaultBuilder::new()
        .with_env(env)
        .with_resolve_for_tests("localhost", *server.address())
        .build()
        .unwrap()
}

fn requests(secrets: &[(&str, Secret)]) -> Vec<SecretRequest> {
    secrets
        .iter()
        .map(|(v, s)| SecretRequest {
            variable: (*v).into(),
            secret: s.clone(),
        })
        .collect()
}

#[tokio::test]
async fn challenge_then_one_token_then_bearer_reads() {
    let (server, vault) = server("https://localhost").await;
    let p = provider(&server);
    let ctx = ctx();
    let reqs = requests(&[
        ("DB", secret(&vault, "db", None)),
        ("API", secret(&vault, "api", None)),
        ("DB_AGAIN", secret(&vault, "DB", None)),
    ]);
    let out = p.resolve(&reqs, &ctx).await;
    let values: Vec<String> = out
        .iter()
        .map(|r| r.as_ref().unwrap().value.expose().to_owned())
        .collect();
    assert_eq!(values, ["v-db", "v-api", "v-db"]);
    let counts: BTreeMap<&str, u64> = ctx.requests.snapshot();
    assert_eq!(counts["azure_challenge"], 1);
    assert_eq!(counts["azure_token"], 1);
    assert_eq!(counts["azure_get"], 2);

    let received = server.received_requests().await.unwrap();
    let token: Vec<&Request> = received
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .collect();
    assert_eq!(token.len(), 1);
    assert_eq!(
        token[0].headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    let form: BTreeMap<String, String> = form_urlencoded::parse(&token[0].body)
        .into_owned()
        .collect();
    let expected: BTreeMap<String, String> = [
        ("grant_type", "client_credentials".to_owned()),
        ("client_id", "client-1".to_owned()),
        ("client_assertion", jwt()),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
        ),
        ("scope", "https://localhost/.default".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(form, expected);
    for get in received.iter().filter(|r| r.method.as_str() == "GET") {
        let query: BTreeMap<String, String> = get.url.query_pairs().into_owned().collect();
        assert_eq!(
            query.get("api-version").map(String::as_str),
            Some(API_VERSION)
        );
    }
}

#[tokio::test]
async fn a_challenge_for_another_domain_gets_no_token() {
    let (server, vault) = server("https://vault.evil.example").await;
    let p = provider(&server);
    let ctx = ctx();
    let out = p
        .resolve(&requests(&[("DB", secret(&vault, "db", None))]), &ctx)
        .await;
    let err = out[0].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert_eq!(err.variable(), Some("DB"));
    assert!(err.to_string().contains("not the vault's domain"), "{err}");
    assert_eq!(
        ctx.requests
            .snapshot()
            .get("azure_token")
            .copied()
            .unwrap_or(0),
        0
    );
}

#[tokio::test]
async fn invalid_names_send_nothing() {
    let server = MockServer::start().await;
    let p = provider(&server);
    let ctx = ctx();
    let long = "a".repeat(128);
    let out = p
        .resolve(
            &requests(&[
                (
                    "A",
                    secret("https://kv.vault.azure.net", "db_password", None),
                ),
                ("B", secret("https://kv.vault.azure.net", &long, None)),
                (
                    "C",
                    secret("https://kv.vault.azure.net", "db", Some("../x")),
                ),
                ("D", secret("http://kv.vault.azure.net", "db", None)),
            ]),
            &ctx,
        )
        .await;
    for (r, kind) in out.iter().zip([
        ErrorKind::InvalidSpec,
        ErrorKind::InvalidSpec,
        ErrorKind::InvalidSpec,
        ErrorKind::InvalidConfig,
    ]) {
        assert_eq!(r.as_ref().unwrap_err().kind(), kind, "{r:?}");
    }
    assert_eq!(ctx.requests.total(), 0);
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn throttled_token_requests_are_retried() {
    let (server, vault) = server("https://localhost").await;
    // Mounted last: wiremock tries the newest mock with the same priority first.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(serde_json::json!({
            "error": "temporarily_unavailable", "error_codes": [90033]
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    let p = provider(&server);
    let ctx = ctx();
    let out = p
        .resolve(&requests(&[("DB", secret(&vault, "db", None))]), &ctx)
        .await;
    assert_eq!(out[0].as_ref().unwrap().value.expose(), "v-db");
    assert_eq!(ctx.requests.snapshot()["azure_token"], 2);
}
