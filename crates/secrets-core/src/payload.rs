//! The job payload's `secrets` object, exactly as GitLab sends it to a runner
//! (runner-semantics §1).
//!
//! Unknown members are ignored and JSON `null` is read as absent, as Go's `encoding/json`
//! does. Strings that Go reads as plain `string` are `String` here (null becomes `""`);
//! members GitLab sends as nullable are `Option<String>`. Fields that may hold a token after
//! expansion (`auth.data`, `jwt`) are redacted in `Debug`.

use crate::redact::Redacted;
use crate::token::Token;
use crate::variables::JobVariable;
use indexmap::IndexMap;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The secrets of one job, keyed by the variable each one creates, in payload order.
pub type Secrets = IndexMap<String, Secret>;

/// The parts of a job payload (`POST /api/v4/jobs/request` response) this crate reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobPayload {
    /// The job's secrets; absent or null when it has none.
    #[serde(default, deserialize_with = "null_as_default")]
    pub secrets: Secrets,
    /// The job's variables, in the order GitLab sends them.
    #[serde(default, deserialize_with = "null_as_default")]
    pub variables: Vec<JobVariable>,
}

impl JobPayload {
    /// Parses a job payload from JSON.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }
}

/// The secret providers GitLab knows, in GitLab Runner's registration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// `aws_secrets_manager`
    AwsSecretsManager,
    /// `azure_key_vault`
    AzureKeyVault,
    /// `gcp_secret_manager`
    GcpSecretManager,
    /// `gitlab_secrets_manager`
    GitlabSecretsManager,
    /// `vault`
    Vault,
}

impl ProviderKind {
    /// Every provider, in the runner's registration order.
    pub const ALL: [ProviderKind; 5] = [
        Self::AwsSecretsManager,
        Self::AzureKeyVault,
        Self::GcpSecretManager,
        Self::GitlabSecretsManager,
        Self::Vault,
    ];

    /// The key of the provider in `secrets:` and in the payload.
    pub fn keyword(self) -> &'static str {
        match self {
            Self::AwsSecretsManager => "aws_secrets_manager",
            Self::AzureKeyVault => "azure_key_vault",
            Self::GcpSecretManager => "gcp_secret_manager",
            Self::GitlabSecretsManager => "gitlab_secrets_manager",
            Self::Vault => "vault",
        }
    }

    /// The provider of a keyword (`vault`, `aws_secrets_manager`, ...).
    pub fn from_keyword(keyword: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.keyword() == keyword)
    }

    /// The resolver name GitLab Runner prints in `Using "<name>" secret resolver...`.
    pub fn resolver_name(self) -> &'static str {
        match self {
            Self::AzureKeyVault => "azure-key-vault",
            other => other.keyword(),
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// One entry of `secrets`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    // Each provider's block is boxed: a secret names one, and a job with a thousand secrets
    // keeps several copies of each (its spec, the expanded request, the report).
    /// HashiCorp Vault (or OpenBao).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<Box<VaultSecret>>,
    /// Google Cloud Secret Manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp_secret_manager: Option<Box<GcpSecret>>,
    /// Azure Key Vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_key_vault: Option<Box<AzureSecret>>,
    /// AWS Secrets Manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_secrets_manager: Option<Box<AwsSecret>>,
    /// GitLab's own secrets manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitlab_secrets_manager: Option<Box<GitlabSecretsManagerSecret>>,
    /// Whether the variable is file-type; absent means **true**.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<bool>,
    /// Echoed by the server, ignored by the runner: the chosen token is in each `server` block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Members this model does not know (`akeyless`, newer providers), by name only.
    #[serde(flatten, default, skip_serializing)]
    pub unknown: BTreeMap<String, IgnoredAny>,
}

impl Secret {
    /// Whether the variable is file-type (`file` missing or null means true).
    pub fn is_file(&self) -> bool {
        self.file.unwrap_or(true)
    }

    /// The providers this secret names, in the runner's registration order.
    pub fn providers(&self) -> Vec<ProviderKind> {
        let present = [
            self.aws_secrets_manager.is_some(),
            self.azure_key_vault.is_some(),
            self.gcp_secret_manager.is_some(),
            self.gitlab_secrets_manager.is_some(),
            self.vault.is_some(),
        ];
        ProviderKind::ALL
            .into_iter()
            .zip(present)
            .filter_map(|(kind, present)| present.then_some(kind))
            .collect()
    }

    /// Names of members this model does not know, e.g. `akeyless`.
    pub fn unknown_members(&self) -> impl Iterator<Item = &str> {
        self.unknown.keys().map(String::as_str)
    }

    /// A one-line description of the secret, never containing a token: the reference a
    /// person would recognise in their `.gitlab-ci.yml`.
    pub fn reference(&self) -> String {
        if let Some(v) = &self.vault {
            return v.reference();
        }
        if let Some(a) = &self.aws_secrets_manager {
            return a.reference();
        }
        if let Some(g) = &self.gcp_secret_manager {
            return format!("gcp_secret_manager {} version {}", g.name, g.version);
        }
        if let Some(a) = &self.azure_key_vault {
            return format!(
                "azure_key_vault {} version {}",
                a.name,
                a.version.as_deref().unwrap_or("latest")
            );
        }
        if let Some(g) = &self.gitlab_secrets_manager {
            return format!(
                "gitlab_secrets_manager {}/{} field {}",
                g.engine.path, g.path, g.field
            );
        }
        match self.unknown.keys().next() {
            Some(name) => format!("unsupported provider {name}"),
            None => "no provider".to_owned(),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Secret");
        if let Some(v) = &self.vault {
            d.field("vault", v);
        }
        if let Some(v) = &self.gcp_secret_manager {
            d.field("gcp_secret_manager", v);
        }
        if let Some(v) = &self.azure_key_vault {
            d.field("azure_key_vault", v);
        }
        if let Some(v) = &self.aws_secrets_manager {
            d.field("aws_secrets_manager", v);
        }
        if let Some(v) = &self.gitlab_secrets_manager {
            d.field("gitlab_secrets_manager", v);
        }
        d.field("file", &self.file)
            .field("token", &self.token.as_deref().map(token_reference))
            .field("unknown", &self.unknown.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `vault`: a secret in HashiCorp Vault or OpenBao.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VaultSecret {
    /// Where and how to log in.
    #[serde(default, deserialize_with = "null_as_default")]
    pub server: VaultServer,
    /// The secrets engine and its mount path.
    #[serde(default, deserialize_with = "null_as_default")]
    pub engine: VaultEngine,
    /// The secret's path inside the mount.
    #[serde(default, deserialize_with = "null_as_default")]
    pub path: String,
    /// The key inside the secret's data.
    #[serde(default, deserialize_with = "null_as_default")]
    pub field: String,
}

impl VaultSecret {
    /// `vault <engine> <mount>/<path> field <field>`.
    pub fn reference(&self) -> String {
        format!(
            "vault {} {}/{} field {}",
            self.engine.name,
            self.engine.path.trim_end_matches('/'),
            self.path.trim_start_matches('/'),
            self.field
        )
    }
}

/// `vault.server`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VaultServer {
    /// `VAULT_SERVER_URL`
    #[serde(default, deserialize_with = "null_as_default")]
    pub url: String,
    /// `VAULT_NAMESPACE`; null when unset.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The auth method.
    #[serde(default, deserialize_with = "null_as_default")]
    pub auth: VaultAuth,
}

/// `vault.server.auth`
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VaultAuth {
    /// The auth method's name; always `jwt` from GitLab.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// The auth method's mount path (`VAULT_AUTH_PATH`, default `jwt`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub path: String,
    /// `jwt` (a token reference before expansion, the token after) and `role`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub data: IndexMap<String, serde_json::Value>,
}

impl VaultAuth {
    /// An auth-data value as a string, the way the runner formats it for expansion.
    pub fn data_str(&self, key: &str) -> Option<String> {
        self.data.get(key).map(json_to_text)
    }
}

impl fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = self.data.get("role").map(json_to_text);
        let jwt = self.data.get("jwt").map(json_to_text);
        f.debug_struct("VaultAuth")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("role", &role)
            .field("jwt", &Redacted(jwt.as_deref()))
            .field("data_keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `vault.engine`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VaultEngine {
    /// `kv-v2`, `kv-v1` or `generic`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// The mount path.
    #[serde(default, deserialize_with = "null_as_default")]
    pub path: String,
}

/// `aws_secrets_manager`: a secret in AWS Secrets Manager.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AwsSecret {
    /// A name, partial ARN or full ARN.
    #[serde(default, deserialize_with = "null_as_default")]
    pub secret_id: String,
    /// The JSON key to extract.
    #[serde(default)]
    pub field: Option<String>,
    /// A version id.
    #[serde(default)]
    pub version_id: Option<String>,
    /// A staging label such as `AWSCURRENT`.
    #[serde(default)]
    pub version_stage: Option<String>,
    /// Per-secret region override.
    #[serde(default)]
    pub region: Option<String>,
    /// Per-secret role override.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// Per-secret session name override.
    #[serde(default)]
    pub role_session_name: Option<String>,
    /// Job-wide settings from `AWS_*` variables and the chosen token.
    #[serde(default, deserialize_with = "null_as_default")]
    pub server: AwsServer,
}

impl AwsSecret {
    /// `aws_secrets_manager <id>[#field] [version ...] [region ...]`.
    pub fn reference(&self) -> String {
        let mut out = format!("aws_secrets_manager {}", self.secret_id);
        if let Some(field) = non_empty(&self.field) {
            out.push('#');
            out.push_str(field);
        }
        if let Some(id) = non_empty(&self.version_id) {
            out.push_str(" version_id ");
            out.push_str(id);
        }
        if let Some(stage) = non_empty(&self.version_stage) {
            out.push_str(" version_stage ");
            out.push_str(stage);
        }
        let region = non_empty(&self.region).unwrap_or(&self.server.region);
        if !region.is_empty() {
            out.push_str(" in ");
            out.push_str(region);
        }
        out
    }
}

/// `aws_secrets_manager.server`
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AwsServer {
    /// `AWS_REGION`
    #[serde(default, deserialize_with = "null_as_default")]
    pub region: String,
    /// The token reference (`$AWS_ID_TOKEN` by default); the token after expansion.
    #[serde(default, deserialize_with = "null_as_default")]
    pub jwt: Token,
    /// `AWS_ROLE_ARN`
    #[serde(default)]
    pub role_arn: Option<String>,
    /// `AWS_ROLE_SESSION_NAME`
    #[serde(default)]
    pub role_session_name: Option<String>,
}

impl fmt::Debug for AwsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsServer")
            .field("region", &self.region)
            .field("jwt", &self.jwt)
            .field("role_arn", &self.role_arn)
            .field("role_session_name", &self.role_session_name)
            .finish()
    }
}

/// `gcp_secret_manager`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GcpSecret {
    /// A secret id, or `projects/<n>/secrets/<id>`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// The version; the server defaults it to `latest`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub version: String,
    /// Workload identity federation settings and the token.
    #[serde(default, deserialize_with = "null_as_default")]
    pub server: GcpServer,
}

/// `gcp_secret_manager.server`
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GcpServer {
    /// `GCP_PROJECT_NUMBER`
    #[serde(default, deserialize_with = "null_as_default")]
    pub project_number: String,
    /// `GCP_WORKLOAD_IDENTITY_FEDERATION_POOL_ID`
    #[serde(default, deserialize_with = "null_as_default")]
    pub workload_identity_federation_pool_id: String,
    /// `GCP_WORKLOAD_IDENTITY_FEDERATION_PROVIDER_ID`
    #[serde(default, deserialize_with = "null_as_default")]
    pub workload_identity_federation_provider_id: String,
    /// The secret's `token`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub jwt: Token,
    /// Extension, never sent by GitLab: a service account to impersonate (IAM Credentials
    /// `generateAccessToken`) after the STS exchange, from
    /// `CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT`; empty: none, as GitLab Runner.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub impersonate_service_account: String,
}

impl fmt::Debug for GcpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpServer")
            .field("project_number", &self.project_number)
            .field(
                "workload_identity_federation_pool_id",
                &self.workload_identity_federation_pool_id,
            )
            .field(
                "workload_identity_federation_provider_id",
                &self.workload_identity_federation_provider_id,
            )
            .field("jwt", &self.jwt)
            .field(
                "impersonate_service_account",
                &self.impersonate_service_account,
            )
            .finish()
    }
}

/// `azure_key_vault`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AzureSecret {
    /// The secret's name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// The version; empty or null means latest.
    #[serde(default)]
    pub version: Option<String>,
    /// The vault URL, the federated identity and the token.
    #[serde(default, deserialize_with = "null_as_default")]
    pub server: AzureServer,
}

/// `azure_key_vault.server`
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AzureServer {
    /// `AZURE_KEY_VAULT_SERVER_URL`
    #[serde(default, deserialize_with = "null_as_default")]
    pub url: String,
    /// `AZURE_CLIENT_ID`
    #[serde(default, deserialize_with = "null_as_default")]
    pub client_id: String,
    /// `AZURE_TENANT_ID`
    #[serde(default, deserialize_with = "null_as_default")]
    pub tenant_id: String,
    /// The token reference; the token after expansion.
    #[serde(default, deserialize_with = "null_as_default")]
    pub jwt: Token,
}

impl fmt::Debug for AzureServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureServer")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("tenant_id", &self.tenant_id)
            .field("jwt", &self.jwt)
            .finish()
    }
}

/// `gitlab_secrets_manager`: built by GitLab itself, with a real JWT inside.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GitlabSecretsManagerSecret {
    /// The OpenBao server and its inline auth.
    #[serde(default, deserialize_with = "null_as_default")]
    pub server: GitlabSecretsManagerServer,
    /// Always `kv-v2` in practice.
    #[serde(default, deserialize_with = "null_as_default")]
    pub engine: VaultEngine,
    /// The data path.
    #[serde(default, deserialize_with = "null_as_default")]
    pub path: String,
    /// Always `value`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub field: String,
}

/// `gitlab_secrets_manager.server`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GitlabSecretsManagerServer {
    /// The OpenBao URL.
    #[serde(default, deserialize_with = "null_as_default")]
    pub url: String,
    /// Inline authentication parameters.
    #[serde(default, deserialize_with = "null_as_default")]
    pub inline_auth: InlineAuth,
}

/// `gitlab_secrets_manager.server.inline_auth`
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InlineAuth {
    /// The full login path.
    #[serde(default, deserialize_with = "null_as_default")]
    pub path: String,
    /// The JWT minted by GitLab.
    #[serde(default, deserialize_with = "null_as_default")]
    pub jwt: Token,
    /// The role.
    #[serde(default, deserialize_with = "null_as_default")]
    pub role: String,
    /// Legacy: the auth mount, used when `path` is empty.
    #[serde(default, deserialize_with = "null_as_default")]
    pub auth_mount: String,
}

impl fmt::Debug for InlineAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InlineAuth")
            .field("path", &self.path)
            .field("jwt", &self.jwt)
            .field("role", &self.role)
            .field("auth_mount", &self.auth_mount)
            .finish()
    }
}

/// How to name a secret's token in messages: the variable reference itself (`$VAULT_ID_TOKEN`,
/// `${AWS_ID_TOKEN}`) when it is one, never a literal token.
pub fn token_reference(jwt: &str) -> String {
    let name = jwt
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .or_else(|| jwt.strip_prefix('$'));
    match name {
        Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
            jwt.to_owned()
        }
        _ if jwt.is_empty() => "(none)".to_owned(),
        _ => "(a literal token)".to_owned(),
    }
}

/// `Some(s)` when the option holds a non-empty string (Go treats null and `""` alike).
pub fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|s| !s.is_empty())
}

/// A JSON value as text the way the runner prints it with `%s`/`%v` for scalars: strings
/// verbatim, numbers with their literal, booleans as `true`/`false`, null as empty.
pub(crate) fn json_to_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Reads JSON `null` as `T::default()`, as Go does for non-pointer fields.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNNER_SHAPE: &str = r#"{
      "id": 42, "token": "glcbt-xxxx", "allow_git_fetch": true,
      "variables": [
        {"key": "CI_JOB_ID", "value": "1001", "public": true, "masked": false},
        {"key": "VAULT_ID_TOKEN", "value": "eyJ.canary.sig", "public": false, "masked": true},
        {"key": "CONFIG", "value": "a=b", "public": false, "file": true, "raw": true}
      ],
      "secrets": {
        "DB_PASSWORD": {"vault": {"server": {"url": "https://vault.example:8200", "namespace": null,
                         "auth": {"name": "jwt", "path": "jwt", "data": {"jwt": "$VAULT_ID_TOKEN", "role": "ci"}}},
                       "engine": {"name": "kv-v2", "path": "ops"}, "path": "production/db", "field": "password"},
                       "file": false, "token": "$VAULT_ID_TOKEN"},
        "API_KEY": {"aws_secrets_manager": {"secret_id": "app/api", "field": "api_key", "version_id": null,
                       "version_stage": null, "region": null, "role_arn": null, "role_session_name": null,
                       "server": {"region": "us-east-1", "jwt": "$AWS_ID_TOKEN",
                                  "role_arn": "arn:aws:iam::123456789012:role/ci", "role_session_name": null}}},
        "OLD": {"akeyless": {"name": "x"}, "file": null},
        "NULLS": {"vault": null, "aws_secrets_manager": {"secret_id": null, "server": null}}
      }
    }"#;

    #[test]
    fn reads_the_runner_shape() {
        let payload = JobPayload::from_json(RUNNER_SHAPE).unwrap();
        let keys: Vec<_> = payload.secrets.keys().collect();
        assert_eq!(keys, ["DB_PASSWORD", "API_KEY", "OLD", "NULLS"]);

        let db = &payload.secrets["DB_PASSWORD"];
        assert!(!db.is_file());
        let vault = db.vault.as_deref().unwrap();
        assert_eq!(vault.server.url, "https://vault.example:8200");
        assert_eq!(vault.server.namespace, None);
        assert_eq!(vault.server.auth.data_str("role").as_deref(), Some("ci"));
        assert_eq!(vault.engine.path, "ops");
        assert_eq!(db.providers(), [ProviderKind::Vault]);

        let api = &payload.secrets["API_KEY"];
        assert!(api.is_file(), "missing file means true");
        let aws = api.aws_secrets_manager.as_deref().unwrap();
        assert_eq!(aws.field.as_deref(), Some("api_key"));
        assert_eq!(aws.version_id, None);
        assert_eq!(
            aws.server.role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/ci")
        );

        let old = &payload.secrets["OLD"];
        assert!(old.providers().is_empty());
        assert_eq!(old.unknown_members().collect::<Vec<_>>(), ["akeyless"]);
        assert!(old.is_file(), "null file means true");

        let nulls = &payload.secrets["NULLS"];
        assert_eq!(nulls.providers(), [ProviderKind::AwsSecretsManager]);
        assert_eq!(nulls.aws_secrets_manager.as_deref().unwrap().secret_id, "");

        assert_eq!(payload.variables.len(), 3);
        assert!(payload.variables[2].file && payload.variables[2].raw);
    }

    #[test]
    fn round_trips_through_json() {
        let payload = JobPayload::from_json(RUNNER_SHAPE).unwrap();
        let json = serde_json::to_string(&payload).unwrap();
        let again = JobPayload::from_json(&json).unwrap();
        // `unknown` keeps names only, so compare everything else.
        let strip = |p: &JobPayload| {
            let mut p = p.clone();
            for s in p.secrets.values_mut() {
                s.unknown.clear();
            }
            p
        };
        assert_eq!(strip(&again), strip(&payload));
        // GitLab sends the seven AWS per-secret keys with null; so do we.
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(value["secrets"]["API_KEY"]["aws_secrets_manager"]["version_id"].is_null());
        assert!(
            value["secrets"]["API_KEY"]["aws_secrets_manager"]
                .as_object()
                .unwrap()
                .contains_key("version_id")
        );
    }

    #[test]
    fn token_references_never_show_a_literal_token() {
        assert_eq!(token_reference("$VAULT_ID_TOKEN"), "$VAULT_ID_TOKEN");
        assert_eq!(token_reference("${AWS_ID_TOKEN}"), "${AWS_ID_TOKEN}");
        assert_eq!(token_reference(""), "(none)");
        assert_eq!(
            token_reference("eyJhbGciOi.canary.sig"),
            "(a literal token)"
        );
        assert_eq!(token_reference("$A-B"), "(a literal token)");
    }

    #[test]
    fn missing_or_null_secrets_mean_none() {
        assert!(JobPayload::from_json("{}").unwrap().secrets.is_empty());
        assert!(
            JobPayload::from_json(r#"{"secrets": null, "variables": null}"#)
                .unwrap()
                .secrets
                .is_empty()
        );
    }

    #[test]
    fn debug_hides_tokens() {
        let mut payload = JobPayload::from_json(RUNNER_SHAPE).unwrap();
        let db = payload.secrets.get_mut("DB_PASSWORD").unwrap();
        db.vault.as_mut().unwrap().server.auth.data.insert(
            "jwt".into(),
            serde_json::Value::String("eyJhbGciOi.canary-token.sig".into()),
        );
        payload.secrets["API_KEY"]
            .aws_secrets_manager
            .as_mut()
            .unwrap()
            .server
            .jwt = "eyJhbGciOi.canary-token.sig".into();
        let printed = format!("{payload:?}");
        assert!(!printed.contains("canary"), "{printed}");
        assert!(printed.contains("<redacted>"));
    }
}
