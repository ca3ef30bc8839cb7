//! The workloads of the newer providers: W6 GitLab Secrets Manager (the xtask's OpenBao in
//! GitLab's layout), W7 GCP Secret Manager and W8 Azure Key Vault (the cloud fakes), each
//! through its own `loopback-proxy`, ours (the library) against the runner's algorithm
//! reproduced.
//!
//! The cloud fakes run in this process with a bench fixture (the default fixture plus 20
//! secrets per cloud), on their own runtime, trusting the services' OIDC issuer. Azure's
//! fake serves TLS under the real host names: the library reaches it through the provider's
//! test-only name override (`with_resolve_for_tests`) pointed at the proxy, and the test CA;
//! the proxy forwards the TLS bytes untouched, so it counts connections and the fake counts
//! the requests.
//!
//! Over TLS as deployed (`providers_tls.rs`) the same workloads and contenders run through
//! TLS-terminating fronts instead.

use super::DELAYS_MS;
use super::azure_runner;
use super::contender::{counts_of, resolve_alone, shuffle};
use super::docs_section::{self, Anchor};
use super::providers_tls;
use super::transport::{Tls, Transport};
use crate::seed_gitlab_sm::GROUP_NAMESPACE;
use crate::seed_vault::Vault;
use anyhow::{Context as _, Result, anyhow, bail};
use auth_oidc::testing::{E2eEnv, GitlabClaims, Minter};
use cloud_fakes::env::defaults;
use cloud_fakes::fixture::{AzureSecret, AzureVersion, Checksum, GcpSecret, GcpVersion};
use cloud_fakes::{Fixture, RunningFakes};
use loopback_proxy::{ConnectionRecord, Proxy, ProxyConfig, ProxyStats};
use provider_azure_kv::AzureKeyVaultBuilder;
use provider_gcp_sm::GcpSecretManagerBuilder;
use provider_gitlab_sm::GitlabSecretsManagerBuilder;
use secrecy::ExposeSecret as _;
use secrets_core::{JobPayload, ProviderKind, ResolveContext, SecretProvider, Variables};
use secrets_resolver::{ResolveOptions, Resolver};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The section of docs/benchmarks.md these workloads write.
/// The heading the providers' sections go before.
pub const MICRO: &str = "\n## Micro-benchmarks";

pub const BEGIN: &str = "<!-- providers: begin -->";
/// Its end.
pub const END: &str = "<!-- providers: end -->";
/// Timed runs per cell.
const RUNS: usize = 5;
/// Secrets per workload.
pub(super) const SECRETS: usize = 20;
/// Distinct GitLab Secrets Manager paths (two variables per secret).
pub(super) const GSM_PATHS: usize = 10;
/// The role GitLab's OpenBao layout gives every pipeline.
const GSM_ROLE: &str = "all_pipelines";
/// The Entra app's federated audience.
const AZURE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Which provider a workload reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    GitlabSm,
    Gcp,
    Azure,
}

/// Who resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// `Resolver::builder().with_default_providers()`, the provider re-registered at the proxy.
    Library,
    /// The runner's algorithm: sequential, random order, a new client per secret.
    Reproduction,
}

impl Who {
    pub(super) const ALL: [Who; 2] = [Who::Library, Who::Reproduction];

    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Library => "ours: library",
            Self::Reproduction => "runner algorithm (reproduction)",
        }
    }
}

/// One workload: 20 secrets of one provider.
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: &'static str,
    pub description: &'static str,
    pub cloud: Cloud,
}

impl Workload {
    /// W6, W7, W8.
    pub fn all() -> [Workload; 3] {
        [
            Workload {
                name: "W6",
                description: "GitLab Secrets Manager: 20 secrets over 10 paths (OpenBao inline auth)",
                cloud: Cloud::GitlabSm,
            },
            Workload {
                name: "W7",
                description: "GCP Secret Manager: 20 secrets, one workload identity pool provider",
                cloud: Cloud::Gcp,
            },
            Workload {
                name: "W8",
                description: "Azure Key Vault: 20 secrets, one app (federated client assertion)",
                cloud: Cloud::Azure,
            },
        ]
    }

    /// The variables and their expected values.
    fn expected_values(&self) -> BTreeMap<String, String> {
        (0..SECRETS)
            .map(|i| (variable(i), value(self.cloud, secret_index(self.cloud, i))))
            .collect()
    }

    /// What a contender should cost, by request kind.
    pub fn expected(&self, who: Who) -> BTreeMap<String, u64> {
        let n = SECRETS as u64;
        let pairs: Vec<(&str, u64)> = match (self.cloud, who) {
            (Cloud::GitlabSm, Who::Library) => vec![("gitlab_sm_read", GSM_PATHS as u64)],
            (Cloud::GitlabSm, Who::Reproduction) => vec![("gitlab_sm_read", n)],
            (Cloud::Gcp, Who::Library) => vec![("gcp_sts_exchange", 1), ("gcp_access", n)],
            (Cloud::Gcp, Who::Reproduction) => vec![("gcp_sts_exchange", n), ("gcp_access", n)],
            (Cloud::Azure, Who::Library) => vec![("azure_token", 1), ("azure_get", n)],
            (Cloud::Azure, Who::Reproduction) => vec![
                ("azure_challenge", n),
                ("azure_discovery", n),
                ("azure_token", n),
                ("azure_get", n),
            ],
        };
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }
}

fn variable(i: usize) -> String {
    format!("P_{i:04}")
}

/// The secret variable `i` reads: GitLab SM has two variables per secret.
fn secret_index(cloud: Cloud, i: usize) -> usize {
    match cloud {
        Cloud::GitlabSm => i / 2,
        Cloud::Gcp | Cloud::Azure => i,
    }
}

fn secret_name(cloud: Cloud, index: usize) -> String {
    match cloud {
        Cloud::GitlabSm => format!("BENCH_P{index:02}"),
        Cloud::Gcp | Cloud::Azure => format!("bench-s{index:02}"),
    }
}

fn value(cloud: Cloud, index: usize) -> String {
    let tag = match cloud {
        Cloud::GitlabSm => "gsm",
        Cloud::Gcp => "gcp",
        Cloud::Azure => "azure",
    };
    format!("bench-{tag}-s{index:02}")
}

/// The default fixture plus the bench's 20 GCP secrets and 20 Azure secrets.
pub fn bench_fixture(issuer: &str) -> Result<Fixture> {
    let mut fixture = Fixture::parse("default.yaml", cloud_fakes::DEFAULT_FIXTURE, false, issuer)?;
    for i in 0..SECRETS {
        fixture.gcp.secrets.push(GcpSecret {
            project: defaults::GCP_PROJECT_NUMBER.to_owned(),
            location: None,
            secret: secret_name(Cloud::Gcp, i),
            versions: vec![GcpVersion {
                data: Some(value(Cloud::Gcp, i)),
                data_base64: None,
                state: Default::default(),
            }],
            checksum: Checksum::Ok,
            accessors: None,
        });
    }
    let vault = fixture
        .azure
        .vaults
        .iter_mut()
        .find(|v| v.name == defaults::AZURE_VAULT)
        .context("the default fixture has no Azure vault")?;
    for i in 0..SECRETS {
        vault.secrets.push(AzureSecret {
            name: secret_name(Cloud::Azure, i),
            versions: vec![AzureVersion {
                id: format!("{:032x}", 0xbe00 + i),
                value: value(Cloud::Azure, i),
                enabled: true,
                content_type: None,
                tags: BTreeMap::new(),
                created: 1_767_225_600,
            }],
            readers: None,
        });
    }
    Ok(fixture)
}

/// One timed run.
#[derive(Debug, Clone)]
pub struct Sample {
    pub wall: Duration,
    /// What the workload's proxy saw.
    pub proxy: ProxyStats,
    /// The requests the server saw: the proxy's HTTP count, or (Azure, TLS end to end) the
    /// fake's.
    pub server_requests: u64,
    /// The fake's counts by kind (GCP, Azure).
    pub server_kinds: Option<BTreeMap<String, u64>>,
    /// `report.requests`, or the reproduction's own counts.
    pub reported: BTreeMap<String, u64>,
    /// The connections the workload's proxies forwarded (over TLS: with their protocols).
    pub connections: Vec<ConnectionRecord>,
}

/// One cell: a workload, a contender, a delay.
#[derive(Debug, Clone)]
pub struct Cell {
    pub transport: Transport,
    pub workload: Workload,
    pub who: Who,
    pub delay_ms: u64,
    pub samples: Vec<Sample>,
    pub mismatches: Vec<String>,
}

/// Everything the section needs.
#[derive(Debug, Default)]
pub struct ProviderResults {
    pub cells: Vec<Cell>,
    pub total: Duration,
    /// Whether this is a full run (else `--quick`).
    pub runs: usize,
}

impl ProviderResults {
    /// Every request-count problem, one line each.
    pub fn mismatches(&self) -> Vec<String> {
        self.cells
            .iter()
            .flat_map(|c| {
                c.mismatches.iter().map(move |m| {
                    format!(
                        "{} {} over {} d={}ms: {m}",
                        c.workload.name,
                        c.who.label(),
                        c.transport.label(),
                        c.delay_ms
                    )
                })
            })
            .collect()
    }
}

/// The fakes, the proxies and a runtime for the clients.
pub struct Bench {
    runtime: tokio::runtime::Runtime,
    /// Kept alive: the fakes run on it.
    _fakes_runtime: tokio::runtime::Runtime,
    fakes: RunningFakes,
    transport: Transport,
    gsm_proxy: Proxy,
    /// Google STS (and, over plain HTTP, Secret Manager too).
    gcp_proxy: Proxy,
    /// Over TLS, Secret Manager's own front: another host, another connection, as deployed.
    gcp_sm_proxy: Option<Proxy>,
    azure_proxy: Proxy,
    /// The CA the Azure clients trust (and, over TLS, every client).
    ca_pem: String,
    minter: Minter,
    vault_addr: String,
}

impl std::fmt::Debug for Bench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bench")
            .field("gsm_proxy", &self.gsm_proxy)
            .field("gcp_proxy", &self.gcp_proxy)
            .field("gcp_sm_proxy", &self.gcp_sm_proxy)
            .field("azure_proxy", &self.azure_proxy)
            .finish_non_exhaustive()
    }
}

fn socket_addr(url: &str) -> Result<SocketAddr> {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .with_context(|| format!("{url} is not http://<ip>:<port>"))
}

/// The Azure vault's URL and host.
fn vault_url() -> String {
    format!(
        "https://{}{}/",
        defaults::AZURE_VAULT,
        cloud_fakes::azure::VAULT_SUFFIX
    )
}

pub(super) fn vault_host() -> String {
    format!(
        "{}{}",
        defaults::AZURE_VAULT,
        cloud_fakes::azure::VAULT_SUFFIX
    )
}

/// The audience Google STS expects for the default pool provider.
fn gcp_audience() -> String {
    format!(
        "https://iam.googleapis.com/projects/{}/locations/global/workloadIdentityPools/{}/providers/{}",
        defaults::GCP_PROJECT_NUMBER,
        defaults::GCP_POOL,
        defaults::GCP_PROVIDER
    )
}

impl Bench {
    /// Seeds OpenBao's GitLab layout with the bench's paths, starts the fakes and the proxies:
    /// plain ones, or with `tls` the TLS fronts of `providers_tls.rs`.
    pub fn start(env: &E2eEnv, tls: Option<&Tls>) -> Result<Self> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()?;
        let ns = Vault {
            http: &http,
            addr: env.vault_addr(),
            namespace: Some(GROUP_NAMESPACE),
        };
        for p in 0..GSM_PATHS {
            ns.kv2(
                "secrets/kv",
                &format!("explicit/{}", secret_name(Cloud::GitlabSm, p)),
                json!({ "value": value(Cloud::GitlabSm, p) }),
            )?;
        }
        let fakes_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let loopback: SocketAddr = "127.0.0.1:0".parse()?;
        let fixture = bench_fixture(env.oidc_issuer())?;
        let fakes = fakes_runtime
            .block_on(RunningFakes::start(fixture.clone(), loopback, loopback))
            .context("starting the cloud fakes")?;
        let vault = socket_addr(env.vault_addr())?;
        let (transport, gsm_proxy, gcp_proxy, gcp_sm_proxy, azure_proxy, ca_pem) = match tls {
            None => (
                Transport::Plain,
                Proxy::start(vault, ProxyConfig::default())?,
                Proxy::start(fakes.gcp_addr(), ProxyConfig::default())?,
                None,
                Proxy::start(fakes.azure_addr(), ProxyConfig::default())?,
                fakes.ca_pem().to_owned(),
            ),
            Some(tls) => {
                let f = providers_tls::Fronts::start(tls, &fakes_runtime, &fakes, &fixture, vault)?;
                (
                    Transport::Tls,
                    f.gsm,
                    f.gcp_sts,
                    Some(f.gcp_sm),
                    f.azure,
                    tls.ca_pem().to_owned(),
                )
            }
        };
        Ok(Self {
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?,
            transport,
            gsm_proxy,
            gcp_proxy,
            gcp_sm_proxy,
            azure_proxy,
            ca_pem,
            _fakes_runtime: fakes_runtime,
            fakes,
            minter: env.minter(),
            vault_addr: env.vault_addr().to_owned(),
        })
    }

    /// The proxies `cloud`'s clients go through.
    fn proxies(&self, cloud: Cloud) -> Vec<&Proxy> {
        match cloud {
            Cloud::GitlabSm => vec![&self.gsm_proxy],
            Cloud::Gcp => std::iter::once(&self.gcp_proxy)
                .chain(&self.gcp_sm_proxy)
                .collect(),
            Cloud::Azure => vec![&self.azure_proxy],
        }
    }

    /// Secret Manager's proxy.
    fn gcp_sm(&self) -> &Proxy {
        self.gcp_sm_proxy.as_ref().unwrap_or(&self.gcp_proxy)
    }

    fn set_delay(&self, delay: Duration) {
        for cloud in [Cloud::GitlabSm, Cloud::Gcp, Cloud::Azure] {
            for p in self.proxies(cloud) {
                p.set_delay(delay);
            }
        }
    }

    fn mint(&self, claims: &GitlabClaims) -> Result<String> {
        Ok(self.minter.mint(claims)?.expose_secret().to_owned())
    }

    /// The job payload GitLab would send for `w`, servers at the proxies, with fresh tokens.
    fn payload(&self, w: &Workload) -> Result<JobPayload> {
        let mut secrets = serde_json::Map::new();
        let mut variables = Vec::new();
        let variable_json = |key: &str, value: &str| json!({ "key": key, "value": value, "public": false, "masked": true });
        match w.cloud {
            Cloud::GitlabSm => {
                // GitLab mints this JWT itself (audience the OpenBao URL) and inlines it.
                let jwt = self.mint(
                    &GitlabClaims::new()
                        .with_project("mygroup/myproject", 34)
                        .with_namespace("mygroup", 12)
                        .with_audience(&self.vault_addr),
                )?;
                for i in 0..SECRETS {
                    let name = secret_name(w.cloud, secret_index(w.cloud, i));
                    secrets.insert(
                        variable(i),
                        json!({
                            "gitlab_secrets_manager": {
                                "server": {
                                    "url": self.gsm_proxy.url(),
                                    "inline_auth": {
                                        "path": format!("{GROUP_NAMESPACE}/auth/pipeline_jwt/login"),
                                        "jwt": jwt,
                                        "role": GSM_ROLE,
                                    }
                                },
                                "engine": { "name": "kv-v2", "path": format!("{GROUP_NAMESPACE}/secrets/kv") },
                                "path": format!("explicit/{name}"),
                                "field": "value",
                            },
                            "file": false
                        }),
                    );
                }
            }
            Cloud::Gcp => {
                let jwt = self.mint(&GitlabClaims::new().with_audience(gcp_audience()))?;
                variables.push(variable_json("GCP_ID_TOKEN", &jwt));
                for i in 0..SECRETS {
                    secrets.insert(
                        variable(i),
                        json!({
                            "gcp_secret_manager": {
                                "name": secret_name(w.cloud, i),
                                "version": "latest",
                                "server": {
                                    "project_number": defaults::GCP_PROJECT_NUMBER,
                                    "workload_identity_federation_pool_id": defaults::GCP_POOL,
                                    "workload_identity_federation_provider_id": defaults::GCP_PROVIDER,
                                    "jwt": "$GCP_ID_TOKEN"
                                }
                            },
                            "token": "$GCP_ID_TOKEN",
                            "file": false
                        }),
                    );
                }
            }
            Cloud::Azure => {
                let jwt = self.mint(&GitlabClaims::new().with_audience(AZURE_AUDIENCE))?;
                variables.push(variable_json("AZURE_JWT", &jwt));
                for i in 0..SECRETS {
                    secrets.insert(
                        variable(i),
                        json!({
                            "azure_key_vault": {
                                "name": secret_name(w.cloud, i),
                                "version": null,
                                "server": {
                                    "url": vault_url(),
                                    "client_id": defaults::AZURE_CLIENT_ID,
                                    "tenant_id": defaults::AZURE_TENANT_ID,
                                    "jwt": "$AZURE_JWT"
                                }
                            },
                            "token": "$AZURE_JWT",
                            "file": false
                        }),
                    );
                }
            }
        }
        let text = json!({ "secrets": secrets, "variables": variables }).to_string();
        Ok(JobPayload::from_json(&text)?)
    }

    /// The provider for `cloud`, its servers at the proxies.
    fn provider(&self, cloud: Cloud) -> Result<Arc<dyn SecretProvider>> {
        Ok(match cloud {
            Cloud::GitlabSm => {
                let builder = GitlabSecretsManagerBuilder::new();
                Arc::new(match self.transport {
                    Transport::Plain => builder.build()?,
                    Transport::Tls => builder.with_ca_bundle(self.ca_pem.as_bytes()).build()?,
                })
            }
            // Over TLS the Google client trusts the bench's CA through `SSL_CERT_FILE` (the
            // system trust store: the bench re-runs itself with it set).
            Cloud::Gcp => Arc::new(
                GcpSecretManagerBuilder::new()
                    .with_sts_endpoint(self.gcp_proxy.url())
                    .with_secretmanager_endpoint(self.gcp_sm().url())
                    .build()?,
            ),
            Cloud::Azure => {
                let proxy = self.azure_proxy.addr();
                Arc::new(
                    AzureKeyVaultBuilder::new()
                        .with_ca_bundle(self.ca_pem.as_bytes())
                        .with_resolve_for_tests(cloud_fakes::azure::LOGIN_HOST, proxy)
                        .with_resolve_for_tests(vault_host(), proxy)
                        .build()?,
                )
            }
        })
    }

    fn reset(&self, cloud: Cloud) {
        for p in self.proxies(cloud) {
            p.reset_stats();
        }
        self.fakes.counters().reset();
    }

    fn sample(
        &self,
        cloud: Cloud,
        wall: Duration,
        reported: BTreeMap<String, u64>,
    ) -> Result<Sample> {
        let mut proxy = ProxyStats::default();
        let mut connections = Vec::new();
        for p in self.proxies(cloud) {
            let stats = p.stats();
            proxy.connections += stats.connections;
            proxy.tls_handshakes += stats.tls_handshakes;
            proxy.requests += stats.requests;
            proxy.streams += stats.streams;
            proxy.responses += stats.responses;
            proxy.max_in_flight = proxy.max_in_flight.max(stats.max_in_flight);
            connections.extend(p.connections());
        }
        let kinds: BTreeMap<String, u64> = cloud_fakes::Kind::ALL
            .iter()
            .map(|k| (k.name().to_owned(), self.fakes.counters().get(*k)))
            .filter(|(_, v)| *v > 0)
            .collect();
        // Azure over plain HTTP: the proxy forwards the fake's own TLS, so the fake counts.
        let (server_requests, server_kinds) = match (cloud, self.transport) {
            (Cloud::GitlabSm, _) => (proxy.requests, None),
            (Cloud::Gcp, _) | (Cloud::Azure, Transport::Tls) => (proxy.requests, Some(kinds)),
            (Cloud::Azure, Transport::Plain) => (kinds.values().sum(), Some(kinds)),
        };
        Ok(Sample {
            wall,
            proxy,
            server_requests,
            server_kinds,
            reported: reported.into_iter().filter(|(_, v)| *v > 0).collect(),
            connections,
        })
    }

    /// Runs `who` once on `w`.
    pub fn run(&self, who: Who, w: &Workload) -> Result<Sample> {
        let payload = self.payload(w)?;
        match who {
            Who::Library => self.library(w, &payload),
            Who::Reproduction if w.cloud == Cloud::Azure => self.azure_reproduction(w, &payload),
            Who::Reproduction => self.reproduction(w, &payload),
        }
    }

    fn library(&self, w: &Workload, payload: &JobPayload) -> Result<Sample> {
        let provider = self.provider(w.cloud)?;
        self.reset(w.cloud);
        let start = Instant::now();
        let result = self.runtime.block_on(async {
            let resolver = Resolver::builder()
                .with_default_providers()?
                .with_provider(provider)
                .with_options(ResolveOptions::from_job_variables(&payload.variables))
                .build();
            Ok::<_, secrets_core::Error>(resolver.resolve_payload(payload).await)
        });
        let wall = start.elapsed();
        let resolution = match result? {
            Ok(r) => r,
            Err(failure) => bail!("library on {}: {failure}", w.name),
        };
        let got = resolution
            .variables
            .iter()
            .map(|v| (v.key.clone(), v.value.expose().to_owned()))
            .collect();
        check_values(w, &got, Who::Library)?;
        self.sample(w.cloud, wall, resolution.report.requests.clone())
    }

    /// The runner's algorithm with this project's providers (GitLab SM, GCP): sequential, in
    /// random order, a new provider (a new HTTP client) per secret, resolving it alone.
    fn reproduction(&self, w: &Workload, payload: &JobPayload) -> Result<Sample> {
        let variables = Variables::new(payload.variables.clone());
        let lookup = |name: &str| variables.get(name).map(|v| v.into_owned());
        let mut order: Vec<usize> = (0..payload.secrets.len()).collect();
        shuffle(&mut order);
        let ctx = ResolveContext::default();
        self.reset(w.cloud);
        let start = Instant::now();
        let got = self.runtime.block_on(async {
            let mut got = BTreeMap::new();
            for index in order {
                let (key, secret) = payload
                    .secrets
                    .get_index(index)
                    .ok_or_else(|| anyhow!("no secret {index}"))?;
                let mut expanded = secret.clone();
                // The runner expands nothing of a GitLab SM secret, and the GCP fields.
                if !matches!(
                    secret.providers().as_slice(),
                    [ProviderKind::GitlabSecretsManager]
                ) {
                    expanded.expand_variables(&lookup);
                }
                let provider = self.provider(w.cloud)?;
                let value = resolve_alone(provider.as_ref(), key, expanded, &ctx).await?;
                got.insert(key.clone(), value);
            }
            Ok::<_, anyhow::Error>(got)
        })?;
        let wall = start.elapsed();
        check_values(w, &got, Who::Reproduction)?;
        let reported = counts_of(&ctx);
        self.sample(w.cloud, wall, reported)
    }

    /// The runner's Azure algorithm, by hand (our provider skips the challenge and the
    /// discovery): see [`azure_runner`].
    fn azure_reproduction(&self, w: &Workload, payload: &JobPayload) -> Result<Sample> {
        let variables = Variables::new(payload.variables.clone());
        let jwt = variables
            .get("AZURE_JWT")
            .context("no AZURE_JWT")?
            .into_owned();
        let mut order: Vec<usize> = (0..SECRETS).collect();
        shuffle(&mut order);
        let target = azure_runner::Target {
            ca_pem: &self.ca_pem,
            addr: self.azure_proxy.addr(),
            resolve: vec![cloud_fakes::azure::LOGIN_HOST.to_owned(), vault_host()],
            vault_url: vault_url(),
            tenant: defaults::AZURE_TENANT_ID,
            client: defaults::AZURE_CLIENT_ID,
        };
        self.reset(w.cloud);
        let start = Instant::now();
        let (got, counts) = self.runtime.block_on(async {
            let mut counts = azure_runner::Counts::default();
            let mut got = BTreeMap::new();
            let http = azure_runner::client(&target)?;
            for i in order {
                let v = azure_runner::get_secret(
                    &http,
                    &target,
                    &jwt,
                    &secret_name(w.cloud, i),
                    None,
                    &mut counts,
                )
                .await
                .with_context(|| format!("reproduction: {}", variable(i)))?;
                got.insert(variable(i), v);
            }
            Ok::<_, anyhow::Error>((got, counts))
        })?;
        let wall = start.elapsed();
        check_values(w, &got, Who::Reproduction)?;
        self.sample(w.cloud, wall, counts.into_map())
    }
}

fn check_values(w: &Workload, got: &BTreeMap<String, String>, who: Who) -> Result<()> {
    let expected = w.expected_values();
    for (key, value) in &expected {
        match got.get(key) {
            Some(v) if v == value => {}
            Some(_) => bail!("{} on {}: {key} has a wrong value", who.label(), w.name),
            None => bail!("{} on {}: {key} is missing", who.label(), w.name),
        }
    }
    if got.len() != expected.len() {
        bail!(
            "{} on {}: {} variables, expected {}",
            who.label(),
            w.name,
            got.len(),
            expected.len()
        );
    }
    Ok(())
}

/// Compares what was reported and what the server saw with the expected counts.
fn check_counts(cell: &mut Cell, sample: &Sample) {
    let expected = cell.workload.expected(cell.who);
    let total: u64 = expected.values().sum();
    let mut problems = Vec::new();
    if sample.reported != expected {
        problems.push(format!(
            "reported {:?}, expected {expected:?}",
            sample.reported
        ));
    }
    if let Some(kinds) = &sample.server_kinds
        && kinds != &expected
    {
        problems.push(format!("the fake counted {kinds:?}, expected {expected:?}"));
    }
    if sample.server_requests != total {
        problems.push(format!(
            "the server saw {} requests, expected {total}",
            sample.server_requests
        ));
    }
    if cell.transport == Transport::Tls {
        providers_tls::check_connections(&cell.workload, cell.who, sample, &mut problems);
    }
    for p in problems {
        if !cell.mismatches.contains(&p) {
            cell.mismatches.push(p);
        }
    }
}

/// Runs W6-W8 over plain HTTP, or over TLS with `tls`: with `quick`, once each at d = 0;
/// else [`RUNS`] times at every delay, alternating the contenders.
pub fn measure(env: &E2eEnv, quick: bool, tls: Option<&Tls>) -> Result<ProviderResults> {
    let started = Instant::now();
    let transport = if tls.is_some() {
        Transport::Tls
    } else {
        Transport::Plain
    };
    println!(
        "\n==> provider workloads (W6 GitLab SM, W7 GCP, W8 Azure) over {}",
        transport.label()
    );
    let bench = Bench::start(env, tls)?;
    let delays: &[u64] = if quick { &[0] } else { &DELAYS_MS };
    let runs = if quick { 1 } else { RUNS };
    let mut results = ProviderResults {
        runs,
        ..ProviderResults::default()
    };
    for &delay in delays {
        bench.set_delay(Duration::from_millis(delay));
        for w in Workload::all() {
            let mut cells: Vec<Cell> = Who::ALL
                .iter()
                .map(|&who| Cell {
                    transport,
                    workload: w.clone(),
                    who,
                    delay_ms: delay,
                    samples: Vec::new(),
                    mismatches: Vec::new(),
                })
                .collect();
            print!("{} at d = {delay} ms:", w.name);
            for iteration in 0..runs {
                let n = cells.len();
                for k in 0..n {
                    let cell = &mut cells[(iteration + k) % n];
                    let sample = bench.run(cell.who, &w).with_context(|| {
                        format!("{} on {} at d = {delay} ms", cell.who.label(), w.name)
                    })?;
                    check_counts(cell, &sample);
                    cell.samples.push(sample);
                }
                print!(" {}", iteration + 1);
                use std::io::Write as _;
                let _ = std::io::stdout().flush();
            }
            println!();
            for cell in &cells {
                let first = &cell.samples[0];
                println!(
                    "  {:<34} median {:>9.1} ms  requests {:>4}  connections {:>4}  handshakes {:>4}  streams {:>4}  {}{}",
                    cell.who.label(),
                    ms(median(&cell.samples)),
                    first.server_requests,
                    first.proxy.connections,
                    first.proxy.tls_handshakes,
                    first.proxy.streams,
                    counts_text(&first.reported),
                    if cell.mismatches.is_empty() {
                        String::new()
                    } else {
                        format!("  MISMATCH: {}", cell.mismatches.join("; "))
                    }
                );
            }
            results.cells.extend(cells);
        }
    }
    bench.set_delay(Duration::ZERO);
    results.total = started.elapsed();
    Ok(results)
}

/// `date -u '+%Y-%m-%d %H:%M'`.
pub(super) fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown date".to_owned())
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(super) fn sorted_walls(samples: &[Sample]) -> Vec<Duration> {
    let mut walls: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
    walls.sort();
    walls
}

pub(super) fn median(samples: &[Sample]) -> Duration {
    let walls = sorted_walls(samples);
    walls[walls.len() / 2]
}

pub(super) fn counts_text(counts: &BTreeMap<String, u64>) -> String {
    counts
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The section of docs/benchmarks.md, between [`BEGIN`] and [`END`].
pub fn markdown(r: &ProviderResults, command: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(
        s,
        "## GitLab Secrets Manager, GCP Secret Manager, Azure Key Vault\n"
    );
    let _ = writeln!(
        s,
        "Regenerated by `{command}` (part of the full `cargo xtask bench`), from the release \
         build, on the machine above; this run ({} UTC) took {:.0} s, {} timed runs per cell.\n",
        utc_now(),
        r.total.as_secs_f64(),
        r.runs
    );
    let _ = writeln!(
        s,
        "- W6 reads GitLab's OpenBao layout in the xtask's OpenBao (`xtask/src/seed_gitlab_sm.rs`): \
         10 kv-v2 secrets `explicit/BENCH_PNN` in the group namespace `group_12/group_12`, two \
         variables on each, role `all_pipelines`, the JWT GitLab would mint inlined. \
         Ours reads each distinct path once, concurrently (`max_concurrency` 8); the runner \
         makes one inline-auth kv-v2 read per secret, sequential, a new client per secret \
         (reproduced with this project's provider resolving one secret at a time).\n\
         - W7 and W8 run against the cloud fakes (`crates/cloud-fakes`), started in the bench \
         process with the default fixture plus 20 secrets each. W7: ours makes one STS \
         exchange and 20 concurrent accesses; the runner an exchange and an access per secret \
         (reproduced with this project's provider, one secret at a time). W8: ours one Entra \
         token (no challenge: `vault.azure.net` is a known suffix) and 20 concurrent gets; the \
         runner, for each secret with a new credential and client, the unauthenticated GET \
         answered by the 401 challenge, MSAL's tenant discovery, the token request and the \
         GET again (reproduced by hand in `xtask/src/bench/azure_runner.rs`, as azsecrets and \
         azidentity send them), over connections reused from one secret to the next: both \
         use azcore's process-wide default HTTP client (one client for the run here, cold at \
         its start).\n\
         - Each workload has its own `loopback-proxy` (one-way delay d, a new connection \
         costs one more round trip). Azure's fake serves TLS under the real host names: the \
         bench points `login.microsoftonline.com` and the vault's host at the proxy through \
         the provider's test-only name override and trusts the fakes' test CA; the proxy \
         forwards the TLS bytes, so it counts connections, and the fake counts the requests. \
         For W6 and W7 the requests are the proxy's HTTP/1.1 count.\n\
         - Every run's values are checked against the seeded ones, and its request counts \
         (by kind: the report's or the reproduction's, and the fake's; in total: the \
         server's) against the expected ones; a mismatch fails the command. `cargo xtask \
         bench --quick` runs each once at d = 0 and checks only the counts.\n"
    );
    for w in Workload::all() {
        let _ = writeln!(s, "- **{}**: {}", w.name, w.description);
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "| workload | contender | d (ms) | runs | wall ms: median (min-max) | requests | connections | in flight | counts by kind |\n\
         |---|---|---:|---:|---|---:|---:|---:|---|"
    );
    for w in Workload::all() {
        for who in Who::ALL {
            for d in DELAYS_MS {
                let Some(cell) = r
                    .cells
                    .iter()
                    .find(|c| c.workload.name == w.name && c.who == who && c.delay_ms == d)
                else {
                    continue;
                };
                let walls = sorted_walls(&cell.samples);
                let first = &cell.samples[0];
                let in_flight = match w.cloud {
                    Cloud::Azure => "n/a (TLS)".to_owned(),
                    _ => first.proxy.max_in_flight.to_string(),
                };
                let flag = if cell.mismatches.is_empty() {
                    String::new()
                } else {
                    format!(" **MISMATCH: {}**", cell.mismatches.join("; "))
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {d} | {} | {:.1} ({:.1}-{:.1}) | {} | {} | {in_flight} | {}{flag} |",
                    w.name,
                    who.label(),
                    walls.len(),
                    ms(walls[walls.len() / 2]),
                    ms(walls[0]),
                    ms(walls[walls.len() - 1]),
                    first.server_requests,
                    first.proxy.connections,
                    counts_text(&first.reported),
                );
            }
        }
    }
    s.push('\n');
    let mut speedups = Vec::new();
    for w in Workload::all() {
        let find = |who: Who| {
            r.cells.iter().find(|c| {
                c.workload.name == w.name
                    && c.who == who
                    && c.delay_ms == *DELAYS_MS.last().unwrap_or(&0)
            })
        };
        if let (Some(ours), Some(runner)) = (find(Who::Library), find(Who::Reproduction)) {
            let (a, b) = (ms(median(&ours.samples)), ms(median(&runner.samples)));
            speedups.push(format!(
                "{} {:.1} ms vs {:.1} ms ({:.1}×)",
                w.name,
                a,
                b,
                b / a
            ));
        }
    }
    if !speedups.is_empty() {
        let _ = writeln!(
            s,
            "At d = {} ms, ours against the runner's algorithm (medians): {}.\n",
            DELAYS_MS.last().unwrap_or(&0),
            speedups.join("; ")
        );
    }
    let _ = writeln!(s, "{END}");
    s
}

/// Writes (or replaces) the section in `docs/benchmarks.md`, before the micro-benchmarks.
pub fn write_section(root: &Path, r: &ProviderResults, command: &str) -> Result<()> {
    let section = markdown(r, command);
    docs_section::write(root, BEGIN, END, &section, &[Anchor::Before(MICRO)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_counts_follow_the_algorithms() {
        let [w6, w7, w8] = Workload::all();
        assert_eq!(w6.expected(Who::Library)["gitlab_sm_read"], 10);
        assert_eq!(w6.expected(Who::Reproduction)["gitlab_sm_read"], 20);
        assert_eq!(w7.expected(Who::Library)["gcp_sts_exchange"], 1);
        assert_eq!(w7.expected(Who::Reproduction)["gcp_sts_exchange"], 20);
        assert_eq!(w8.expected(Who::Library).values().sum::<u64>(), 21);
        assert_eq!(w8.expected(Who::Reproduction).values().sum::<u64>(), 80);
        // Two variables per GitLab SM secret, ten secrets; twenty of the others.
        let names = |w: &Workload| {
            let mut v: Vec<String> = (0..SECRETS)
                .map(|i| secret_name(w.cloud, secret_index(w.cloud, i)))
                .collect();
            v.dedup();
            v.len()
        };
        assert_eq!(names(&w6), GSM_PATHS);
        assert_eq!(names(&w7), SECRETS);
        assert_eq!(w8.expected_values().len(), SECRETS);
    }

    #[test]
    fn the_bench_fixture_holds_every_secret() {
        let f = bench_fixture("http://127.0.0.1:1").unwrap();
        for i in 0..SECRETS {
            let name = secret_name(Cloud::Gcp, i);
            assert!(f.gcp.secrets.iter().any(|s| s.secret == name), "{name}");
        }
        let vault = f
            .azure
            .vaults
            .iter()
            .find(|v| v.name == defaults::AZURE_VAULT)
            .unwrap();
        let ids: Vec<&str> = vault
            .secrets
            .iter()
            .flat_map(|s| s.versions.iter().map(|v| v.id.as_str()))
            .collect();
        for id in &ids {
            assert_eq!(id.len(), 32, "{id}");
        }
        assert!(
            vault
                .secrets
                .iter()
                .any(|s| s.name == secret_name(Cloud::Azure, SECRETS - 1))
        );
    }

    #[test]
    fn the_section_replaces_itself_before_the_micro_benchmarks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("docs")).unwrap();
        let path = dir.path().join("docs/benchmarks.md");
        std::fs::write(
            &path,
            "# Benchmarks\n\n## Results\n\nx\n\n## Micro-benchmarks\n\ny\n",
        )
        .unwrap();
        let r = ProviderResults::default();
        write_section(dir.path(), &r, "cmd").unwrap();
        write_section(dir.path(), &r, "cmd").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches(BEGIN).count(), 1, "{text}");
        assert!(text.find(END).unwrap() < text.find("## Micro-benchmarks").unwrap());
        assert!(text.contains("\nx\n"));
    }
}
