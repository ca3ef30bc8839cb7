//! Connection and request counts as deployed (issue 19): real OpenBao and LocalStack behind
//! `loopback-proxy` fronts that terminate TLS (a test CA from `cloud-fakes`; Vault's front
//! offers HTTP/2, AWS's HTTP/1.1 only), asserted from the proxies' counts and timestamped
//! records, never from durations.
//!
//! - W2 (20 Vault secrets over 10 paths): one HTTP/2 connection, every read of the wave in
//!   flight together.
//! - W4: the Secrets Manager connection opened before STS's answer (`provider-aws-sm` opens
//!   the first wave's connections while STS answers; ADR 0005).
//! - The Vault token is revoked in every path: success, failure, deadline, cancellation,
//!   `ci-secrets resolve` and `ci-secrets exec`.
//!
//! Skipped without `CI_SECRETS_E2E_ENV` (`cargo xtask services up`).
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]
#![allow(
    clippy::print_stdout,
    reason = "the tests print the counts they measure, for the lead to read after un-ignoring"
)]

mod common;

use auth_oidc::testing::{E2eEnv, GitlabClaims};
use cloud_fakes::tls::Pki;
use common::*;
use loopback_proxy::{Fault, Protocol, Proxy, ProxyConfig, RequestRecord};
use provider_aws_sm::AwsSecretsManagerBuilder;
use provider_vault::VaultProviderBuilder;
use secrecy::ExposeSecret as _;
use secrets_core::{ErrorKind, Secrets};
use secrets_resolver::{ResolveOptions, Resolver};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const REVOKE: &str = "/v1/auth/token/revoke-self";
const LOGIN: &str = "/v1/auth/jwt/login";
/// The Vault paths the tests seed, `secret/ci/deployed/pNN` (fields `f0`, `f1`).
const PREFIX: &str = "ci/deployed";
/// Set in the child that [`in_child_trusting_ca`] starts.
const CA_CHILD_VAR: &str = "CI_SECRETS_DEPLOYED_CA_CHILD";

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("a service URL http://<ip>:<port>")
}

fn pki() -> Pki {
    Pki::generate(&["127.0.0.1".to_owned()]).expect("test PKI")
}

/// OpenBao behind TLS offering `h2` and `http/1.1`, as its own TLS listener does.
fn vault_front(env: &E2eEnv, pki: &Pki, delay: Duration) -> Proxy {
    Proxy::start_tls(
        addr(env.vault_addr()),
        ProxyConfig::default().with_delay(delay),
        pki.server_config(&[b"h2", b"http/1.1"])
            .expect("tls config"),
    )
    .expect("vault front")
}

/// Seeds `secret/ci/deployed/p00..` (idempotent: same values every time).
async fn seed(env: &E2eEnv, paths: usize) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for p in 0..paths {
        let answer = http
            .post(format!("{}/v1/secret/data/{PREFIX}/p{p:02}", env.vault_addr()))
            .header("X-Vault-Token", env.vault_root_token().expose_secret())
            .json(&json!({"data": {"f0": format!("deployed-p{p:02}-f0"), "f1": format!("deployed-p{p:02}-f1")}}))
            .send()
            .await
            .expect("seed vault");
        assert!(answer.status().is_success(), "seeding: {}", answer.status());
    }
}

fn vault_jwt(env: &E2eEnv) -> String {
    env.minter()
        .mint(&GitlabClaims::new())
        .expect("mint")
        .expose_secret()
        .to_owned()
}

/// W2 as GitLab sends it: 20 secrets over 10 paths at `url`.
fn w2_json(url: &str, jwt: &str) -> serde_json::Map<String, serde_json::Value> {
    (0..20)
        .map(|i| {
            let secret = json!({
                "vault": {
                    "server": {
                        "url": url,
                        "auth": {"name": "jwt", "path": "jwt", "data": {"jwt": jwt, "role": "ci"}},
                    },
                    "engine": {"name": "kv-v2", "path": "secret"},
                    "path": format!("{PREFIX}/p{:02}", i / 2),
                    "field": format!("f{}", i % 2),
                },
                "file": false,
            });
            (format!("V_{i:02}"), secret)
        })
        .collect()
}

fn w2(url: &str, jwt: &str) -> Vec<(String, secrets_core::Secret)> {
    w2_json(url, jwt)
        .into_iter()
        .map(|(k, v)| (k, serde_json::from_value(v).expect("a valid secret")))
        .collect()
}

fn to_secrets(pairs: Vec<(String, secrets_core::Secret)>) -> Secrets {
    pairs.into_iter().collect()
}

fn vault_resolver(pki: &Pki, options: ResolveOptions) -> Resolver {
    let vault = VaultProviderBuilder::new()
        .with_ca_bundle(pki.ca_pem.as_bytes().to_vec())
        .build()
        .expect("vault provider");
    Resolver::builder()
        .with_provider(Arc::new(vault))
        .with_options(options)
        .build()
}

fn is_read(r: &RequestRecord) -> bool {
    r.method == "GET" && r.path.starts_with(&format!("/v1/secret/data/{PREFIX}/"))
}

/// The most reads that had arrived before any read was answered: the size of the first
/// wave of reads (all of them when every read was in flight together).
fn first_wave(requests: &[RequestRecord]) -> usize {
    let reads: Vec<&RequestRecord> = requests.iter().filter(|r| is_read(r)).collect();
    let Some(first_answer) = reads.iter().filter_map(|r| r.answered).min() else {
        return reads.len();
    };
    reads.iter().filter(|r| r.arrived < first_answer).count()
}

/// Waits (bounded by [`HANG`]) until `done` holds for the proxy's requests; returns them.
async fn wait_until(proxy: &Proxy, done: impl Fn(&[RequestRecord]) -> bool) -> Vec<RequestRecord> {
    tokio::time::timeout(HANG, async {
        loop {
            let requests = proxy.requests();
            if done(&requests) {
                return requests;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out; the proxy saw {:?}", proxy.requests()))
}

fn revokes(requests: &[RequestRecord]) -> usize {
    requests
        .iter()
        .filter(|r| r.method == "POST" && r.path == REVOKE)
        .count()
}

/// Stalls the proxy's answers once the first read has reached the server: the login's
/// answer is already delivered (the client sent the read after it), the reads' are held.
async fn stall_reads(proxy: &Proxy) {
    wait_until(proxy, |r| r.iter().any(is_read)).await;
    proxy.set_fault(Fault::StallResponses);
}

#[tokio::test]
async fn w2_over_tls_costs_one_http2_connection_and_a_stream_per_request() {
    let Some(env) = E2eEnv::for_test("w2_over_tls_costs_one_http2_connection") else {
        return;
    };
    seed(&env, 10).await;
    let pki = pki();
    let proxy = vault_front(&env, &pki, Duration::from_millis(10));
    let resolver = vault_resolver(&pki, ResolveOptions::default());
    let secrets = to_secrets(w2(&proxy.url(), &vault_jwt(&env)));
    let resolution = resolver
        .resolve(&secrets, &Default::default())
        .await
        .expect("W2 resolves over TLS");
    assert_eq!(resolution.variables.len(), 20);
    assert_eq!(resolution.report.requests_of("vault_read"), 10);
    drop(resolution);
    let requests = wait_until(&proxy, |r| revokes(r) == 1).await;
    let stats = proxy.stats();
    let conns = proxy.connections();
    println!(
        "W2 over TLS: {} connection(s), {} reads in the first wave of 10, max in flight {}",
        stats.connections,
        first_wave(&requests),
        stats.max_in_flight
    );
    assert_eq!(stats.connections, 1, "one connection to Vault: {conns:?}");
    assert_eq!(stats.tls_handshakes, 1);
    assert_eq!(conns[0].protocol, Protocol::Http2, "HTTP/2 negotiated");
    assert_eq!(stats.requests, 12, "login, 10 reads, revoke: {requests:?}");
    assert_eq!(stats.streams, 12);
    let login = requests.iter().find(|r| r.path == LOGIN).expect("a login");
    let login_answered = login.answered.expect("the login was answered");
    assert!(
        requests
            .iter()
            .filter(|r| is_read(r))
            .all(|r| r.arrived > login_answered),
        "reads follow the login"
    );
    let revoke = requests.iter().find(|r| r.path == REVOKE).unwrap();
    assert!(
        requests
            .iter()
            .filter(|r| is_read(r))
            .all(|r| r.answered.is_some_and(|a| a < revoke.arrived)),
        "the revoke follows every read's answer"
    );
}

#[tokio::test]
async fn w2_over_tls_sends_every_read_of_the_wave_in_flight_together() {
    let Some(env) = E2eEnv::for_test("w2_over_tls_sends_every_read_in_one_wave") else {
        return;
    };
    seed(&env, 10).await;
    let pki = pki();
    let proxy = vault_front(&env, &pki, Duration::from_millis(10));
    let resolver = vault_resolver(&pki, ResolveOptions::default());
    let secrets = to_secrets(w2(&proxy.url(), &vault_jwt(&env)));
    let resolution = resolver
        .resolve(&secrets, &Default::default())
        .await
        .expect("W2 resolves over TLS");
    drop(resolution);
    let requests = wait_until(&proxy, |r| revokes(r) == 1).await;
    assert_eq!(proxy.stats().connections, 1);
    assert_eq!(
        first_wave(&requests),
        10,
        "all 10 reads in flight before the first answer; the proxy saw {requests:?}"
    );
}

/// Runs this test again in a child process with `SSL_CERT_FILE` at a CA file the child
/// writes: the AWS SDK reads its trust store once per process, from that variable (it
/// ignores `AWS_CA_BUNDLE`). Returns the CA path in the child, `None` in the parent (after
/// the child passed).
fn in_child_trusting_ca(test: &str) -> Option<std::path::PathBuf> {
    if std::env::var_os(CA_CHILD_VAR).is_some() {
        return std::env::var_os("SSL_CERT_FILE").map(Into::into);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([test, "--exact", "--include-ignored", "--nocapture"])
        .env(CA_CHILD_VAR, "1")
        .env("SSL_CERT_FILE", &ca)
        .output()
        .expect("run the test's child");
    let out = String::from_utf8_lossy(&output.stdout);
    print!("{out}");
    assert!(
        output.status.success() && out.contains("1 passed"),
        "the child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    None
}

#[tokio::test]
async fn w4_over_tls_opens_the_secrets_manager_connection_before_sts_answers() {
    let Some(env) = E2eEnv::for_test("w4_over_tls_opens_the_sm_connection_early") else {
        return;
    };
    let Some(ca_file) =
        in_child_trusting_ca("w4_over_tls_opens_the_secrets_manager_connection_before_sts_answers")
    else {
        return;
    };
    let pki = pki();
    std::fs::write(&ca_file, &pki.ca_pem).expect("write the CA");
    seed(&env, 10).await;
    let delay = Duration::from_millis(25);
    let vault = vault_front(&env, &pki, delay);
    let aws = Proxy::start_tls(
        addr(env.aws_endpoint()),
        ProxyConfig::default().with_delay(delay),
        pki.server_config(&[b"http/1.1"]).expect("tls config"),
    )
    .expect("aws front");
    let jwt = vault_jwt(&env);
    let aws_jwt = env
        .minter()
        .mint(&GitlabClaims::new().with_audience("sts.amazonaws.com"))
        .expect("mint")
        .expose_secret()
        .to_owned();
    let mut pairs = w2(&vault.url(), &jwt);
    for (i, id) in ["app-secrets/database", "app-secrets/api"]
        .into_iter()
        .enumerate()
    {
        // LocalStack answers for any role; the fixtures live in account 000000000000.
        let secret = serde_json::from_value(json!({
            "aws_secrets_manager": {
                "secret_id": id,
                "server": {
                    "region": "us-east-1",
                    "jwt": aws_jwt,
                    "role_arn": "arn:aws:iam::000000000000:role/gitlab-ci-e2e",
                    "role_session_name": "1001-42-gitlab",
                },
            },
            "file": false,
        }))
        .expect("a valid aws secret");
        pairs.push((format!("A_{i:02}"), secret));
    }
    let aws_provider = AwsSecretsManagerBuilder::new()
        .with_env_vars([
            ("AWS_ENDPOINT_URL", aws.url()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ])
        .build()
        .expect("aws provider");
    let vault_provider = VaultProviderBuilder::new()
        .with_ca_bundle(pki.ca_pem.as_bytes().to_vec())
        .build()
        .expect("vault provider");
    let resolver = Resolver::builder()
        .with_provider(Arc::new(vault_provider))
        .with_provider(Arc::new(aws_provider))
        .build();
    let resolution = resolver
        .resolve(&to_secrets(pairs), &Default::default())
        .await
        .expect("W4 resolves over TLS");
    assert_eq!(resolution.variables.len(), 22);
    drop(resolution);
    let requests = aws.requests();
    let sts = requests
        .iter()
        .find(|r| r.method == "POST" && r.amz_target.is_none())
        .expect("an STS call");
    let sts_answered = sts.answered.expect("STS answered");
    let sm_conns: Vec<u64> = requests
        .iter()
        .filter(|r| {
            r.amz_target
                .as_deref()
                .is_some_and(|t| t.starts_with("secretsmanager."))
        })
        .map(|r| r.connection)
        .collect();
    let conns = aws.connections();
    println!(
        "W4 over TLS: AWS connections {:?}, STS answered at {:?} after the first connection",
        conns
            .iter()
            .map(|c| (c.id, sm_conns.contains(&c.id)))
            .collect::<Vec<_>>(),
        sts_answered.saturating_duration_since(conns[0].opened)
    );
    assert!(
        conns
            .iter()
            .any(|c| sm_conns.contains(&c.id) && c.opened < sts_answered),
        "a Secrets Manager connection was opened while STS was answering: {conns:?} {requests:?}"
    );
}

#[tokio::test]
async fn the_token_is_revoked_when_the_resolution_fails() {
    let Some(env) = E2eEnv::for_test("the_token_is_revoked_when_the_resolution_fails") else {
        return;
    };
    seed(&env, 10).await;
    let pki = pki();
    let proxy = vault_front(&env, &pki, Duration::ZERO);
    let jwt = vault_jwt(&env);
    let mut pairs = w2(&proxy.url(), &jwt);
    pairs.push((
        "MISSING".to_owned(),
        vault_secret(
            &proxy.url(),
            "secret",
            &format!("{PREFIX}/missing"),
            "f0",
            &jwt,
        ),
    ));
    let result = vault_resolver(&pki, ResolveOptions::default())
        .resolve(&to_secrets(pairs), &Default::default())
        .await;
    expect_failure(&result, "MISSING", ErrorKind::NotFound);
    drop(result);
    let requests = wait_until(&proxy, |r| revokes(r) == 1).await;
    assert_eq!(revokes(&requests), 1, "{requests:?}");
    let revoke = requests.iter().find(|r| r.path == REVOKE).unwrap();
    assert_eq!(revoke.status, Some(204), "OpenBao revoked the token");
}

#[tokio::test]
async fn the_token_is_revoked_when_the_deadline_passes() {
    let Some(env) = E2eEnv::for_test("the_token_is_revoked_when_the_deadline_passes") else {
        return;
    };
    seed(&env, 10).await;
    let pki = pki();
    // The delay is the margin between seeing the first read arrive and its answer leaving.
    let proxy = vault_front(&env, &pki, Duration::from_millis(100));
    let resolver = vault_resolver(
        &pki,
        ResolveOptions::default().with_deadline(Duration::from_secs(3)),
    );
    let secrets = to_secrets(w2(&proxy.url(), &vault_jwt(&env)));
    let variables = Default::default();
    let (result, ()) = tokio::join!(resolver.resolve(&secrets, &variables), stall_reads(&proxy));
    assert!(result.is_err(), "the deadline fails the resolution");
    drop(result);
    let requests = wait_until(&proxy, |r| revokes(r) == 1).await;
    proxy.set_fault(Fault::None);
    assert_eq!(revokes(&requests), 1);
}

#[tokio::test]
async fn the_token_is_revoked_when_the_resolution_is_cancelled() {
    let Some(env) = E2eEnv::for_test("the_token_is_revoked_when_the_resolution_is_cancelled")
    else {
        return;
    };
    seed(&env, 10).await;
    let pki = pki();
    let proxy = vault_front(&env, &pki, Duration::from_millis(100));
    let resolver = vault_resolver(&pki, ResolveOptions::default());
    let secrets = to_secrets(w2(&proxy.url(), &vault_jwt(&env)));
    let variables = Default::default();
    tokio::select! {
        result = resolver.resolve(&secrets, &variables) => {
            panic!("the reads are stalled, yet it finished: {:?}", result.is_ok())
        }
        () = stall_reads(&proxy) => {}
    }
    // The resolution's future is dropped: cancelled mid-read.
    let requests = wait_until(&proxy, |r| revokes(r) == 1).await;
    proxy.set_fault(Fault::None);
    assert_eq!(revokes(&requests), 1);
}

/// `ci-secrets <args> --job-payload FILE ...` with W2 at the proxy, trusting the CA through
/// `VAULT_CACERT`; returns the proxy's requests once the process has exited.
async fn cli_run(env: &E2eEnv, before: &[&str], after: &[&str]) -> Vec<RequestRecord> {
    seed(env, 10).await;
    let pki = pki();
    let proxy = vault_front(env, &pki, Duration::ZERO);
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let jwt = vault_jwt(env);
    let secrets = w2_json(&proxy.url(), &jwt);
    let payload = dir.path().join("payload.json");
    std::fs::write(
        &payload,
        json!({"secrets": secrets, "variables": []}).to_string(),
    )
    .unwrap();
    let output = tokio::process::Command::new(ci_secrets_bin())
        .args(before)
        .arg("--job-payload")
        .arg(&payload)
        .args(after)
        .env("VAULT_CACERT", &ca)
        .env_remove("VAULT_TOKEN")
        .env_remove("BAO_TOKEN")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run ci-secrets");
    assert!(
        output.status.success(),
        "ci-secrets {before:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let requests = proxy.requests();
    assert_eq!(proxy.stats().connections, 1, "{:?}", proxy.connections());
    requests
}

#[tokio::test]
async fn ci_secrets_resolve_revokes_its_token_before_it_exits() {
    let Some(env) = E2eEnv::for_test("ci_secrets_resolve_revokes_its_token") else {
        return;
    };
    let requests = cli_run(&env, &["resolve"], &["--format", "json", "--quiet"]).await;
    assert_eq!(revokes(&requests), 1, "{requests:?}");
    assert_eq!(requests.iter().filter(|r| is_read(r)).count(), 10);
}

#[tokio::test]
async fn ci_secrets_exec_revokes_its_token_before_it_exits() {
    let Some(env) = E2eEnv::for_test("ci_secrets_exec_revokes_its_token") else {
        return;
    };
    let requests = cli_run(&env, &["--quiet", "exec"], &["--", "true"]).await;
    assert_eq!(revokes(&requests), 1, "{requests:?}");
}
