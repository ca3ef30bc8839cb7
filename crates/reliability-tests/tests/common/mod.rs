//! Helpers shared by the reliability tests: canaries, secrets as GitLab sends them, resolvers
//! with short timeouts, a programmable raw HTTP/1.1 server for connection-level faults and a
//! counting proxy that measures requests in flight.
#![allow(dead_code, unreachable_pub, reason = "each test binary uses a part")]

use base64::Engine as _;
use provider_aws_sm::AwsSecretsManagerBuilder;
use provider_vault::VaultProviderBuilder;
use secrets_core::{ErrorKind, RetryPolicy, Secret};
use secrets_resolver::{Outcome, Resolution, ResolveFailure, ResolveOptions, Resolver};
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The longest any single test may run before it counts as a hang.
pub const HANG: Duration = Duration::from_secs(60);

/// A unique, alphanumeric canary (maskable by GitLab's rules, unchanged by JSON escaping).
pub fn canary(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    #[allow(clippy::disallowed_methods, reason = "a unique suffix, not a clock")]
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    format!(
        "CANARY{tag}Z{:x}Z{nanos:x}Z{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> i64 {
    #[allow(
        clippy::disallowed_methods,
        reason = "test tokens expire relative to now"
    )]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}

/// An unsigned GitLab-shaped ID token valid for 5 minutes (providers read it without
/// verifying; mocks accept anything). Its signature part is `signature`, a canary: the token
/// string itself must never show up anywhere.
pub fn jwt(aud: &str, signature: &str) -> String {
    let claims = json!({
        "iss": "https://gitlab.example.com",
        "aud": aud,
        "sub": "project_path:mygroup/myproject:ref_type:branch:ref:main",
        "project_path": "mygroup/myproject",
        "ref": "main",
        "ref_type": "branch",
        "exp": now() + 300,
        "iat": now() - 10,
    });
    format!(
        "{}.{}.{}",
        b64url(br#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#),
        b64url(claims.to_string().as_bytes()),
        signature
    )
}

/// A `vault:` secret as GitLab sends it (kv-v2 unless `engine` says otherwise).
pub fn vault_secret(url: &str, mount: &str, path: &str, field: &str, jwt: &str) -> Secret {
    vault_secret_engine(url, "kv-v2", mount, path, field, jwt)
}

pub fn vault_secret_engine(
    url: &str,
    engine: &str,
    mount: &str,
    path: &str,
    field: &str,
    jwt: &str,
) -> Secret {
    serde_json::from_value(json!({
        "vault": {
            "server": {
                "url": url,
                "auth": {"name": "jwt", "path": "jwt", "data": {"jwt": jwt, "role": "ci"}},
            },
            "engine": {"name": engine, "path": mount},
            "path": path,
            "field": field,
        },
        "file": false,
    }))
    .expect("a valid vault secret")
}

/// An `aws_secrets_manager:` secret read with the default chain (no role ARN).
pub fn aws_secret(secret_id: &str, field: Option<&str>, region: &str) -> Secret {
    serde_json::from_value(json!({
        "aws_secrets_manager": {
            "secret_id": secret_id,
            "field": field,
            "server": {"region": region, "jwt": "$AWS_ID_TOKEN"},
        },
        "file": false,
    }))
    .expect("a valid aws secret")
}

/// The same on the OIDC path: STS `AssumeRoleWithWebIdentity` with `jwt`.
pub fn aws_oidc_secret(secret_id: &str, field: Option<&str>, region: &str, jwt: &str) -> Secret {
    serde_json::from_value(json!({
        "aws_secrets_manager": {
            "secret_id": secret_id,
            "field": field,
            "server": {
                "region": region,
                "jwt": jwt,
                "role_arn": "arn:aws:iam::123456789012:role/gitlab-ci",
                "role_session_name": "1001-42-gitlab",
            },
        },
        "file": false,
    }))
    .expect("a valid aws secret")
}

/// The AWS host environment of the tests: every endpoint on `endpoint`, static keys whose
/// secret half is `secret_key` (a canary where the test wants one), no IMDS.
pub fn aws_env(endpoint: &str, secret_key: &str) -> Vec<(String, String)> {
    vec![
        ("AWS_ENDPOINT_URL".into(), endpoint.into()),
        ("AWS_ACCESS_KEY_ID".into(), "AKIDRELIABILITYTEST".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), secret_key.into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ]
}

/// Short timeouts and fast retries: 3 attempts a request, 1 s a request, 10 s in all.
pub fn fast_options() -> ResolveOptions {
    ResolveOptions::default()
        .with_request_timeout(Duration::from_secs(1))
        .with_connect_timeout(Duration::from_millis(500))
        .with_deadline(Duration::from_secs(10))
        .with_max_concurrency(4)
        .with_retry(RetryPolicy {
            max_attempts: 3,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        })
}

/// A resolver with both providers: Vault from no environment (system roots), AWS with every
/// endpoint on `aws_endpoint`.
pub fn resolver(aws_endpoint: &str, options: ResolveOptions) -> Resolver {
    resolver_with_aws_key(aws_endpoint, "aws-secret-key-not-a-canary", options)
}

pub fn resolver_with_aws_key(
    aws_endpoint: &str,
    secret_key: &str,
    options: ResolveOptions,
) -> Resolver {
    let vault = VaultProviderBuilder::new().build().expect("vault provider");
    let aws = AwsSecretsManagerBuilder::new()
        .with_env_vars(aws_env(aws_endpoint, secret_key))
        .build()
        .expect("aws provider");
    Resolver::builder()
        .with_provider(Arc::new(vault))
        .with_provider(Arc::new(aws))
        .with_options(options)
        .build()
}

/// `secrets` in order, from `(variable, secret)` pairs.
pub fn secrets(pairs: Vec<(&str, Secret)>) -> secrets_core::Secrets {
    pairs.into_iter().map(|(k, s)| (k.to_owned(), s)).collect()
}

/// What a failed secret's report says.
#[derive(Debug)]
pub struct Failed {
    pub kind: String,
    pub failure_reason: String,
    pub message: String,
    pub retryable: bool,
}

/// Asserts the resolution failed whole (no variable) and returns `variable`'s failure,
/// checking that its kind is `kind`, that its failure reason is the kind's and that the
/// message names the variable.
pub fn expect_failure(
    result: &Result<Resolution, ResolveFailure>,
    variable: &str,
    kind: ErrorKind,
) -> Failed {
    let failure = match result {
        Ok(resolution) => panic!(
            "expected a failure, got {} variables: {:?}",
            resolution.variables.len(),
            resolution.report
        ),
        Err(failure) => failure,
    };
    let report = failure
        .report
        .secrets
        .iter()
        .find(|s| s.variable == variable)
        .unwrap_or_else(|| panic!("{variable} is not in the report: {failure}"));
    let Outcome::Failed {
        kind: got,
        failure_reason,
        message,
        retryable,
    } = &report.outcome
    else {
        panic!("{variable} did not fail: {:?}", report.outcome);
    };
    assert_eq!(*got, kind, "{variable}: {message}");
    assert_eq!(
        *failure_reason,
        kind.failure_reason(),
        "{variable}: {message}"
    );
    assert!(
        message.starts_with(variable),
        "the message names the variable first: {message}"
    );
    assert!(
        failure.to_string().contains(message.as_str()),
        "the failure's text lists every failed secret: {failure}"
    );
    Failed {
        kind: got.as_str().to_owned(),
        failure_reason: failure_reason.as_str().to_owned(),
        message: message.clone(),
        retryable: *retryable,
    }
}

/// A free loopback port with nothing listening on it (bound, then released).
pub fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

/// The `ci-secrets` binary built by `cargo test --workspace` (or `cargo build -p secrets-cli`).
pub fn ci_secrets_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/<test> -> target/<profile>/ci-secrets
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("ci-secrets"))
        .expect("target directory");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p secrets-cli` first (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

// ---------------------------------------------------------------------------------------
// A programmable raw HTTP/1.1 server.

/// One request as the raw server read it.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: String,
    pub path: String,
    /// Lowercased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the raw server does with one request.
#[derive(Debug, Clone)]
pub enum Action {
    /// A full answer; the connection stays open.
    Respond {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// The first `after` bytes of this full answer, then a TCP reset.
    ResetAfter {
        status: u16,
        body: Vec<u8>,
        after: usize,
    },
    /// Never answers; the connection stays open until the server is dropped.
    Stall,
    /// Closes the connection without a word.
    Close,
}

impl Action {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self::Respond {
            status,
            content_type: "application/json",
            body: body.to_string().into_bytes(),
        }
    }
}

fn response_bytes(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

type Handler = dyn Fn(usize, &RawRequest) -> Action + Send + Sync;

/// A raw HTTP/1.1 server on loopback; each request is answered as the handler says (it gets
/// the request's 0-based number). Stops, connections and all, when dropped.
#[derive(Debug)]
pub struct RawServer {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl RawServer {
    pub async fn start(
        handler: impl Fn(usize, &RawRequest) -> Action + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let (r, c) = (requests.clone(), connections.clone());
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                c.fetch_add(1, Ordering::SeqCst);
                conns.spawn(serve_raw(stream, handler.clone(), r.clone()));
                while conns.try_join_next().is_some() {}
            }
        });
        Self {
            addr,
            requests,
            connections,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_head<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> Option<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).await.ok()?;
        if n == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            if lines.is_empty() {
                continue;
            }
            return Some(lines);
        }
        lines.push(line);
    }
}

fn header_of(lines: &[String], name: &str) -> Option<String> {
    lines.iter().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

async fn serve_raw(stream: TcpStream, handler: Arc<Handler>, count: Arc<AtomicUsize>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let Some(lines) = read_head(&mut reader).await else {
            return;
        };
        let mut first = lines[0].split(' ');
        let method = first.next().unwrap_or_default().to_owned();
        let path = first.next().unwrap_or_default().to_owned();
        let len: usize = header_of(&lines, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let headers = lines
            .iter()
            .skip(1)
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                Some((n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            })
            .collect();
        let request = RawRequest {
            method,
            path,
            headers,
            body,
        };
        let n = count.fetch_add(1, Ordering::SeqCst);
        match handler(n, &request) {
            Action::Respond {
                status,
                content_type,
                body,
            } => {
                if write
                    .write_all(&response_bytes(status, content_type, &body))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Action::ResetAfter {
                status,
                body,
                after,
            } => {
                let bytes = response_bytes(status, "application/json", &body);
                let _ = write.write_all(&bytes[..after.min(bytes.len())]).await;
                let _ = write.flush().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                if let Ok(stream) = reader.into_inner().reunite(write) {
                    let _ = stream.set_zero_linger();
                    drop(stream);
                }
                return;
            }
            Action::Stall => {
                std::future::pending::<()>().await;
            }
            Action::Close => return,
        }
    }
}

// ---------------------------------------------------------------------------------------
// A counting HTTP/1.1 proxy.

/// Counts at the proxy.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub connections: AtomicUsize,
    pub requests: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
}

/// A loopback HTTP/1.1 proxy in front of `upstream` that counts connections, requests and
/// the most requests in flight at once (a request is in flight from its first byte to the
/// last byte of its answer). Stops when dropped.
#[derive(Debug)]
pub struct CountingProxy {
    addr: SocketAddr,
    stats: Arc<ProxyStats>,
    task: JoinHandle<()>,
}

impl CountingProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stats = Arc::new(ProxyStats::default());
        let s = stats.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    break;
                };
                s.connections.fetch_add(1, Ordering::SeqCst);
                conns.spawn(proxy_conn(client, upstream, s.clone()));
                while conns.try_join_next().is_some() {}
            }
        });
        Self { addr, stats, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stats(&self) -> &ProxyStats {
        &self.stats
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn proxy_conn(client: TcpStream, upstream: SocketAddr, stats: Arc<ProxyStats>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (cr, mut cw) = client.into_split();
    let (sr, mut sw) = server.into_split();
    let mut cr = BufReader::new(cr);
    let mut sr = BufReader::new(sr);
    loop {
        let Some(head) = read_head(&mut cr).await else {
            return;
        };
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
        stats.requests.fetch_add(1, Ordering::SeqCst);
        let head_request = head[0].starts_with("HEAD ");
        let ok = forward_message(&head, &mut cr, &mut sw, true).await;
        let ok = ok && {
            match read_head(&mut sr).await {
                None => false,
                Some(answer) => {
                    let status: u16 = answer[0]
                        .split(' ')
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    let bodyless =
                        head_request || status == 204 || status == 304 || status / 100 == 1;
                    if bodyless {
                        write_head(&answer, &mut cw).await
                    } else {
                        forward_message(&answer, &mut sr, &mut cw, false).await
                    }
                }
            }
        };
        stats.in_flight.fetch_sub(1, Ordering::SeqCst);
        if !ok {
            return;
        }
    }
}

async fn write_head<W: AsyncWriteExt + Unpin>(head: &[String], to: &mut W) -> bool {
    let mut text = head.join("\r\n");
    text.push_str("\r\n\r\n");
    to.write_all(text.as_bytes()).await.is_ok()
}

/// Forwards a message whose head was read: the head, then its body by content-length,
/// chunked encoding, or (answers only) until the connection closes.
async fn forward_message<R, W>(head: &[String], from: &mut R, to: &mut W, request: bool) -> bool
where
    R: AsyncBufReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    if !write_head(head, to).await {
        return false;
    }
    let chunked = header_of(head, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let mut size_line = String::new();
            if from.read_line(&mut size_line).await.unwrap_or(0) == 0 {
                return false;
            }
            if to.write_all(size_line.as_bytes()).await.is_err() {
                return false;
            }
            let size =
                usize::from_str_radix(size_line.trim().split(';').next().unwrap_or_default(), 16)
                    .unwrap_or(0);
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    let mut line = String::new();
                    if from.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return false;
                    }
                    if to.write_all(line.as_bytes()).await.is_err() {
                        return false;
                    }
                    if line == "\r\n" || line == "\n" {
                        return to.flush().await.is_ok();
                    }
                }
            }
            let mut chunk = vec![0; size + 2];
            if from.read_exact(&mut chunk).await.is_err() || to.write_all(&chunk).await.is_err() {
                return false;
            }
        }
    }
    match header_of(head, "content-length").and_then(|v| v.parse::<u64>().ok()) {
        Some(len) => {
            let mut body = from.take(len);
            tokio::io::copy(&mut body, to).await.is_ok_and(|n| n == len) && to.flush().await.is_ok()
        }
        None if request => to.flush().await.is_ok(),
        None => {
            let _ = tokio::io::copy(from, to).await;
            false
        }
    }
}
