//! Load against the real servers of `cargo xtask services up` (skipped without
//! `CI_SECRETS_E2E_ENV`): 1000 OpenBao secrets and 1000 LocalStack secrets in one resolution,
//! each server behind a counting proxy that checks the requests in flight never exceed
//! `max_concurrency`. The secrets are seeded under a unique prefix and removed afterwards.

mod common;

use auth_oidc::testing::{E2eEnv, GitlabClaims};
use aws_sdk_secretsmanager::Client as SmClient;
use common::*;
use secrecy::ExposeSecret as _;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const COUNT: usize = 1000;
const CONCURRENCY: usize = 8;
const SEEDERS: usize = 16;

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("a loopback http address")
}

async fn sm_client(env: &E2eEnv) -> SmClient {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(env.aws_endpoint())
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await;
    SmClient::new(&config)
}

/// Runs `f(i)` for every `i < COUNT`, `SEEDERS` at a time.
async fn each<F, Fut>(f: F)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let mut set = tokio::task::JoinSet::new();
    for worker in 0..SEEDERS {
        let f = f.clone();
        set.spawn(async move {
            for i in (worker..COUNT).step_by(SEEDERS) {
                f(i).await;
            }
        });
    }
    while let Some(done) = set.join_next().await {
        done.expect("a seeding task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_secrets_per_server_resolve_within_the_concurrency_limit() {
    let Some(env) =
        E2eEnv::for_test("a_thousand_secrets_per_server_resolve_within_the_concurrency_limit")
    else {
        return;
    };
    tokio::time::timeout(Duration::from_secs(600), run(env))
        .await
        .expect("the load test finished in 10 minutes");
}

async fn run(env: E2eEnv) {
    let prefix = canary("load").to_lowercase();
    let http = reqwest::Client::new();
    let root = env.vault_root_token().expose_secret().to_owned();
    let vault = env.vault_addr().trim_end_matches('/').to_owned();
    let sm = sm_client(&env).await;

    // Seed.
    let started = Instant::now();
    {
        let (http, root, vault, prefix) =
            (http.clone(), root.clone(), vault.clone(), prefix.clone());
        each(move |i| {
            let (http, root, vault, prefix) =
                (http.clone(), root.clone(), vault.clone(), prefix.clone());
            async move {
                let status = http
                    .post(format!("{vault}/v1/secret/data/ci/{prefix}/{i:04}"))
                    .header("x-vault-token", &root)
                    .json(&json!({"data": {"password": format!("{prefix}-vault-{i:04}")}}))
                    .send()
                    .await
                    .expect("write to OpenBao")
                    .status();
                assert!(status.is_success(), "seeding OpenBao: {status}");
            }
        })
        .await;
    }
    {
        let (sm, prefix) = (sm.clone(), prefix.clone());
        each(move |i| {
            let (sm, prefix) = (sm.clone(), prefix.clone());
            async move {
                sm.create_secret()
                    .name(format!("{prefix}/{i:04}"))
                    .secret_string(json!({"value": format!("{prefix}-aws-{i:04}")}).to_string())
                    .send()
                    .await
                    .expect("create in LocalStack");
            }
        })
        .await;
    }
    let seeding = started.elapsed();

    // Resolve 2000 secrets in one resolution, each server behind a counting proxy.
    let vault_proxy = CountingProxy::start(addr_of(&vault)).await;
    let aws_proxy = CountingProxy::start(addr_of(env.aws_endpoint())).await;
    let token = env
        .minter()
        .mint(&GitlabClaims::new())
        .expect("mint a token");
    let token = token.expose_secret();
    let names: Vec<(String, String)> = (0..COUNT)
        .map(|i| (format!("VAULT_{i:04}"), format!("AWS_{i:04}")))
        .collect();
    let mut all = secrets_core::Secrets::new();
    for (i, (v, a)) in names.iter().enumerate() {
        all.insert(
            v.clone(),
            vault_secret(
                &vault_proxy.url(),
                "secret",
                &format!("ci/{prefix}/{i:04}"),
                "password",
                token,
            ),
        );
        all.insert(
            a.clone(),
            aws_secret(&format!("{prefix}/{i:04}"), Some("value"), "us-east-1"),
        );
    }
    let options = secrets_resolver::ResolveOptions::default()
        .with_request_timeout(Duration::from_secs(30))
        .with_deadline(Duration::from_secs(300))
        .with_max_concurrency(CONCURRENCY);
    let resolve_started = Instant::now();
    let result = resolver(&aws_proxy.url(), options)
        .resolve(&all, &Default::default())
        .await;
    let resolving = resolve_started.elapsed();

    // Clean up before asserting, so a failure leaves nothing behind either.
    {
        let (http, root, vault, prefix) =
            (http.clone(), root.clone(), vault.clone(), prefix.clone());
        each(move |i| {
            let (http, root, vault, prefix) =
                (http.clone(), root.clone(), vault.clone(), prefix.clone());
            async move {
                let _ = http
                    .delete(format!("{vault}/v1/secret/metadata/ci/{prefix}/{i:04}"))
                    .header("x-vault-token", &root)
                    .send()
                    .await;
            }
        })
        .await;
    }
    {
        let (sm, prefix) = (sm.clone(), prefix.clone());
        each(move |i| {
            let (sm, prefix) = (sm.clone(), prefix.clone());
            async move {
                let _ = sm
                    .delete_secret()
                    .secret_id(format!("{prefix}/{i:04}"))
                    .force_delete_without_recovery(true)
                    .send()
                    .await;
            }
        })
        .await;
    }

    let resolution = result.unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(resolution.variables.len(), 2 * COUNT);
    for (i, (v, a)) in names.iter().enumerate() {
        let get = |key: &str| {
            resolution
                .variables
                .iter()
                .find(|x| x.key == key)
                .map(|x| x.value.expose().to_owned())
        };
        assert_eq!(get(v), Some(format!("{prefix}-vault-{i:04}")));
        assert_eq!(get(a), Some(format!("{prefix}-aws-{i:04}")));
    }
    let report = &resolution.report;
    assert_eq!(report.requests_of("vault_login"), 1);
    assert_eq!(report.requests_of("vault_read"), COUNT as u64);
    assert_eq!(report.requests_of("sm_batch_get"), COUNT as u64 / 20);
    for (server, proxy) in [("OpenBao", &vault_proxy), ("LocalStack", &aws_proxy)] {
        let max = proxy.stats().max_in_flight.load(Ordering::SeqCst);
        assert!(
            max <= CONCURRENCY,
            "{server}: {max} requests in flight, limit {CONCURRENCY}"
        );
        assert!(max >= 2, "{server}: requests ran concurrently ({max})");
    }
    let line = format!(
        "e2e_load: seeded 2x{COUNT} in {seeding:?}; resolved 2x{COUNT} in {resolving:?}; max in flight: OpenBao {}, LocalStack {}; requests {:?}",
        vault_proxy.stats().max_in_flight.load(Ordering::SeqCst),
        aws_proxy.stats().max_in_flight.load(Ordering::SeqCst),
        report.requests,
    );
    #[allow(
        clippy::print_stderr,
        reason = "the timings are the point of a load test"
    )]
    {
        eprintln!("{line}");
    }
}
