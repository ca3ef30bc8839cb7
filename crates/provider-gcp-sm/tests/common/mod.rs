//! The harness: a local OIDC issuer and the cloud fakes in-process (default fixture), and a
//! resolver whose GCP provider talks to them through gcloud's endpoint overrides.

#![allow(dead_code, reason = "each test binary uses part of the harness")]

use auth_oidc::testing::{GitlabClaims, Issuer, IssuerKey, Minter, SpawnedIssuer};
use cloud_fakes::{Fixture, RunningFakes};
use provider_gcp_sm::{
    GcpSecretManagerBuilder, IAMCREDENTIALS_OVERRIDE, SECRETMANAGER_OVERRIDE, STS_OVERRIDE,
};
use secrecy::ExposeSecret as _;
use secrets_core::{Environment, JobPayload, JobVariable};
use secrets_resolver::{ResolveOptions, Resolver};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

pub const PROJECT: &str = "123456789012";
pub const POOL: &str = "gitlab-pool";
pub const PROVIDER: &str = "gitlab-provider";
/// The fixture's service account; project 42's federated principal may impersonate it.
pub const SA_EMAIL: &str = "secret-reader@ci-secrets-test.iam.gserviceaccount.com";

/// One key per test binary: generation is slow in unoptimised builds.
pub fn key() -> &'static IssuerKey {
    static KEY: OnceLock<IssuerKey> = OnceLock::new();
    KEY.get_or_init(|| IssuerKey::generate().expect("key generation"))
}

pub fn audience(provider: &str) -> String {
    format!(
        "//iam.googleapis.com/projects/{PROJECT}/locations/global/workloadIdentityPools/{POOL}/providers/{provider}"
    )
}

pub struct Harness {
    pub issuer: SpawnedIssuer,
    pub fakes: RunningFakes,
    pub minter: Minter,
    pub http: reqwest::Client,
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
        Self {
            issuer,
            fakes,
            minter,
            http,
        }
    }

    pub fn mint(&self, claims: &GitlabClaims) -> String {
        self.minter.mint(claims).unwrap().expose_secret().to_owned()
    }

    /// A token for the default provider (its default audience, with `https:`).
    pub fn token(&self) -> String {
        self.mint(&GitlabClaims::new().with_audience(format!("https:{}", audience(PROVIDER))))
    }

    /// gcloud's overrides pointing at the fake.
    pub fn env(&self) -> Environment {
        let url = self.fakes.gcp_url();
        [
            (STS_OVERRIDE, url.clone()),
            (SECRETMANAGER_OVERRIDE, url.clone()),
            (IAMCREDENTIALS_OVERRIDE, url),
        ]
        .into_iter()
        .collect()
    }

    pub fn resolver(&self) -> Resolver {
        let provider = GcpSecretManagerBuilder::new()
            .with_env(self.env())
            .build()
            .unwrap();
        Resolver::builder()
            .with_provider(Arc::new(provider))
            .with_options(ResolveOptions::default())
            .build()
    }

    /// The fake's request counts.
    pub async fn counts(&self) -> Value {
        let doc: Value = self
            .http
            .get(format!("{}/_fake/requests", self.fakes.gcp_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        doc["counts"].clone()
    }

    pub async fn count(&self, kind: &str) -> u64 {
        self.counts().await[kind].as_u64().unwrap_or(0)
    }

    pub async fn reset(&self) {
        self.http
            .post(format!("{}/_fake/reset", self.fakes.gcp_url()))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }

    pub async fn fault(&self, kind: &str, status: u16, count: u32) {
        self.http
            .post(format!("{}/_fake/faults", self.fakes.gcp_url()))
            .json(&json!({"kind": kind, "status": status, "count": count}))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }
}

/// A `gcp_secret_manager` secret as GitLab sends it, with `$GCP_ID_TOKEN`.
pub fn gcp(name: &str, version: &str) -> Value {
    gcp_with(name, version, PROVIDER)
}

pub fn gcp_with(name: &str, version: &str, provider: &str) -> Value {
    json!({"gcp_secret_manager": {"name": name, "version": version, "server": {
        "project_number": PROJECT,
        "workload_identity_federation_pool_id": POOL,
        "workload_identity_federation_provider_id": provider,
        "jwt": "$GCP_ID_TOKEN"}}, "file": false, "token": "$GCP_ID_TOKEN"})
}

/// [`gcp`] impersonating `account` (the extension field the normaliser fills from
/// `CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT`).
pub fn gcp_as(name: &str, version: &str, account: &str) -> Value {
    let mut secret = gcp(name, version);
    secret["gcp_secret_manager"]["server"]["impersonate_service_account"] = account.into();
    secret
}

pub fn payload(secrets: Value, token: &str) -> JobPayload {
    let variables = vec![JobVariable {
        key: "GCP_ID_TOKEN".into(),
        value: token.into(),
        masked: true,
        ..JobVariable::default()
    }];
    serde_json::from_value(json!({"secrets": secrets, "variables": variables})).unwrap()
}

/// The value of the job variable `key` in `resolution`.
pub fn value_of(resolution: &secrets_resolver::Resolution, key: &str) -> String {
    resolution
        .variables
        .iter()
        .find(|v| v.key == key)
        .map(|v| v.value.expose().to_owned())
        .unwrap_or_else(|| panic!("no {key}"))
}
