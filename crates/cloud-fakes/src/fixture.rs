//! The seed data: workload identity providers, secrets, Entra apps and vaults.
//!
//! Loaded from JSON or YAML (by extension). The string `${OIDC_ISSUER}` anywhere in the text is
//! replaced with the issuer URL given at load time, so one fixture works on any port.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The placeholder replaced with the local issuer's URL.
pub const ISSUER_PLACEHOLDER: &str = "${OIDC_ISSUER}";

/// Why a fixture could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FixtureError {
    /// The file could not be read.
    #[error("cannot read fixture {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a valid fixture.
    #[error("fixture {path}: {reason}")]
    Invalid {
        /// The file (or `<inline>`).
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Everything the fakes serve.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// Google Cloud.
    #[serde(default)]
    pub gcp: GcpFixture,
    /// Azure.
    #[serde(default)]
    pub azure: AzureFixture,
}

/// Google Cloud seed data.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpFixture {
    /// Project id → project number (Secret Manager accepts either in a name).
    #[serde(default)]
    pub project_ids: BTreeMap<String, String>,
    /// Workload identity pool providers.
    #[serde(default)]
    pub providers: Vec<WifProvider>,
    /// Service accounts the federated principals may impersonate.
    #[serde(default)]
    pub service_accounts: Vec<ServiceAccount>,
    /// Secrets.
    #[serde(default)]
    pub secrets: Vec<GcpSecret>,
}

/// An OIDC workload identity pool provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WifProvider {
    /// The project number.
    pub project_number: String,
    /// The pool id.
    pub pool: String,
    /// The provider id.
    pub provider: String,
    /// The OIDC issuer URL; its JWKS is found by discovery.
    pub issuer: String,
    /// Allowed `aud` values; empty means the provider's default audience, with or without
    /// `https:`, as Google does.
    #[serde(default)]
    pub allowed_audiences: Vec<String>,
    /// Target attribute → claim name (`google.subject: sub`). Default: `google.subject` from
    /// `sub` and `attribute.gitlab_project_id` from `project_id`.
    #[serde(default)]
    pub attribute_mapping: Option<BTreeMap<String, String>>,
    /// A simplified attribute condition: every claim named here must equal its value.
    #[serde(default)]
    pub attribute_condition: BTreeMap<String, String>,
    /// A disabled provider answers `invalid_target`.
    #[serde(default)]
    pub disabled: bool,
}

impl WifProvider {
    /// `projects/<n>/locations/global/workloadIdentityPools/<pool>/providers/<provider>`.
    pub fn resource(&self) -> String {
        format!(
            "projects/{}/locations/global/workloadIdentityPools/{}/providers/{}",
            self.project_number, self.pool, self.provider
        )
    }

    /// `projects/<n>/locations/global/workloadIdentityPools/<pool>`.
    pub fn pool_resource(&self) -> String {
        format!(
            "projects/{}/locations/global/workloadIdentityPools/{}",
            self.project_number, self.pool
        )
    }

    /// The mapping in force.
    pub fn mapping(&self) -> BTreeMap<String, String> {
        self.attribute_mapping.clone().unwrap_or_else(|| {
            BTreeMap::from([
                ("google.subject".to_owned(), "sub".to_owned()),
                (
                    "attribute.gitlab_project_id".to_owned(),
                    "project_id".to_owned(),
                ),
            ])
        })
    }
}

/// A service account that principals may impersonate through IAM Credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccount {
    /// `name@project.iam.gserviceaccount.com`.
    pub email: String,
    /// Principals holding `roles/iam.workloadIdentityUser` on it (see [`GcpSecret::accessors`]
    /// for the forms).
    #[serde(default)]
    pub members: Vec<String>,
}

/// A Secret Manager secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpSecret {
    /// The project number.
    pub project: String,
    /// `None` for a global secret, else the region (`us-east1`).
    #[serde(default)]
    pub location: Option<String>,
    /// The secret id.
    pub secret: String,
    /// Versions `1..=n`, in creation order.
    pub versions: Vec<GcpVersion>,
    /// What `payload.dataCrc32c` carries.
    #[serde(default)]
    pub checksum: Checksum,
    /// Principals allowed `secretmanager.versions.access`: `principal://…/subject/<sub>`,
    /// `principalSet://…/attribute.<name>/<value>`, `principalSet://…/<pool>/*` or
    /// `serviceAccount:<email>`. `None`: every federated principal and service account.
    #[serde(default)]
    pub accessors: Option<Vec<String>>,
}

/// One secret version.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpVersion {
    /// The payload as UTF-8 text.
    #[serde(default)]
    pub data: Option<String>,
    /// The payload as standard base64 (for binary data).
    #[serde(default)]
    pub data_base64: Option<String>,
    /// `enabled` (default), `disabled` or `destroyed`.
    #[serde(default)]
    pub state: VersionState,
}

/// A Secret Manager version state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionState {
    /// Accessible.
    #[default]
    Enabled,
    /// `FAILED_PRECONDITION` on access.
    Disabled,
    /// `FAILED_PRECONDITION` on access; the data is gone.
    Destroyed,
}

impl VersionState {
    /// Google's enum name.
    pub fn google_name(self) -> &'static str {
        match self {
            Self::Enabled => "ENABLED",
            Self::Disabled => "DISABLED",
            Self::Destroyed => "DESTROYED",
        }
    }
}

/// The checksum switch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Checksum {
    /// The true CRC32C.
    #[default]
    Ok,
    /// No `dataCrc32c` field.
    Missing,
    /// A wrong value (the true one plus one, wrapping).
    Corrupt,
}

/// Azure seed data.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureFixture {
    /// Entra tenants and their app registrations.
    #[serde(default)]
    pub tenants: Vec<Tenant>,
    /// Key vaults.
    #[serde(default)]
    pub vaults: Vec<Vault>,
}

/// An Entra tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    /// The tenant id (a GUID).
    pub id: String,
    /// App registrations.
    #[serde(default)]
    pub apps: Vec<App>,
}

/// An app registration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// The application (client) id.
    pub client_id: String,
    /// Its service principal's object id (shown in RBAC errors).
    #[serde(default)]
    pub object_id: Option<String>,
    /// Federated identity credentials.
    #[serde(default)]
    pub federated_credentials: Vec<FederatedCredential>,
}

/// A federated identity credential: matched on exact issuer, subject and audience.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederatedCredential {
    /// The token's `iss`.
    pub issuer: String,
    /// The token's `sub`.
    pub subject: String,
    /// The token's `aud` (usually `api://AzureADTokenExchange`).
    #[serde(default = "default_fic_audience")]
    pub audience: String,
}

fn default_fic_audience() -> String {
    "api://AzureADTokenExchange".to_owned()
}

/// A key vault, served at `https://<name>.vault.azure.net`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vault {
    /// The vault name (the first DNS label).
    pub name: String,
    /// The tenant the vault belongs to (the challenge names it).
    pub tenant: String,
    /// Client ids holding *Key Vault Secrets User* on the whole vault; `None`: every app of
    /// the tenant.
    #[serde(default)]
    pub readers: Option<Vec<String>>,
    /// Secrets.
    #[serde(default)]
    pub secrets: Vec<AzureSecret>,
}

/// A Key Vault secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureSecret {
    /// The name (`^[0-9A-Za-z-]{1,127}$`).
    pub name: String,
    /// Versions in creation order; the last is the current one.
    pub versions: Vec<AzureVersion>,
    /// Client ids with a role assignment on this secret alone (added to the vault's).
    #[serde(default)]
    pub readers: Option<Vec<String>>,
}

/// One Key Vault secret version.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureVersion {
    /// The version id: 32 lowercase hex digits.
    pub id: String,
    /// The value.
    pub value: String,
    /// `false`: `SecretDisabled`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `contentType`.
    #[serde(default)]
    pub content_type: Option<String>,
    /// `tags`.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// `attributes.created` and `updated` (Unix seconds).
    #[serde(default = "default_created")]
    pub created: u64,
}

fn yes() -> bool {
    true
}

fn default_created() -> u64 {
    1_767_225_600 // 2026-01-01T00:00:00Z
}

impl Fixture {
    /// Reads `path` (`.json`, else YAML), replacing `${OIDC_ISSUER}` with `issuer`.
    pub fn load(path: &Path, issuer: &str) -> Result<Self, FixtureError> {
        let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let json = path.extension().is_some_and(|e| e == "json");
        Self::parse(&path.display().to_string(), &text, json, issuer)
    }

    /// Parses fixture text (JSON when `json`, else YAML).
    pub fn parse(label: &str, text: &str, json: bool, issuer: &str) -> Result<Self, FixtureError> {
        let text = text.replace(ISSUER_PLACEHOLDER, issuer.trim_end_matches('/'));
        let invalid = |reason: String| FixtureError::Invalid {
            path: label.to_owned(),
            reason,
        };
        let fixture: Self = if json {
            serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?
        } else {
            serde_saphyr::from_str(&text).map_err(|e| invalid(e.to_string()))?
        };
        fixture.validate().map_err(invalid)?;
        Ok(fixture)
    }

    fn validate(&self) -> Result<(), String> {
        use base64::Engine as _;
        for s in &self.gcp.secrets {
            if s.versions.is_empty() {
                return Err(format!("gcp secret {} has no versions", s.secret));
            }
            for (i, v) in s.versions.iter().enumerate() {
                match (&v.data, &v.data_base64) {
                    (Some(_), None) => {}
                    (None, Some(b)) => {
                        base64::engine::general_purpose::STANDARD
                            .decode(b)
                            .map_err(|_| {
                                format!("gcp secret {} version {}: bad base64", s.secret, i + 1)
                            })?;
                    }
                    _ => {
                        return Err(format!(
                            "gcp secret {} version {}: give exactly one of data, data_base64",
                            s.secret,
                            i + 1
                        ));
                    }
                }
            }
        }
        for vault in &self.azure.vaults {
            if !self.azure.tenants.iter().any(|t| t.id == vault.tenant) {
                return Err(format!("vault {} names an unknown tenant", vault.name));
            }
            for secret in &vault.secrets {
                if !crate::azure::valid_secret_name(&secret.name) {
                    return Err(format!(
                        "vault {}: bad secret name {}",
                        vault.name, secret.name
                    ));
                }
                if secret.versions.is_empty() {
                    return Err(format!(
                        "vault {}: {} has no versions",
                        vault.name, secret.name
                    ));
                }
                for v in &secret.versions {
                    let hex = v.id.len() == 32
                        && v.id
                            .bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                    if !hex {
                        return Err(format!(
                            "vault {}: {} has a version id that is not 32 lowercase hex digits",
                            vault.name, secret.name
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

impl GcpVersion {
    /// The payload bytes.
    pub fn bytes(&self) -> Vec<u8> {
        use base64::Engine as _;
        match (&self.data, &self.data_base64) {
            (Some(text), _) => text.as_bytes().to_vec(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .unwrap_or_default(),
            (None, None) => Vec::new(),
        }
    }
}
