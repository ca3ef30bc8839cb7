//! The harness: a local OIDC issuer and the cloud fakes in-process (TLS under the real host
//! names, signed by a fresh test CA), and a provider that reaches them through the
//! test-only name overrides.

#![allow(dead_code, reason = "each test binary uses part of the harness")]

use auth_oidc::testing::{GitlabClaims, Issuer, IssuerKey, Minter, SpawnedIssuer};
use cloud_fakes::{Fixture, RunningFakes};
use provider_azure_kv::{AzureKeyVaultBuilder, AzureKeyVaultProvider};
use secrecy::ExposeSecret as _;
use secrets_core::payload::{AzureSecret, AzureServer};
use secrets_core::{ResolveContext, RetryPolicy, Secret, SecretRequest};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

pub const TENANT: &str = "11111111-2222-4333-8444-555555555555";
pub const CLIENT: &str = "aaaaaaaa-0000-4000-8000-000000000001";
pub const CLIENT_NO_ROLE: &str = "aaaaaaaa-0000-4000-8000-000000000002";
pub const VAULT: &str = "https://ci-secrets-test.vault.azure.net/";
pub const VAULT_HOST: &str = "ci-secrets-test.vault.azure.net";

/// One key per test binary: generation is slow in unoptimised builds.
pub fn key() -> &'static IssuerKey {
    static KEY: OnceLock<IssuerKey> = OnceLock::new();
    KEY.get_or_init(|| IssuerKey::generate().expect("key generation"))
}

pub struct Harness {
    pub issuer: SpawnedIssuer,
    pub fakes: RunningFakes,
    pub minter: Minter,
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
        Self {
            issuer,
            fakes,
            minter,
        }
    }

    pub fn mint(&self, claims: &GitlabClaims) -> String {
        self.minter.mint(claims).unwrap().expose_secret().to_owned()
    }

    /// An ID token the default app admits.
    pub fn token(&self) -> String {
        self.mint(&GitlabClaims::new().with_audience("api://AzureADTokenExchange"))
    }

    /// The provider, trusting only the test CA and resolving the Azure names to the fake.
    pub fn provider(&self) -> AzureKeyVaultProvider {
        let addr = self.fakes.azure_addr();
        AzureKeyVaultBuilder::new()
            .with_ca_bundle(self.fakes.ca_pem().as_bytes())
            .with_resolve_for_tests("login.microsoftonline.com", addr)
            .with_resolve_for_tests(VAULT_HOST, addr)
            .build()
            .unwrap()
    }
}

pub fn ctx() -> ResolveContext {
    ResolveContext {
        retry: RetryPolicy {
            max_attempts: 3,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        },
        ..ResolveContext::default()
    }
}

pub fn secret(client: &str, jwt: &str, name: &str, version: Option<&str>) -> Secret {
    Secret {
        azure_key_vault: Some(Box::new(AzureSecret {
            name: name.into(),
            version: version.map(Into::into),
            server: AzureServer {
                url: VAULT.into(),
                client_id: client.into(),
                tenant_id: TENANT.into(),
                jwt: jwt.into(),
            },
        })),
        ..Secret::default()
    }
}

pub fn requests(secrets: Vec<(&str, Secret)>) -> Vec<SecretRequest> {
    secrets
        .into_iter()
        .map(|(v, secret)| SecretRequest {
            variable: v.into(),
            secret,
        })
        .collect()
}
