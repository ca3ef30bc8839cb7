//! Seeds OpenBao over its HTTP API with the root token (`docs/e2e-fixtures.md`).

use anyhow::{Context as _, Result, bail};
use reqwest::Method;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The dev server's root token.
pub const ROOT_TOKEN: &str = "root";
/// The audience every fixture role binds.
const AUDIENCE: &str = auth_oidc::testing::DEFAULT_AUDIENCE;
/// A fixed TOTP seed (base32), so codes are reproducible.
const TOTP_SEED: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
/// How long a write may keep failing while a new kv-v2 mount upgrades.
const UPGRADE_WAIT: Duration = Duration::from_secs(30);

const CI_READ_POLICY: &str = r#"
path "secret/data/ci/*" { capabilities = ["read"] }
path "ops/data/production/*" { capabilities = ["read"] }
path "kv1/ci/*" { capabilities = ["read"] }
path "artifactory/production/*" { capabilities = ["read"] }
path "totp/code/ci" { capabilities = ["read"] }
"#;

const PRODUCTION_POLICY: &str = r#"
# Read-only permission on 'ops/data/production/*' path
path "ops/data/production/*" { capabilities = ["read"] }
"#;

pub(crate) struct Vault<'a> {
    pub(crate) http: &'a Client,
    pub(crate) addr: &'a str,
    pub(crate) namespace: Option<&'a str>,
}

impl Vault<'_> {
    pub(crate) fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let url = format!("{}/v1/{path}", self.addr);
        let started = Instant::now();
        loop {
            let mut request = self
                .http
                .request(method.clone(), &url)
                .header("X-Vault-Token", ROOT_TOKEN);
            if let Some(ns) = self.namespace {
                request = request.header("X-Vault-Namespace", ns);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .with_context(|| format!("OpenBao {method} {path}"))?;
            let status = response.status();
            let text = response.text().unwrap_or_default();
            if status.is_success() {
                return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
            }
            // Vault error bodies are `{"errors": [...]}` and never echo request values.
            let errors = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("errors").cloned())
                .unwrap_or(Value::Null);
            let upgrading = errors.to_string().contains("pgrad");
            if upgrading && started.elapsed() < UPGRADE_WAIT {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            let ns = self
                .namespace
                .map(|n| format!(" (namespace {n})"))
                .unwrap_or_default();
            bail!("OpenBao {method} {path}{ns}: HTTP {status}: {errors}");
        }
    }

    pub(crate) fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.call(Method::POST, path, Some(&body))
    }

    pub(crate) fn mount(&self, path: &str, engine: &str, kv_version: Option<&str>) -> Result<()> {
        let mut body = json!({ "type": engine });
        if let Some(version) = kv_version {
            body["options"] = json!({ "version": version });
        }
        self.post(&format!("sys/mounts/{path}"), body).map(drop)
    }

    pub(crate) fn policy(&self, name: &str, hcl: &str) -> Result<()> {
        self.call(
            Method::PUT,
            &format!("sys/policies/acl/{name}"),
            Some(&json!({ "policy": hcl })),
        )
        .map(drop)
    }

    pub(crate) fn kv2(&self, mount: &str, path: &str, data: Value) -> Result<()> {
        self.post(&format!("{mount}/data/{path}"), json!({ "data": data }))
            .map(drop)
    }

    fn jwt_auth(&self, mount: &str, issuer: &str, roles: &[(&str, Value)]) -> Result<()> {
        self.post(&format!("sys/auth/{mount}"), json!({ "type": "jwt" }))?;
        self.post(
            &format!("auth/{mount}/config"),
            json!({
                "oidc_discovery_url": issuer,
                "bound_issuer": issuer,
                "default_role": "ci",
            }),
        )?;
        for (name, role) in roles {
            self.post(&format!("auth/{mount}/role/{name}"), role.clone())?;
        }
        Ok(())
    }
}

fn ci_role() -> Value {
    json!({
        "role_type": "jwt",
        "policies": ["ci-read"],
        "token_explicit_max_ttl": 300,
        "user_claim": "user_email",
        "bound_audiences": [AUDIENCE],
        "bound_claims_type": "glob",
        "bound_claims": {
            "project_path": "mygroup/myproject",
            "ref": "main",
            "ref_type": "branch",
        },
    })
}

/// The role of seed 002, as GitLab documents it.
fn production_role() -> Value {
    json!({
        "role_type": "jwt",
        "policies": ["myproject-production"],
        "token_explicit_max_ttl": 60,
        "user_claim": "user_email",
        "bound_audiences": AUDIENCE,
        "bound_claims_type": "glob",
        "bound_claims": {
            "project_id": "42",
            "ref_protected": "true",
            "ref_type": "tag",
            "ref": "auto-deploy-*",
        },
    })
}

/// Seeds the root namespace and `team1`. `issuer` is the OIDC issuer URL (must be serving).
pub fn seed(http: &Client, addr: &str, issuer: &str) -> Result<()> {
    let root = Vault {
        http,
        addr,
        namespace: None,
    };
    // Engines (the dev server already mounts kv-v2 at `secret/`).
    root.mount("ops", "kv", Some("2"))?;
    root.mount("kv1", "kv", Some("1"))?;
    root.mount("artifactory", "kv", Some("1"))?;
    root.mount("totp", "totp", None)?;

    root.policy("ci-read", CI_READ_POLICY)?;
    root.policy("myproject-production", PRODUCTION_POLICY)?;
    let roles = [
        ("ci", ci_role()),
        ("myproject-production", production_role()),
    ];
    root.jwt_auth("jwt", issuer, &roles)?;
    root.jwt_auth("jwt-alt", issuer, &roles)?;

    root.kv2(
        "secret",
        "ci/app",
        json!({
            "username": "app-user",
            "password": "app-password-1234",
            "port": 5432,
            "enabled": true,
            "nested": { "a": 1 },
        }),
    )?;
    root.kv2(
        "secret",
        "ci/deleted",
        json!({ "password": "deleted-password" }),
    )?;
    root.call(Method::DELETE, "secret/data/ci/deleted", None)?;
    root.kv2(
        "secret",
        "admin/root",
        json!({ "password": "root-password-9876" }),
    )?;
    root.kv2(
        "ops",
        "production/db",
        json!({ "password": "this-is-a-password", "user": "db-user" }),
    )?;
    // A field holding a JSON object as text, for `ci-secrets get --spread`.
    root.kv2(
        "ops",
        "production/app",
        json!({ "env": r#"{"API_URL":"https://api.example.com","WORKERS":4,"DEBUG":false}"# }),
    )?;
    root.post("kv1/ci/legacy", json!({ "api_key": "legacy-api-key-5678" }))?;
    root.post(
        "artifactory/production/jfrog",
        json!({ "access_token": "jfrog-token-abcdef12" }),
    )?;
    root.post(
        "totp/keys/ci",
        json!({
            "generate": false,
            "key": TOTP_SEED,
            "issuer": "ci-secrets-e2e",
            "account_name": "ci",
        }),
    )?;

    // Namespace team1: its own kv-v2 `secret/`, policy, and `jwt/` with the `ci` role.
    root.post("sys/namespaces/team1", json!({}))?;
    let team1 = Vault {
        http,
        addr,
        namespace: Some("team1"),
    };
    team1.mount("secret", "kv", Some("2"))?;
    team1.policy("ci-read", CI_READ_POLICY)?;
    team1.jwt_auth("jwt", issuer, &[("ci", ci_role())])?;
    team1.kv2("secret", "ci/app", json!({ "password": "team1-password" }))?;
    crate::seed_gitlab_sm::seed(http, addr, issuer)?;

    // Check the seed reads back (catches a kv-v2 upgrade that swallowed a write).
    let app = root.call(Method::GET, "secret/data/ci/app", None)?;
    if app["data"]["data"]["username"] != "app-user" {
        bail!("OpenBao seed check failed: secret/ci/app does not read back");
    }
    let code = root.call(Method::GET, "totp/code/ci", None)?;
    if code["data"]["code"].as_str().is_none_or(str::is_empty) {
        bail!("OpenBao seed check failed: totp/code/ci has no code");
    }
    Ok(())
}
