//! The contenders: our resolver as a library and as the `ci-secrets` binary, GitLab Runner's
//! algorithm reproduced with the same crates, and job-script style CLI calls.

use super::transport::{self, Transport};
use super::workload::{AWS_REGION, AWS_ROLE_ARN, AWS_SESSION, VAULT_MOUNT, VAULT_ROLE, Workload};
use anyhow::{Context as _, Result, anyhow, bail};
use loopback_proxy::{ConnectionRecord, Proxy, ProxyStats, RequestRecord};
use provider_aws_sm::AwsSecretsManagerBuilder;
use provider_vault::VaultProviderBuilder;
use secrets_core::{
    Environment, JobPayload, ProviderKind, ResolveContext, Secret, SecretProvider, SecretRequest,
    Variables,
};
use secrets_resolver::{ResolveOptions, Resolver};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Who resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Contender {
    /// `Resolver::builder().with_default_providers()` in this process.
    Library,
    /// `ci-secrets resolve --job-payload FILE --format json` (release build).
    Cli,
    /// GitLab Runner's algorithm, reproduced with this project's providers.
    Reproduction,
    /// `bao kv get` / `aws secretsmanager get-secret-value` once per secret in a shell script.
    Script,
}

impl Contender {
    pub const ALL: [Contender; 4] = [Self::Library, Self::Cli, Self::Reproduction, Self::Script];

    pub fn label(self) -> &'static str {
        match self {
            Self::Library => "ours: library",
            Self::Cli => "ours: ci-secrets CLI",
            Self::Reproduction => "runner algorithm (reproduction)",
            Self::Script => "job script (bao / aws CLI)",
        }
    }
}

/// One timed run.
#[derive(Debug, Clone)]
pub struct Sample {
    pub wall: Duration,
    /// What the Vault proxy saw.
    pub vault: ProxyStats,
    /// What the LocalStack proxy saw.
    pub aws: ProxyStats,
    /// `report.requests` (or the reproduction's shared counter); `None` for the script.
    pub reported: Option<BTreeMap<String, u64>>,
    /// The connections each proxy saw, in order.
    pub vault_conns: Vec<ConnectionRecord>,
    pub aws_conns: Vec<ConnectionRecord>,
    /// The requests the AWS proxy saw, in order of arrival.
    pub aws_reqs: Vec<RequestRecord>,
    /// For a child process: from its spawn to its first connection (its first byte on the
    /// wire).
    pub first_connect: Option<Duration>,
}

/// What every run needs.
#[derive(Debug)]
pub struct Ctx {
    pub runtime: tokio::runtime::Runtime,
    pub vault_proxy: Proxy,
    pub aws_proxy: Proxy,
    /// Plain HTTP or TLS (then `ca_file` is the CA every client must trust).
    pub transport: Transport,
    pub ca_file: Option<PathBuf>,
    /// The release `ci-secrets`.
    pub cli: Option<PathBuf>,
    /// `bao` and `aws` for the script contender.
    pub bao: Option<PathBuf>,
    pub aws_cli: Option<PathBuf>,
    /// Scratch directory (payload files, scripts, the tools' HOME).
    pub work: PathBuf,
}

/// The host environment the AWS SDK sees: the endpoint at the proxy, no credentials, no
/// IMDS (the OIDC path needs none).
fn aws_env(endpoint: &str) -> Vec<(String, String)> {
    vec![
        ("AWS_ENDPOINT_URL".to_owned(), endpoint.to_owned()),
        ("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned()),
    ]
}

/// Checks that every expected variable came back with its value.
fn check_values(
    workload: &Workload,
    got: &BTreeMap<String, String>,
    contender: Contender,
) -> Result<()> {
    let expected = workload.expected_values();
    for (key, value) in &expected {
        match got.get(key) {
            Some(v) if v == value => {}
            Some(_) => bail!("{}: {key} has a wrong value", contender.label()),
            None => bail!("{}: {key} is missing", contender.label()),
        }
    }
    if got.len() != expected.len() {
        bail!(
            "{}: {} variables, expected {}",
            contender.label(),
            got.len(),
            expected.len()
        );
    }
    Ok(())
}

impl Ctx {
    fn reset(&self) {
        self.vault_proxy.reset_stats();
        self.aws_proxy.reset_stats();
    }

    fn sample(&self, wall: Duration, reported: Option<BTreeMap<String, u64>>) -> Sample {
        Sample {
            wall,
            vault: self.vault_proxy.stats(),
            aws: self.aws_proxy.stats(),
            reported,
            vault_conns: self.vault_proxy.connections(),
            aws_conns: self.aws_proxy.connections(),
            aws_reqs: self.aws_proxy.requests(),
            first_connect: None,
        }
    }

    /// From `spawned` to the first connection either proxy saw.
    fn first_connect(&self, spawned: Instant) -> Option<Duration> {
        self.vault_proxy
            .connections()
            .into_iter()
            .chain(self.aws_proxy.connections())
            .map(|c| c.opened.saturating_duration_since(spawned))
            .min()
    }

    /// The environment our providers are built from: this process's, with the CA settings
    /// of the transport (none for plain HTTP).
    pub(super) fn provider_env(&self) -> Environment {
        let ca = transport::client_env(self.ca_file.as_deref());
        let captured = Environment::capture();
        captured
            .iter()
            .filter(|(k, _)| !ca.iter().any(|(c, _)| c == k))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .chain(
                ca.iter()
                    .filter_map(|(k, v)| Some(((*k).to_owned(), v.clone()?))),
            )
            .collect()
    }

    /// Runs `contender` once on `workload`. `payload_json` names Vault at the proxy.
    pub fn run(
        &self,
        contender: Contender,
        workload: &Workload,
        payload_json: &str,
    ) -> Result<Sample> {
        match contender {
            Contender::Library => self.library(workload, payload_json),
            Contender::Cli => self.cli(workload, payload_json),
            Contender::Reproduction => self.reproduction(workload, payload_json),
            Contender::Script => self.script(workload, payload_json),
        }
    }

    fn library(&self, workload: &Workload, payload_json: &str) -> Result<Sample> {
        let payload = JobPayload::from_json(payload_json)?;
        let aws_url = self.aws_proxy.url();
        self.reset();
        let start = Instant::now();
        let result = self.runtime.block_on(async {
            let resolver = Resolver::builder()
                .with_default_providers_from(&self.provider_env())?
                // The default AWS provider reads this process's environment; the bench
                // injects the endpoint (the proxy) through the builder instead.
                .with_provider(Arc::new(
                    AwsSecretsManagerBuilder::new()
                        .with_env_vars(aws_env(&aws_url))
                        .build()?,
                ))
                .with_options(ResolveOptions::from_job_variables(&payload.variables))
                .build();
            Ok::<_, secrets_core::Error>(resolver.resolve_payload(&payload).await)
        });
        let wall = start.elapsed();
        let mut resolution = match result? {
            Ok(r) => r,
            Err(failure) => bail!("library: {failure}"),
        };
        // The time is until the variables are there; the revoke, still in flight then, is
        // waited for before the counts are read (the report and the proxies then count it).
        self.runtime.block_on(resolution.close());
        let got = resolution
            .variables
            .iter()
            .map(|v| (v.key.clone(), v.value.expose().to_owned()))
            .collect();
        check_values(workload, &got, Contender::Library)?;
        Ok(self.sample(wall, Some(resolution.report.requests.clone())))
    }

    fn cli(&self, workload: &Workload, payload_json: &str) -> Result<Sample> {
        let cli = self
            .cli
            .as_ref()
            .context("the release ci-secrets is not built")?;
        let file = self.work.join("payload.json");
        write_private(&file, payload_json)?;
        let mut command = self.cli_command(cli, &file);
        self.reset();
        let start = Instant::now();
        let output = command.output().context("cannot run ci-secrets")?;
        let wall = start.elapsed();
        let first_connect = self.first_connect(start);
        if !output.status.success() {
            bail!(
                "ci-secrets failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&output.stdout).context("ci-secrets printed no JSON")?;
        let got = doc["variables"]
            .as_array()
            .context("no variables in the JSON")?
            .iter()
            .map(|v| {
                (
                    v["key"].as_str().unwrap_or_default().to_owned(),
                    v["value"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        check_values(workload, &got, Contender::Cli)?;
        let reported = serde_json::from_value(doc["report"]["requests"].clone())
            .context("no report.requests in the JSON")?;
        Ok(Sample {
            first_connect,
            ..self.sample(wall, Some(reported))
        })
    }

    /// The `ci-secrets resolve` command for `payload`, environment included.
    pub fn cli_command(&self, cli: &Path, payload: &Path) -> Command {
        let mut command = Command::new(cli);
        command
            .args(["resolve", "--job-payload"])
            .arg(payload)
            .args(["--format", "json", "--quiet"])
            .stdin(Stdio::null());
        self.tool_env(&mut command);
        command
    }

    /// A clean environment for a child: the AWS endpoint at the proxy, no profile, no keys.
    pub(super) fn tool_env(&self, command: &mut Command) {
        for var in [
            "AWS_PROFILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL_STS",
            "AWS_ENDPOINT_URL_SECRETS_MANAGER",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_ARN",
            "VAULT_TOKEN",
            "BAO_TOKEN",
        ] {
            command.env_remove(var);
        }
        for (k, v) in aws_env(&self.aws_proxy.url()) {
            command.env(k, v);
        }
        for (k, v) in transport::client_env(self.ca_file.as_deref()) {
            match v {
                Some(v) => command.env(k, v),
                None => command.env_remove(k),
            };
        }
        command
            .env("HOME", self.work.join("home"))
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_DEFAULT_REGION", AWS_REGION);
    }

    /// GitLab Runner's algorithm (runner-semantics §2.3): sequential, in random order, for
    /// each secret a new provider (a new HTTP client) resolving that secret alone: a Vault
    /// login and a read (never a revoke), or an STS call and a `GetSecretValue` (no batch).
    fn reproduction(&self, workload: &Workload, payload_json: &str) -> Result<Sample> {
        let payload = JobPayload::from_json(payload_json)?;
        let variables = Variables::new(payload.variables.clone());
        let lookup = |name: &str| variables.get(name).map(|v| v.into_owned());
        let mut order: Vec<usize> = (0..payload.secrets.len()).collect();
        shuffle(&mut order);
        let aws_url = self.aws_proxy.url();
        let ctx = ResolveContext::default();
        self.reset();
        let start = Instant::now();
        let got = self.runtime.block_on(async {
            let mut got = BTreeMap::new();
            for index in order {
                let (key, secret) = payload
                    .secrets
                    .get_index(index)
                    .ok_or_else(|| anyhow!("no secret {index}"))?;
                let mut expanded = secret.clone();
                expanded.expand_variables(&lookup);
                let provider: Box<dyn SecretProvider> = match secret.providers().as_slice() {
                    [ProviderKind::Vault] => Box::new(
                        VaultProviderBuilder::new()
                            .with_env(self.provider_env())
                            .with_revoke_token(false)
                            .build()?,
                    ),
                    [ProviderKind::AwsSecretsManager] => Box::new(
                        AwsSecretsManagerBuilder::new()
                            .with_env_vars(aws_env(&aws_url))
                            .with_batching(false)
                            .build()?,
                    ),
                    other => bail!("{key}: unexpected providers {other:?}"),
                };
                let value = resolve_alone(provider.as_ref(), key, expanded, &ctx).await?;
                got.insert(key.clone(), value);
            }
            Ok::<_, anyhow::Error>(got)
        })?;
        let wall = start.elapsed();
        check_values(workload, &got, Contender::Reproduction)?;
        let reported = counts_of(&ctx);
        Ok(self.sample(wall, Some(reported)))
    }

    /// A job script: one `bao write auth/jwt/login`, then `bao kv get` per Vault secret; one
    /// `aws sts assume-role-with-web-identity` (as in seed 001), then
    /// `aws secretsmanager get-secret-value` per AWS secret. All through the proxies.
    fn script(&self, workload: &Workload, payload_json: &str) -> Result<Sample> {
        let bao = self.bao.as_ref().context("bao is not installed")?;
        let aws = self
            .aws_cli
            .as_ref()
            .context("the AWS CLI is not installed")?;
        let payload: serde_json::Value = serde_json::from_str(payload_json)?;
        let token = |name: &str| -> String {
            payload["variables"]
                .as_array()
                .and_then(|vars| vars.iter().find(|v| v["key"] == name))
                .and_then(|v| v["value"].as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let text = job_script(workload, bao, aws);
        let file = self.work.join("job.sh");
        write_private(&file, &text)?;
        let mut command = Command::new("bash");
        command.arg(&file).stdin(Stdio::null());
        self.tool_env(&mut command);
        command
            .env("VAULT_ADDR", self.vault_proxy.url())
            .env("BAO_ADDR", self.vault_proxy.url())
            .env("VAULT_ID_TOKEN", token("VAULT_ID_TOKEN"))
            .env("AWS_ID_TOKEN", token("AWS_ID_TOKEN"));
        self.reset();
        let start = Instant::now();
        let output = command.output().context("cannot run bash")?;
        let wall = start.elapsed();
        if !output.status.success() {
            bail!(
                "the job script failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let keys = workload
            .expected_values()
            .into_keys()
            .filter(|k| k.starts_with('V'));
        let keys: Vec<String> = keys
            .chain(
                workload
                    .expected_values()
                    .into_keys()
                    .filter(|k| k.starts_with('A')),
            )
            .collect();
        let got = keys
            .into_iter()
            .zip(stdout.lines().map(str::to_owned))
            .collect();
        check_values(workload, &got, Contender::Script)?;
        Ok(self.sample(wall, None))
    }
}

/// The job script for `workload` (ID tokens in `$VAULT_ID_TOKEN` and `$AWS_ID_TOKEN`).
fn job_script(workload: &Workload, bao: &Path, aws: &Path) -> String {
    let bao = bao.display();
    let aws = aws.display();
    let mut s = String::from("set -euo pipefail\n");
    let mut outputs = Vec::new();
    if !workload.vault.is_empty() {
        let _ = writeln!(
            s,
            "export VAULT_TOKEN=$({bao} write -field=token auth/jwt/login role={VAULT_ROLE} jwt=\"$VAULT_ID_TOKEN\")"
        );
        for (i, v) in workload.vault.iter().enumerate() {
            let _ = writeln!(
                s,
                "V_{i:04}=$({bao} kv get -field={} -mount={VAULT_MOUNT} {})",
                v.field, v.path
            );
            outputs.push(format!("V_{i:04}"));
        }
    }
    if !workload.aws.is_empty() {
        let _ = writeln!(
            s,
            "STS=($({aws} sts assume-role-with-web-identity --role-arn {AWS_ROLE_ARN} \
             --role-session-name {AWS_SESSION} --web-identity-token \"$AWS_ID_TOKEN\" \
             --duration-seconds 3600 \
             --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text))\n\
             export AWS_ACCESS_KEY_ID=\"${{STS[0]}}\"\n\
             export AWS_SECRET_ACCESS_KEY=\"${{STS[1]}}\"\n\
             export AWS_SESSION_TOKEN=\"${{STS[2]}}\""
        );
        for (i, a) in workload.aws.iter().enumerate() {
            let version = a
                .version_id
                .as_ref()
                .map(|v| format!(" --version-id {v}"))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "A_{i:04}=$({aws} secretsmanager get-secret-value --secret-id {}{version} \
                 --query SecretString --output text)",
                a.secret_id
            );
            outputs.push(format!("A_{i:04}"));
        }
    }
    for name in outputs {
        let _ = writeln!(s, "printf '%s\\n' \"${name}\"");
    }
    s
}

/// Go map iteration order stands for "random": a Fisher-Yates shuffle seeded by the clock.
pub(super) fn shuffle(items: &mut [usize]) {
    let mut state = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64)
        | 1;
    for i in (1..items.len()).rev() {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = (state % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// Writes `text` to `path`, mode 0600 (payloads hold the test ID tokens).
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    use secrets_core::private_file::{Existing, write};
    write(path, text.as_bytes(), Existing::Replace)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// One secret resolved alone, as the runner resolves each secret; its error aborts the run,
/// as in the runner.
pub(super) async fn resolve_alone(
    provider: &dyn SecretProvider,
    key: &str,
    secret: Secret,
    ctx: &ResolveContext,
) -> Result<String> {
    let request = SecretRequest {
        variable: key.to_owned(),
        secret,
    };
    let resolved = provider
        .resolve(std::slice::from_ref(&request), ctx)
        .await
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("{key}: no result"))?
        .map_err(|e| anyhow!("reproduction: {e}"))?;
    Ok(resolved.value.expose().to_owned())
}

/// The requests `ctx` counted, by kind.
pub(super) fn counts_of(ctx: &ResolveContext) -> BTreeMap<String, u64> {
    ctx.requests
        .snapshot()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: Vec<usize> = (0..100).collect();
        shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn the_job_script_logs_in_once_and_reads_each_secret() {
        let w4 = Workload::all(true)
            .into_iter()
            .find(|w| w.name == "W4")
            .unwrap();
        let s = job_script(&w4, Path::new("/b/bao"), Path::new("/b/aws"));
        assert_eq!(s.matches("auth/jwt/login").count(), 1);
        assert_eq!(s.matches("assume-role-with-web-identity").count(), 1);
        assert_eq!(s.matches("kv get").count(), 20);
        assert_eq!(s.matches("get-secret-value").count(), 20);
        assert_eq!(s.matches("--version-id").count(), 4);
        assert!(!s.contains("eyJ"), "no token in the script");
    }
}
