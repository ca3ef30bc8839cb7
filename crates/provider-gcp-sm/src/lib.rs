//! Google Cloud Secret Manager provider for GitLab CI `secrets:gcp_secret_manager`.
//!
//! Matches GitLab Runner (`helpers/gcp_secret_manager/service/gcp_secret_manager.go`): the
//! job's ID token is exchanged at Google STS for a federated access token (workload identity
//! federation, no service account), the secret version is read with `:access`, its CRC32C
//! (Castagnoli) is checked, and the value is the payload's bytes. It does better: one STS
//! exchange per distinct (audience, ID token), one read per distinct resource, concurrent
//! bounded reads, retries of transient failures, a clean error when the checksum is absent,
//! regional secrets, opt-in service-account impersonation (IAM Credentials
//! `generateAccessToken`, once per identity and service account, when
//! [`IMPERSONATE_VARIABLE`] is set), and classified errors that name the variable, the
//! resource and the fix, never a value or a token.
//!
//! ```no_run
//! use provider_gcp_sm::GcpSecretManagerBuilder;
//! use secrets_core::SecretProvider;
//! use std::sync::Arc;
//!
//! // Endpoint overrides (CLOUDSDK_API_ENDPOINT_OVERRIDES_*) from this process's environment.
//! let provider: Arc<dyn SecretProvider> = Arc::new(GcpSecretManagerBuilder::from_env().build()?);
//! # Ok::<(), secrets_core::Error>(())
//! ```
//!
//! See `docs/providers/gcp-secret-manager.md` for the behaviour in full.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod answer;
mod classify;
mod client;
mod config;
mod descriptor;
mod grouping;
mod provider;
mod resource;

pub use answer::{AccessError, Accessed, parse_access_answer};
pub use config::{
    GcpSecretManagerBuilder, IAMCREDENTIALS_OVERRIDE, IMPERSONATE_VARIABLE, SECRETMANAGER_OVERRIDE,
    STS_OVERRIDE,
};
pub use descriptor::{DESCRIPTOR, GcpSecretManagerDescriptor};
pub use provider::GcpSecretManagerProvider;
pub use resource::{sts_audience, version_resource};

/// The requests this provider sends, by report key.
pub mod requests {
    use secrets_core::{RequestKind, RequestRole};

    /// STS `POST /v1/token` (token exchange).
    pub const GCP_STS_EXCHANGE: RequestKind =
        RequestKind::new("gcp_sts_exchange", RequestRole::Login);
    /// IAM Credentials `POST /v1/projects/-/serviceAccounts/<email>:generateAccessToken`
    /// (opt-in impersonation).
    pub const GCP_GENERATE_ACCESS_TOKEN: RequestKind =
        RequestKind::new("gcp_generate_access_token", RequestRole::Login);
    /// Secret Manager `GET /v1/<version>:access`.
    pub const GCP_ACCESS: RequestKind = RequestKind::new("gcp_access", RequestRole::Read);
    /// Every kind, for the report and the plan.
    pub const ALL: &[RequestKind] = &[GCP_STS_EXCHANGE, GCP_GENERATE_ACCESS_TOKEN, GCP_ACCESS];
}

impl GcpSecretManagerProvider {
    /// A builder; see [`GcpSecretManagerBuilder`].
    pub fn builder() -> GcpSecretManagerBuilder {
        GcpSecretManagerBuilder::new()
    }
}
