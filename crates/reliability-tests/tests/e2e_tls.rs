//! TLS against a second OpenBao dev server started here with `-dev-tls` on a free loopback
//! port (killed at the end), seeded through its API with JWT auth against the e2e issuer:
//! trusted through `VAULT_CACERT` it works; an untrusted certificate fails saying how to trust
//! it; `VAULT_SKIP_VERIFY` works and warns; HTTP/2 is negotiated and one connection carries
//! the login, every read and the revoke. Skipped without `CI_SECRETS_E2E_ENV`.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

mod common;

use auth_oidc::testing::{E2eEnv, GitlabClaims};
use common::*;
use provider_vault::VaultProviderBuilder;
use secrecy::ExposeSecret as _;
use secrets_core::ErrorKind;
use secrets_resolver::Resolver;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `bao server -dev -dev-tls`, killed (process group and all) when dropped.
struct TlsBao {
    child: Child,
    url: String,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for TlsBao {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bao_binary(env: &E2eEnv) -> PathBuf {
    // The env file lives in target/xtask/ next to the OpenBao install.
    let xtask = env.path().parent().expect("the env file's directory");
    let bin = xtask.join("venv-openbao/bin/bao");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo xtask services up`",
        bin.display()
    );
    bin
}

async fn start(env: &E2eEnv) -> TlsBao {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = unused_port();
    let log = std::fs::File::create(dir.path().join("bao.log")).expect("log");
    let child = Command::new(bao_binary(env))
        .args(["server", "-dev", "-dev-tls", "-dev-root-token-id=root"])
        .arg(format!("-dev-tls-cert-dir={}", dir.path().display()))
        .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
        .env("HOME", dir.path())
        .env_remove("VAULT_ADDR")
        .env_remove("BAO_ADDR")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start bao");
    let bao = TlsBao {
        child,
        url: format!("https://127.0.0.1:{port}"),
        ca: dir.path().join("vault-ca.pem"),
        _dir: dir,
    };
    let started = Instant::now();
    loop {
        if bao.ca.exists()
            && let Ok(client) = client(&bao.ca)
            && let Ok(answer) = client
                .get(format!("{}/v1/sys/health", bao.url))
                .send()
                .await
            && answer.status().is_success()
        {
            return bao;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "bao -dev-tls did not become healthy: {}",
            std::fs::read_to_string(bao._dir.path().join("bao.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn client(ca: &Path) -> reqwest::Result<reqwest::Client> {
    let pem = std::fs::read(ca).unwrap_or_default();
    reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem)?)
        .build()
}

/// JWT auth against the e2e issuer, a role `ci`, a policy and one secret.
async fn seed(bao: &TlsBao, env: &E2eEnv, value: &str) {
    let http = client(&bao.ca).expect("client");
    let issuer = env.oidc_issuer();
    let calls = [
        ("sys/auth/jwt", json!({"type": "jwt"})),
        (
            "auth/jwt/config",
            json!({"oidc_discovery_url": issuer, "bound_issuer": issuer}),
        ),
        (
            "sys/policies/acl/tls-read",
            json!({"policy": "path \"secret/data/tls/*\" { capabilities = [\"read\"] }"}),
        ),
        (
            "auth/jwt/role/ci",
            json!({
                "role_type": "jwt",
                "bound_audiences": ["https://vault.example.com"],
                "user_claim": "user_email",
                "bound_claims_type": "glob",
                "bound_claims": {"project_path": "mygroup/myproject"},
                "token_policies": ["tls-read"],
                "token_explicit_max_ttl": 300,
            }),
        ),
        ("secret/data/tls/app", json!({"data": {"password": value}})),
    ]
    .map(|(path, body)| (path.to_owned(), body))
    .into_iter()
    .chain((0..10).map(|i| {
        (
            format!("secret/data/tls/h2/{i}"),
            json!({"data": {"a": format!("{value}-{i}-a"), "b": format!("{value}-{i}-b")}}),
        )
    }));
    for (path, body) in calls {
        let answer = http
            .post(format!("{}/v1/{path}", bao.url))
            .header("x-vault-token", "root")
            .json(&body)
            .send()
            .await
            .expect("seed request");
        assert!(
            answer.status().is_success(),
            "seeding {path}: {}",
            answer.status()
        );
    }
}

fn resolver_with(provider: provider_vault::VaultProvider) -> Resolver {
    Resolver::builder()
        .with_provider(Arc::new(provider))
        .with_options(fast_options())
        .build()
}

fn env_of(pairs: &[(&'static str, String)]) -> secrets_core::Environment {
    pairs.iter().map(|(k, v)| (*k, v.clone())).collect()
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_trusted_untrusted_and_skip_verify() {
    let Some(env) = E2eEnv::for_test("tls_trusted_untrusted_and_skip_verify") else {
        return;
    };
    tokio::time::timeout(HANG, async {
        let value = canary("tlsvalue");
        let bao = start(&env).await;
        seed(&bao, &env, &value).await;
        let token = env.minter().mint(&GitlabClaims::new()).expect("mint");
        let all = secrets(vec![(
            "TLS_PASSWORD",
            vault_secret(
                &bao.url,
                "secret",
                "tls/app",
                "password",
                token.expose_secret(),
            ),
        )]);
        let ca = bao.ca.to_string_lossy().into_owned();

        // Trusted through VAULT_CACERT.
        let provider = VaultProviderBuilder::new()
            .with_env(env_of(&[("VAULT_CACERT", ca.clone())]))
            .build()
            .expect("builds");
        let mut resolution = resolver_with(provider)
            .resolve(&all, &Default::default())
            .await
            .unwrap_or_else(|failure| panic!("{failure}"));
        assert_eq!(resolution.variables[0].value.expose(), value);
        resolution.close().await;
        assert_eq!(resolution.report.requests_of("vault_revoke"), 1);

        // Untrusted: the system roots do not know the dev CA.
        let provider = VaultProviderBuilder::new().build().expect("builds");
        let result = resolver_with(provider)
            .resolve(&all, &Default::default())
            .await;
        let failed = expect_failure(&result, "TLS_PASSWORD", ErrorKind::InvalidConfig);
        assert!(failed.message.contains("TLS"), "{}", failed.message);
        assert!(
            failed.message.contains("VAULT_CACERT"),
            "says how to trust it: {}",
            failed.message
        );
        assert!(!failed.retryable);

        // Skip verify: works, and warns when the provider is built.
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let provider = tracing::subscriber::with_default(subscriber, || {
            VaultProviderBuilder::new()
                .with_env(env_of(&[("VAULT_SKIP_VERIFY", "true".to_owned())]))
                .build()
                .expect("builds")
        });
        let warned =
            String::from_utf8_lossy(&logs.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
        assert!(
            warned.contains("WARN") && warned.contains("NOT verified"),
            "{warned}"
        );
        let resolution = resolver_with(provider)
            .resolve(&all, &Default::default())
            .await
            .unwrap_or_else(|failure| panic!("{failure}"));
        assert_eq!(resolution.variables[0].value.expose(), value);
        drop(bao);
    })
    .await
    .expect("the TLS test finished in time");
}

/// A TCP proxy in front of `upstream` that counts the connections it accepts (TLS passes
/// through untouched). Stops when dropped.
struct ConnectionCounter {
    url: String,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl ConnectionCounter {
    async fn start(upstream: &str) -> Self {
        let upstream = upstream
            .trim_start_matches("https://")
            .parse::<std::net::SocketAddr>()
            .expect("a loopback address");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("https://{}", listener.local_addr().expect("addr"));
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self {
            url,
            connections,
            task,
        }
    }
}

impl Drop for ConnectionCounter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_carries_a_login_twenty_reads_and_the_revoke_on_one_connection() {
    let Some(env) =
        E2eEnv::for_test("http2_carries_a_login_twenty_reads_and_the_revoke_on_one_connection")
    else {
        return;
    };
    tokio::time::timeout(HANG, async {
        let value = canary("h2value");
        let bao = start(&env).await;
        seed(&bao, &env, &value).await;
        let proxy = ConnectionCounter::start(&bao.url).await;
        let token = env.minter().mint(&GitlabClaims::new()).expect("mint");
        // 20 secrets over 10 paths; at most 4 requests in flight while it is HTTP/1.1.
        let names: Vec<String> = (0..20).map(|n| format!("H2_{n:02}")).collect();
        let all = secrets(
            names
                .iter()
                .enumerate()
                .map(|(n, name)| {
                    let (i, field) = (n / 2, if n % 2 == 0 { "a" } else { "b" });
                    (
                        name.as_str(),
                        vault_secret(
                            &proxy.url,
                            "secret",
                            &format!("tls/h2/{i}"),
                            field,
                            token.expose_secret(),
                        ),
                    )
                })
                .collect(),
        );
        let provider = VaultProviderBuilder::new()
            .with_env(env_of(&[(
                "VAULT_CACERT",
                bao.ca.to_string_lossy().into_owned(),
            )]))
            .build()
            .expect("builds");
        let mut resolution = resolver_with(provider)
            .resolve(&all, &Default::default())
            .await
            .unwrap_or_else(|failure| panic!("{failure}"));
        assert_eq!(resolution.variables.len(), 20);
        assert_eq!(
            resolution.variables[5].value.expose(),
            format!("{value}-2-b")
        );
        resolution.close().await;
        let report = &resolution.report;
        assert_eq!(report.requests_of("vault_login"), 1);
        assert_eq!(report.requests_of("vault_read"), 10);
        assert_eq!(report.requests_of("vault_revoke"), 1);
        assert_eq!(
            proxy.connections.load(Ordering::SeqCst),
            1,
            "HTTP/2: one connection for the login, 10 reads and the revoke"
        );
        drop(bao);
    })
    .await
    .expect("the HTTP/2 test finished in time");
}
