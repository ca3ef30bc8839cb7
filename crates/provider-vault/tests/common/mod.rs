//! Helpers shared by the HTTP-level tests.
#![allow(dead_code, unreachable_pub)]

use base64::Engine as _;
use provider_vault::{VaultProvider, VaultProviderBuilder};
use secrets_core::{ResolveContext, Resolved, RetryPolicy, Secret, SecretRequest};
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

pub fn now() -> i64 {
    #[allow(clippy::disallowed_methods, reason = "test helper")]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// An unsigned GitLab-shaped ID token (the provider reads claims without verifying).
pub fn id_token_with(exp: i64, marker: &str) -> String {
    let claims = json!({
        "iss": "https://gitlab.example.com",
        "aud": "https://vault.example.com",
        "sub": "project_path:mygroup/myproject:ref_type:branch:ref:main",
        "project_path": "mygroup/myproject",
        "ref": "main",
        "ref_type": "branch",
        "exp": exp,
        "iat": now() - 10,
        "marker": marker,
    });
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(r#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#),
        b64(&claims.to_string())
    )
}

pub fn id_token() -> String {
    id_token_with(now() + 300, "default")
}

/// One `vault:` secret, built as GitLab sends it.
#[derive(Clone)]
pub struct Spec {
    pub url: String,
    pub namespace: Option<String>,
    pub auth_path: String,
    pub role: Option<String>,
    pub jwt: Option<String>,
    pub engine: String,
    pub mount: String,
    pub path: String,
    pub field: String,
}

impl Spec {
    pub fn new(server: &MockServer, path: &str, field: &str) -> Self {
        Self::at(&server.uri(), path, field)
    }
    pub fn at(url: &str, path: &str, field: &str) -> Self {
        Self {
            url: url.to_owned(),
            namespace: None,
            auth_path: "jwt".into(),
            role: Some("ci".into()),
            jwt: Some(id_token()),
            engine: "kv-v2".into(),
            mount: "secret".into(),
            path: path.into(),
            field: field.into(),
        }
    }
    pub fn engine(mut self, name: &str, mount: &str) -> Self {
        self.engine = name.into();
        self.mount = mount.into();
        self
    }
    pub fn role(mut self, role: Option<&str>) -> Self {
        self.role = role.map(Into::into);
        self
    }
    pub fn jwt(mut self, jwt: &str) -> Self {
        self.jwt = Some(jwt.into());
        self
    }
    pub fn request(&self, variable: &str) -> SecretRequest {
        let mut data = serde_json::Map::new();
        if let Some(jwt) = &self.jwt {
            data.insert("jwt".into(), json!(jwt));
        }
        if let Some(role) = &self.role {
            data.insert("role".into(), json!(role));
        }
        let secret: Secret = serde_json::from_value(json!({
            "vault": {
                "server": {
                    "url": self.url,
                    "namespace": self.namespace,
                    "auth": {"name": "jwt", "path": self.auth_path, "data": data},
                },
                "engine": {"name": self.engine, "path": self.mount},
                "path": self.path,
                "field": self.field,
            },
            "file": false,
        }))
        .unwrap();
        SecretRequest {
            variable: variable.into(),
            secret,
        }
    }
}

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

pub fn provider() -> VaultProvider {
    VaultProviderBuilder::new().build().unwrap()
}

pub fn no_revoke() -> VaultProvider {
    VaultProviderBuilder::new()
        .with_revoke_token(false)
        .build()
        .unwrap()
}

pub const VAULT_TOKEN: &str = "s.vault-token-123";

pub fn login_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "auth": {"client_token": VAULT_TOKEN, "policies": ["ci-read"], "lease_duration": 60}
    }))
}

pub fn kv2(data: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "data": {"data": data, "metadata": {"version": 1, "deletion_time": "", "destroyed": false}}
    }))
}

pub fn kv1(data: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"data": data, "lease_duration": 0}))
}

pub async fn mount_login(server: &MockServer, times: u64) {
    Mock::given(method("PUT"))
        .and(path("/v1/auth/jwt/login"))
        .respond_with(login_ok())
        .expect(times)
        .mount(server)
        .await;
}

pub async fn mount_revoke(server: &MockServer, times: u64) {
    Mock::given(method("POST"))
        .and(path("/v1/auth/token/revoke-self"))
        .and(header("x-vault-token", VAULT_TOKEN))
        .respond_with(ResponseTemplate::new(204))
        .expect(times)
        .mount(server)
        .await;
}

pub fn value(result: &Result<Resolved, secrets_core::Error>) -> &str {
    match result {
        Ok(r) => r.value.expose(),
        Err(e) => panic!("expected a value, got {e}"),
    }
}

pub fn error(result: &Result<Resolved, secrets_core::Error>) -> &secrets_core::Error {
    match result {
        Ok(_) => panic!("expected an error, got a value"),
        Err(e) => e,
    }
}

pub fn no_namespace_header(req: &Request) -> bool {
    !req.headers.contains_key("x-vault-namespace")
}

pub fn errors(messages: &[&str]) -> Value {
    json!({ "errors": messages })
}
