//! The harness: a local OIDC issuer and the fakes, in-process, with the default fixture.

#![allow(dead_code, reason = "each test binary uses part of the harness")]

use auth_oidc::testing::{GitlabClaims, Issuer, IssuerKey, Minter, SpawnedIssuer};
use cloud_fakes::{Fixture, RunningFakes};
use secrecy::ExposeSecret as _;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::OnceLock;

pub const PROJECT: &str = "123456789012";
pub const PROVIDER_AUDIENCE: &str = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/gitlab-pool/providers/gitlab-provider";
pub const TENANT: &str = "11111111-2222-4333-8444-555555555555";
pub const OTHER_TENANT: &str = "99999999-8888-4777-8666-555555555555";
pub const CLIENT: &str = "aaaaaaaa-0000-4000-8000-000000000001";
pub const CLIENT_NO_ROLE: &str = "aaaaaaaa-0000-4000-8000-000000000002";
pub const OTHER_TENANT_CLIENT: &str = "aaaaaaaa-0000-4000-8000-000000000009";
pub const VAULT_HOST: &str = "ci-secrets-test.vault.azure.net";
pub const OTHER_VAULT_HOST: &str = "other-tenant-vault.vault.azure.net";
pub const SA_EMAIL: &str = "secret-reader@ci-secrets-test.iam.gserviceaccount.com";

/// One key per test binary: generation is slow in unoptimised builds.
pub fn key() -> &'static IssuerKey {
    static KEY: OnceLock<IssuerKey> = OnceLock::new();
    KEY.get_or_init(|| IssuerKey::generate().expect("key generation"))
}

pub struct Harness {
    pub issuer: SpawnedIssuer,
    pub fakes: RunningFakes,
    pub minter: Minter,
    /// Plain HTTP client for the Google listener.
    pub http: reqwest::Client,
    /// TLS client trusting only the test CA, resolving the Azure names to the fake.
    pub azure: reqwest::Client,
}

pub fn azure_client(ca_pem: &str, addr: SocketAddr) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
    reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([ca])
        .resolve("login.microsoftonline.com", addr)
        .resolve(VAULT_HOST, addr)
        .resolve(OTHER_VAULT_HOST, addr)
        .resolve("unknown-vault.vault.azure.net", addr)
        .build()
        .unwrap()
}

impl Harness {
    pub async fn start() -> Self {
        let issuer = Issuer::spawn(key()).await.unwrap();
        let fixture = Fixture::parse(
            "default.yaml",
            cloud_fakes::DEFAULT_FIXTURE,
            false,
            issuer.url(),
        )
        .unwrap();
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let fakes = RunningFakes::start(fixture, loopback, loopback)
            .await
            .unwrap();
        let minter = Minter::new(issuer.url(), key());
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let azure = azure_client(fakes.ca_pem(), fakes.azure_addr());
        Self {
            issuer,
            fakes,
            minter,
            http,
            azure,
        }
    }

    pub fn mint(&self, claims: &GitlabClaims) -> String {
        self.minter.mint(claims).unwrap().expose_secret().to_owned()
    }

    /// An ID token for the default GCP provider (its default audience, with `https:`).
    pub fn gcp_token(&self) -> String {
        self.mint(&GitlabClaims::new().with_audience(format!("https:{PROVIDER_AUDIENCE}")))
    }

    /// An ID token with Entra's usual audience.
    pub fn azure_token(&self) -> String {
        self.mint(&GitlabClaims::new().with_audience("api://AzureADTokenExchange"))
    }

    pub fn gcp(&self, path: &str) -> String {
        format!("{}{path}", self.fakes.gcp_url())
    }

    /// The runner's STS request: JSON, camelCase.
    pub async fn sts_json(&self, audience: &str, subject_token: &str) -> (u16, Value) {
        let body = serde_json::json!({
            "audience": audience,
            "grantType": "urn:ietf:params:oauth:grant-type:token-exchange",
            "requestedTokenType": "urn:ietf:params:oauth:token-type:access_token",
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "subjectToken": subject_token,
            "subjectTokenType": "urn:ietf:params:oauth:token-type:id_token",
        });
        let response = self
            .http
            .post(self.gcp("/v1/token?alt=json&prettyPrint=false"))
            .json(&body)
            .send()
            .await
            .unwrap();
        status_json(response).await
    }

    /// An access token for the default provider.
    pub async fn gcp_access_token(&self) -> String {
        let (status, body) = self.sts_json(PROVIDER_AUDIENCE, &self.gcp_token()).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn access(&self, name: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.http.get(self.gcp(&format!("/v1/{name}:access")));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        status_json(request.send().await.unwrap()).await
    }

    /// The client-credentials request azure-identity sends.
    pub async fn entra_token(&self, tenant: &str, client: &str, assertion: &str) -> (u16, Value) {
        let form = [
            ("client_id", client),
            ("grant_type", "client_credentials"),
            ("client_assertion", assertion),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("scope", "https://vault.azure.net/.default"),
        ];
        let body: String = form_encode(&form);
        let response = self
            .azure
            .post(format!(
                "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"
            ))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        status_json(response).await
    }

    pub async fn kv_token(&self) -> String {
        let (status, body) = self.entra_token(TENANT, CLIENT, &self.azure_token()).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn kv_get(&self, host: &str, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self
            .azure
            .get(format!("https://{host}{path}?api-version=7.5"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    pub async fn counts(&self) -> Value {
        let body: Value = self
            .http
            .get(self.gcp("/_fake/requests"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["counts"].clone()
    }
}

impl Harness {
    /// Makes the next `count` requests of `kind` fail with `status`.
    pub async fn fault(&self, kind: &str, status: u16, count: u32) -> Value {
        let response = self
            .http
            .post(self.gcp("/_fake/faults"))
            .json(&serde_json::json!({"kind": kind, "status": status, "count": count}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&encode(k));
        out.push('=');
        out.push_str(&encode(v));
    }
    out
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn status_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}
