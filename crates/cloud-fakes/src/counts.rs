//! Request counting per endpoint kind, read by tests through `GET /_fake/requests`.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The endpoint kinds counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Kind {
    /// `POST /v1/token` at the fake Google STS (every attempt, accepted or not).
    GcpStsExchange,
    /// `GET /v1/…/versions/…:access` at the fake Secret Manager.
    GcpAccess,
    /// `POST /v1/projects/-/serviceAccounts/…:generateAccessToken` at fake IAM Credentials.
    GcpGenerateAccessToken,
    /// `GET /<tenant>/v2.0/.well-known/openid-configuration` at fake Entra.
    AzureDiscovery,
    /// `GET /common/discovery/instance` at fake Entra.
    AzureInstanceDiscovery,
    /// `POST /<tenant>/oauth2/v2.0/token` at fake Entra.
    AzureToken,
    /// `GET /secrets/…` at a fake vault that carried no token (answered with the challenge).
    AzureChallenge,
    /// `GET /secrets/…` at a fake vault with a bearer token.
    AzureGet,
}

impl Kind {
    /// The name in the admin document (the names the report uses where they overlap).
    pub fn name(self) -> &'static str {
        match self {
            Self::GcpStsExchange => "gcp_sts_exchange",
            Self::GcpAccess => "gcp_access",
            Self::GcpGenerateAccessToken => "gcp_generate_access_token",
            Self::AzureDiscovery => "azure_discovery",
            Self::AzureInstanceDiscovery => "azure_instance_discovery",
            Self::AzureToken => "azure_token",
            Self::AzureChallenge => "azure_challenge",
            Self::AzureGet => "azure_get",
        }
    }

    /// The kind named `name` (as in the admin document).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Every kind.
    pub const ALL: [Self; 8] = [
        Self::GcpStsExchange,
        Self::GcpAccess,
        Self::GcpGenerateAccessToken,
        Self::AzureDiscovery,
        Self::AzureInstanceDiscovery,
        Self::AzureToken,
        Self::AzureChallenge,
        Self::AzureGet,
    ];
}

#[derive(Debug, Default)]
struct Inner {
    counts: BTreeMap<Kind, u64>,
    /// `api-version` values Key Vault clients sent, with counts.
    api_versions: BTreeMap<String, u64>,
    /// STS body encodings seen (`json`, `form`), with counts.
    sts_encodings: BTreeMap<String, u64>,
    /// Injected faults: the status the next requests of a kind get, and how many remain.
    faults: BTreeMap<Kind, (u16, u32)>,
}

/// Shared counters; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    inner: Arc<Mutex<Inner>>,
}

impl Counters {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Counts one request of `kind`.
    pub fn hit(&self, kind: Kind) {
        self.with(|i| *i.counts.entry(kind).or_default() += 1);
    }

    /// Records the `api-version` a Key Vault client sent.
    pub fn api_version(&self, version: &str) {
        self.with(|i| *i.api_versions.entry(version.to_owned()).or_default() += 1);
    }

    /// Records how an STS body was encoded.
    pub fn sts_encoding(&self, encoding: &str) {
        self.with(|i| *i.sts_encodings.entry(encoding.to_owned()).or_default() += 1);
    }

    /// Makes the next `count` requests of `kind` fail with `status` (429 or 5xx), in the
    /// vendor's error shape, with `Retry-After: 1`.
    pub fn set_fault(&self, kind: Kind, status: u16, count: u32) {
        self.with(|i| {
            if count == 0 {
                i.faults.remove(&kind);
            } else {
                i.faults.insert(kind, (status, count));
            }
        });
    }

    /// The status an injected fault gives this request of `kind`, if one is pending.
    pub fn take_fault(&self, kind: Kind) -> Option<u16> {
        self.with(|i| {
            let (status, remaining) = i.faults.get_mut(&kind)?;
            let status = *status;
            *remaining -= 1;
            if *remaining == 0 {
                i.faults.remove(&kind);
            }
            Some(status)
        })
    }

    /// How many requests of `kind` arrived.
    pub fn get(&self, kind: Kind) -> u64 {
        self.with(|i| i.counts.get(&kind).copied().unwrap_or_default())
    }

    /// Zeroes everything and drops pending faults.
    pub fn reset(&self) {
        self.with(|i| *i = Inner::default());
    }

    /// The admin document: `{"counts": {kind: n, …}, "api_versions": {…}, "sts_encodings": {…}}`.
    pub fn document(&self) -> Value {
        self.with(|i| {
            let counts: serde_json::Map<String, Value> = Kind::ALL
                .iter()
                .map(|k| {
                    (
                        k.name().to_owned(),
                        json!(i.counts.get(k).copied().unwrap_or_default()),
                    )
                })
                .collect();
            json!({
                "counts": counts,
                "api_versions": i.api_versions,
                "sts_encodings": i.sts_encodings,
                "faults": i.faults.iter().map(|(k, (status, n))| {
                    (k.name().to_owned(), json!({"status": status, "remaining": n}))
                }).collect::<serde_json::Map<String, Value>>(),
            })
        })
    }
}
