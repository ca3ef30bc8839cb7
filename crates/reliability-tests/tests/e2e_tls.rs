//! TLS against a second OpenBao dev server started here with `-dev-tls` on a free loopback
//! port (killed at the end), seeded through its API with JWT auth against the e2e issuer:
//! trusted through `VAULT_CACERT` it works; an untrusted certificate fails saying how to trust
//! it; `VAULT_SKIP_VERIFY` works and warns. Skipped without `CI_SECRETS_E2E_ENV`.

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
    ];
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
        let resolution = resolver_with(provider)
            .resolve(&all, &Default::default())
            .await
            .unwrap_or_else(|failure| panic!("{failure}"));
        assert_eq!(resolution.variables[0].value.expose(), value);
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
