//! Seeds OpenBao with GitLab Secrets Manager's layout (`docs/e2e-fixtures.md`): a project
//! namespace `group_12/project_34` and a group namespace `group_12/group_12`, each with a
//! jwt auth mount `pipeline_jwt` trusting the local issuer, the role `all_pipelines` (batch
//! tokens, bound audience = the OpenBao URL), a kv-v2 mount `secrets/kv` with data under
//! `explicit/<NAME>`, and a policy for pipelines.

use crate::seed_vault::Vault;
use anyhow::{Result, bail};
use reqwest::Method;
use reqwest::blocking::Client;
use serde_json::{Value, json};

/// The project namespace (`<namespace type>_<namespace id>/project_<project id>`).
pub const PROJECT_NAMESPACE: &str = "group_12/project_34";
/// The group namespace (`group_<root group id>/group_<group id>`).
pub const GROUP_NAMESPACE: &str = "group_12/group_12";

/// The project's pipeline policy: every secret but `explicit/FORBIDDEN`.
const PROJECT_POLICY: &str = r#"
path "secrets/kv/data/explicit/DB_PASSWORD" { capabilities = ["read"] }
path "secrets/kv/data/explicit/API_KEY" { capabilities = ["read"] }
path "secrets/kv/data/explicit/PORT" { capabilities = ["read"] }
path "secrets/kv/data/explicit/MISSING" { capabilities = ["read"] }
"#;

/// The group's pipeline policy.
const GROUP_POLICY: &str = r#"
path "secrets/kv/data/explicit/*" { capabilities = ["read"] }
"#;

/// `all_pipelines`: GitLab's role, bound to the OpenBao URL as audience and to the ids
/// its JWT carries.
fn all_pipelines(addr: &str, policy: &str, bound: Value) -> Value {
    json!({
        "role_type": "jwt",
        "token_type": "batch",
        "token_policies": [policy],
        "token_explicit_max_ttl": 300,
        "user_claim": "project_id",
        "bound_audiences": [addr],
        "bound_claims": bound,
    })
}

/// One GitLab secrets-manager namespace.
fn seed_namespace(
    http: &Client,
    addr: &str,
    issuer: &str,
    namespace: &str,
    policy: &str,
    bound: Value,
    secrets: &[(&str, Value)],
) -> Result<()> {
    let ns = Vault {
        http,
        addr,
        namespace: Some(namespace),
    };
    ns.post("sys/auth/pipeline_jwt", json!({ "type": "jwt" }))?;
    ns.post(
        "auth/pipeline_jwt/config",
        json!({ "oidc_discovery_url": issuer, "bound_issuer": issuer }),
    )?;
    ns.policy("pipelines_global", policy)?;
    ns.post(
        "auth/pipeline_jwt/role/all_pipelines",
        all_pipelines(addr, "pipelines_global", bound),
    )?;
    ns.mount("secrets/kv", "kv", Some("2"))?;
    for (name, value) in secrets {
        ns.kv2(
            "secrets/kv",
            &format!("explicit/{name}"),
            json!({ "value": value }),
        )?;
    }
    Ok(())
}

/// Creates `group_12` with `project_34` and `group_12` inside, then seeds both.
pub fn seed(http: &Client, addr: &str, issuer: &str) -> Result<()> {
    let root = Vault {
        http,
        addr,
        namespace: None,
    };
    root.post("sys/namespaces/group_12", json!({}))?;
    let group_12 = Vault {
        http,
        addr,
        namespace: Some("group_12"),
    };
    group_12.post("sys/namespaces/project_34", json!({}))?;
    group_12.post("sys/namespaces/group_12", json!({}))?;
    seed_namespace(
        http,
        addr,
        issuer,
        PROJECT_NAMESPACE,
        PROJECT_POLICY,
        json!({ "project_id": "34" }),
        &[
            ("DB_PASSWORD", json!("gsm-db-password-1")),
            ("API_KEY", json!("gsm-api-key-2")),
            ("PORT", json!(5432)),
            ("FORBIDDEN", json!("gsm-forbidden-3")),
        ],
    )?;
    seed_namespace(
        http,
        addr,
        issuer,
        GROUP_NAMESPACE,
        GROUP_POLICY,
        json!({ "namespace_id": "12" }),
        &[("SHARED_TOKEN", json!("gsm-group-token-4"))],
    )?;
    // Reads back through the root, the namespace in the path, as the runner reads.
    let back = root.call(
        Method::GET,
        &format!("{PROJECT_NAMESPACE}/secrets/kv/data/explicit/DB_PASSWORD"),
        None,
    )?;
    if back["data"]["data"]["value"] != "gsm-db-password-1" {
        bail!(
            "OpenBao seed check failed: {PROJECT_NAMESPACE} explicit/DB_PASSWORD does not read back"
        );
    }
    Ok(())
}

/// What `cargo xtask demo` adds to the environment of a GitLab Secrets Manager example job:
/// the predefined variables of project 34 in group `mygroup` (12), the OpenBao URL, and the
/// JWT GitLab would mint (audience the OpenBao URL), which the tool reads from
/// `GITLAB_SECRETS_MANAGER_ID_TOKEN`.
pub fn demo_env(env: &auth_oidc::testing::E2eEnv) -> Result<Vec<(String, String)>> {
    use secrecy::ExposeSecret as _;
    let claims = auth_oidc::testing::GitlabClaims::new()
        .with_project("mygroup/myproject", 34)
        .with_namespace("mygroup", 12)
        .with_audience(env.vault_addr());
    let jwt = env.minter().mint(&claims)?;
    Ok([
        ("GITLAB_SECRETS_MANAGER_URL", env.vault_addr()),
        ("GITLAB_SECRETS_MANAGER_ID_TOKEN", jwt.expose_secret()),
        ("CI_PROJECT_ID", "34"),
        ("CI_PROJECT_NAMESPACE_ID", "12"),
        ("CI_PROJECT_NAMESPACE", "mygroup"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect())
}
