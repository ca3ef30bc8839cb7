//! The workloads, their job payloads, the request counts they should cost, and the data the
//! bench seeds for them in OpenBao and LocalStack.

use anyhow::{Context as _, Result, bail};
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// kv-v2 mount of the bench's Vault secrets (the dev server's `secret/`).
pub const VAULT_MOUNT: &str = "secret";
/// Their paths' prefix inside the mount (`ci-read` reads `secret/data/ci/*`).
pub const VAULT_PREFIX: &str = "ci/bench";
/// The Vault JWT role every workload logs in with (docs/e2e-fixtures.md).
pub const VAULT_ROLE: &str = "ci";
/// The role every AWS workload assumes through OIDC; LocalStack gives its credentials to
/// account 000000000000, where the bench's secrets live.
pub const AWS_ROLE_ARN: &str = "arn:aws:iam::000000000000:role/gitlab-ci-bench";
/// The region of the bench's AWS secrets.
pub const AWS_REGION: &str = "us-east-1";
/// The session name every AWS secret asks for.
pub const AWS_SESSION: &str = "bench-1001-42";
/// Vault paths W5 at 1000 secrets needs (two fields each).
#[cfg(test)]
const VAULT_PATHS: usize = 250;
/// AWS secrets W5 at 1000 secrets needs.
#[cfg(test)]
const AWS_SECRETS: usize = 500;
/// Bumped when the seeded data changes, so an older seed is redone.
const SEED_VERSION: &str = "bench-seed-v1";

/// One Vault secret of a workload: kv-v2 `secret/ci/bench/pNNN`, field `fN`.
#[derive(Debug, Clone)]
pub struct VaultRef {
    pub path: String,
    pub field: String,
    pub expected: String,
}

/// One AWS secret of a workload: `bench/sNNN`, current or pinned to its version.
#[derive(Debug, Clone)]
pub struct AwsRef {
    pub secret_id: String,
    pub version_id: Option<String>,
    pub expected: String,
}

/// A job's secrets.
#[derive(Debug, Clone)]
pub struct Workload {
    /// `W1`, `W4`, `W5-100`, ...
    pub name: String,
    /// One line for the report.
    pub description: String,
    pub vault: Vec<VaultRef>,
    pub aws: Vec<AwsRef>,
}

fn vault_value(path: usize, field: usize) -> String {
    format!("bench-vault-p{path:03}-f{field}")
}

fn aws_value(index: usize) -> String {
    format!("bench-aws-s{index:03}")
}

/// The version id the seed gives `bench/sNNN` (its `ClientRequestToken`).
fn aws_version(index: usize) -> String {
    format!("b0000000-0000-4000-8000-{index:012}")
}

/// `count` Vault secrets, two fields per path.
fn vault_secrets(count: usize) -> Vec<VaultRef> {
    (0..count)
        .map(|i| VaultRef {
            path: format!("{VAULT_PREFIX}/p{:03}", i / 2),
            field: format!("f{}", i % 2),
            expected: vault_value(i / 2, i % 2),
        })
        .collect()
}

/// `count` distinct AWS secrets, the last fifth pinned to their version id.
fn aws_secrets(count: usize) -> Vec<AwsRef> {
    let pinned_from = count - count / 5;
    (0..count)
        .map(|i| AwsRef {
            secret_id: format!("bench/s{i:03}"),
            version_id: (i >= pinned_from).then(|| aws_version(i)),
            expected: aws_value(i),
        })
        .collect()
}

impl Workload {
    /// W1, W2, W3, W4 and W5 at 10, 100 and 1000 secrets (`quick`: W1 and W4 only).
    pub fn all(quick: bool) -> Vec<Workload> {
        let w = |name: &str, description: &str, vault: usize, aws: usize| Workload {
            name: name.to_owned(),
            description: description.to_owned(),
            vault: vault_secrets(vault),
            aws: aws_secrets(aws),
        };
        let mut out = vec![w("W1", "one Vault secret", 1, 0)];
        if !quick {
            out.push(w("W2", "20 Vault secrets over 10 paths, one role", 20, 0));
            out.push(w(
                "W3",
                "20 AWS secrets, one role through OIDC, 4 version-pinned",
                0,
                20,
            ));
        }
        out.push(w("W4", "W2 + W3 in one job (40 secrets)", 20, 20));
        if !quick {
            for n in [10, 100, 1000] {
                out.push(w(
                    &format!("W5-{n}"),
                    &format!(
                        "W4's shape at {n} secrets: {} Vault over {} paths, {} AWS ({} pinned)",
                        n / 2,
                        n / 2 / 2 + n / 2 % 2,
                        n / 2,
                        n / 2 / 5
                    ),
                    n / 2,
                    n / 2,
                ));
            }
        }
        out
    }

    pub fn secrets(&self) -> usize {
        self.vault.len() + self.aws.len()
    }

    fn vault_paths(&self) -> u64 {
        let mut paths: Vec<&str> = self.vault.iter().map(|v| v.path.as_str()).collect();
        paths.sort_unstable();
        paths.dedup();
        paths.len() as u64
    }

    fn aws_pinned(&self) -> u64 {
        self.aws.iter().filter(|a| a.version_id.is_some()).count() as u64
    }

    /// What our resolver should cost: one login (and revoke) per identity, each distinct
    /// path read once, one STS call, current versions 20 per batch, pinned ones one by one.
    pub fn expected_ours(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        if !self.vault.is_empty() {
            m.insert("vault_login".to_owned(), 1);
            m.insert("vault_read".to_owned(), self.vault_paths());
            m.insert("vault_revoke".to_owned(), 1);
        }
        if !self.aws.is_empty() {
            let current = self.aws.len() as u64 - self.aws_pinned();
            m.insert("sts_assume_role".to_owned(), 1);
            if current > 0 {
                m.insert("sm_batch_get".to_owned(), current.div_ceil(20));
            }
            if self.aws_pinned() > 0 {
                m.insert("sm_get".to_owned(), self.aws_pinned());
            }
        }
        m
    }

    /// What GitLab Runner's algorithm costs: per secret a login and a read (no revoke), or
    /// an STS call and a `GetSecretValue`.
    pub fn expected_reproduction(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        let v = self.vault.len() as u64;
        let a = self.aws.len() as u64;
        if v > 0 {
            m.insert("vault_login".to_owned(), v);
            m.insert("vault_read".to_owned(), v);
        }
        if a > 0 {
            m.insert("sts_assume_role".to_owned(), a);
            m.insert("sm_get".to_owned(), a);
        }
        m
    }

    /// HTTP requests each server should see for these counts.
    pub fn split_by_server(counts: &BTreeMap<String, u64>) -> (u64, u64) {
        let vault = counts
            .iter()
            .filter(|(k, _)| k.starts_with("vault_"))
            .map(|(_, v)| v)
            .sum();
        let aws = counts
            .iter()
            .filter(|(k, _)| !k.starts_with("vault_"))
            .map(|(_, v)| v)
            .sum();
        (vault, aws)
    }

    /// The job payload GitLab would send for this workload: Vault at `vault_url`, the ID
    /// tokens among the variables, every secret `file: false`.
    pub fn payload(&self, vault_url: &str, vault_jwt: &str, aws_jwt: &str) -> Value {
        let mut secrets = serde_json::Map::new();
        for (i, v) in self.vault.iter().enumerate() {
            secrets.insert(
                format!("V_{i:04}"),
                json!({
                    "vault": {
                        "server": {
                            "url": vault_url,
                            "namespace": null,
                            "auth": {
                                "name": "jwt",
                                "path": "jwt",
                                "data": { "jwt": "$VAULT_ID_TOKEN", "role": VAULT_ROLE }
                            }
                        },
                        "engine": { "name": "kv-v2", "path": VAULT_MOUNT },
                        "path": v.path,
                        "field": v.field
                    },
                    "file": false
                }),
            );
        }
        for (i, a) in self.aws.iter().enumerate() {
            secrets.insert(
                format!("A_{i:04}"),
                json!({
                    "aws_secrets_manager": {
                        "secret_id": a.secret_id,
                        "version_id": a.version_id,
                        "server": {
                            "region": AWS_REGION,
                            "jwt": "$AWS_ID_TOKEN",
                            "role_arn": AWS_ROLE_ARN,
                            "role_session_name": AWS_SESSION
                        }
                    },
                    "file": false
                }),
            );
        }
        let variable = |key: &str, value: &str| json!({ "key": key, "value": value, "public": false, "masked": true });
        json!({
            "secrets": secrets,
            "variables": [
                variable("VAULT_ID_TOKEN", vault_jwt),
                variable("AWS_ID_TOKEN", aws_jwt),
            ]
        })
    }

    /// The expected value of each variable of [`Self::payload`].
    pub fn expected_values(&self) -> BTreeMap<String, String> {
        let vault = self
            .vault
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("V_{i:04}"), v.expected.clone()));
        let aws = self
            .aws
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("A_{i:04}"), a.expected.clone()));
        vault.chain(aws).collect()
    }
}

/// A `.gitlab-ci.yml` with one job of `count` secrets (W4's shape), for `ci-secrets check`.
pub fn gitlab_ci_yaml(count: usize) -> String {
    let mut out = String::from(
        "variables:\n  VAULT_SERVER_URL: https://vault.example.com\n  VAULT_AUTH_ROLE: ci\n  \
         AWS_REGION: us-east-1\n  AWS_ROLE_ARN: 'arn:aws:iam::000000000000:role/gitlab-ci-bench'\n\
         deploy:\n  id_tokens:\n    VAULT_ID_TOKEN:\n      aud: https://vault.example.com\n    \
         AWS_ID_TOKEN:\n      aud: sts.amazonaws.com\n  secrets:\n",
    );
    for v in 0..count / 2 {
        out.push_str(&format!(
            "    V_{v:04}:\n      vault: ci/bench/p{:03}/f{}@secret\n      token: $VAULT_ID_TOKEN\n      file: false\n",
            v / 2,
            v % 2
        ));
    }
    for a in 0..count - count / 2 {
        out.push_str(&format!(
            "    A_{a:04}:\n      aws_secrets_manager:\n        secret_id: bench/s{a:03}\n"
        ));
        if a % 5 == 4 {
            out.push_str(&format!("        version_id: {}\n", aws_version(a)));
        }
        out.push_str("      token: $AWS_ID_TOKEN\n");
    }
    out.push_str("  script:\n    - ./deploy.sh\n");
    out
}

/// Seeds the bench's first `count` Vault paths (root token, direct to OpenBao) unless a
/// previous run seeded at least as many.
pub fn seed_vault(http: &Client, vault_addr: &str, root_token: &str, count: usize) -> Result<bool> {
    let marker = format!("{vault_addr}/v1/{VAULT_MOUNT}/data/{VAULT_PREFIX}/seeded");
    let seeded = http
        .get(&marker)
        .header("X-Vault-Token", root_token)
        .send()
        .context("GET the bench's Vault seed marker")?;
    if seeded.status().is_success() {
        let body: Value = seeded.json()?;
        let data = &body["data"]["data"];
        if data["version"] == SEED_VERSION && data["paths"].as_u64() >= Some(count as u64) {
            return Ok(false);
        }
    }
    let put = |path: &str, data: Value| -> Result<()> {
        let url = format!("{vault_addr}/v1/{VAULT_MOUNT}/data/{path}");
        let response = http
            .put(&url)
            .header("X-Vault-Token", root_token)
            .json(&json!({ "data": data }))
            .send()
            .with_context(|| format!("PUT {VAULT_MOUNT}/data/{path}"))?;
        if !response.status().is_success() {
            bail!("PUT {VAULT_MOUNT}/data/{path}: HTTP {}", response.status());
        }
        Ok(())
    };
    for p in 0..count {
        put(
            &format!("{VAULT_PREFIX}/p{p:03}"),
            json!({ "f0": vault_value(p, 0), "f1": vault_value(p, 1) }),
        )?;
    }
    put(
        &format!("{VAULT_PREFIX}/seeded"),
        json!({ "version": SEED_VERSION, "paths": count }),
    )?;
    Ok(true)
}

/// Seeds the bench's first `count` AWS secrets in LocalStack (boto3 from the LocalStack
/// venv) unless a previous run seeded at least as many. Each `bench/sNNN` gets the version
/// id [`aws_version`].
pub fn seed_aws(python: &Path, endpoint: &str, home: &Path, count: usize) -> Result<bool> {
    let script = format!(
        r#"
import sys, boto3
from botocore.exceptions import ClientError
sm = boto3.client("secretsmanager", endpoint_url="{endpoint}", region_name="{AWS_REGION}",
                  aws_access_key_id="test", aws_secret_access_key="test")
try:
    version, done = sm.get_secret_value(SecretId="bench/seeded")["SecretString"].split(":")
    if version == "{SEED_VERSION}" and int(done) >= {count}:
        print("already"); sys.exit(0)
except (ClientError, ValueError):
    pass
for i in range({count}):
    name = "bench/s%03d" % i
    value = "bench-aws-s%03d" % i
    token = "b0000000-0000-4000-8000-%012d" % i
    try:
        sm.create_secret(Name=name, SecretString=value, ClientRequestToken=token)
    except ClientError as e:
        # Seeded by an earlier, smaller run: same name, same value, same version id.
        if e.response["Error"]["Code"] != "ResourceExistsException":
            raise
try:
    sm.create_secret(Name="bench/seeded", SecretString="{SEED_VERSION}:{count}")
except ClientError:
    sm.put_secret_value(SecretId="bench/seeded", SecretString="{SEED_VERSION}:{count}")
print("seeded")
"#
    );
    let output = Command::new(python)
        .args(["-c", &script])
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .output()
        .context("cannot run the LocalStack venv's python")?;
    if !output.status.success() {
        bail!(
            "seeding the bench's AWS secrets failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim() == "seeded")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn w4_costs_what_the_targets_say() {
        let w4 = Workload::all(true)
            .into_iter()
            .find(|w| w.name == "W4")
            .unwrap();
        let expected: BTreeMap<String, u64> = [
            ("vault_login", 1),
            ("vault_read", 10),
            ("vault_revoke", 1),
            ("sts_assume_role", 1),
            ("sm_batch_get", 1),
            ("sm_get", 4),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(w4.expected_ours(), expected);
        assert_eq!(Workload::split_by_server(&expected), (12, 6));
        assert_eq!(w4.expected_reproduction()["vault_login"], 20);
        assert_eq!(w4.secrets(), 40);
    }

    #[test]
    fn w5_sizes_fit_the_seed() {
        let all = Workload::all(false);
        let big = all.iter().find(|w| w.name == "W5-1000").unwrap();
        assert_eq!(big.secrets(), 1000);
        assert_eq!(big.vault_paths(), VAULT_PATHS as u64);
        assert_eq!(big.aws.len(), AWS_SECRETS);
        assert_eq!(big.expected_ours()["sm_batch_get"], 20);
        assert_eq!(big.expected_ours()["sm_get"], 100);
        let payload = big.payload("http://127.0.0.1:1", "a", "b");
        assert_eq!(payload["secrets"].as_object().unwrap().len(), 1000);
        assert_eq!(big.expected_values().len(), 1000);
    }

    #[test]
    fn the_generated_gitlab_ci_parses() {
        let yaml = gitlab_ci_yaml(1000);
        let config = secrets_core::gitlab_ci::CiConfig::from_yaml(&yaml).unwrap();
        let job = config.job("deploy").unwrap();
        let settings = |name: &str| {
            job.variables()
                .iter()
                .find(|v| v.key == name)
                .map(|v| v.value.clone())
        };
        let secrets = job.secrets_payload(&settings).unwrap();
        assert_eq!(secrets.len(), 1000);
    }
}
