//! AWS Secrets Manager for GitLab CI `secrets:` (`aws_secrets_manager`).
//!
//! Matches GitLab Runner's resolver (precedence of per-secret settings, web identity with the
//! job's ID token when a role ARN is set, the runner host's default credential chain
//! otherwise, base64 for binary secrets, the runner's error texts) and does better: one STS
//! call per identity, `BatchGetSecretValue` for current versions, local checks before any
//! request, the region of a full ARN, classified errors that never show a value or a token.
//!
//! ```no_run
//! use provider_aws_sm::AwsSecretsManagerBuilder;
//! use secrets_core::{ResolveContext, SecretProvider, SecretRequest};
//!
//! # async fn run(requests: Vec<SecretRequest>) -> Result<(), secrets_core::Error> {
//! let provider = AwsSecretsManagerBuilder::new().build()?;
//! for result in provider.resolve(&requests, &ResolveContext::default()).await {
//!     let resolved = result?;
//!     # let _ = resolved;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! [`AssumeRoleBuilder`] hands temporary credentials to a job (web identity or the default
//! chain, then role chaining) with the same checks and classified errors.
//!
//! Modules: `assume_role` (temporary credentials for a job), `config` (the builder), `descriptor` (the offline description), `planning`
//! (checks, grouping and batching, shared by the live path and the plan), `provider` (the
//! trait impl), `client` (SDK calls), `credentials` (identity selection), `value` (field
//! extraction), `error` ([`classify`]).

#![cfg_attr(docsrs, feature(doc_cfg))]

mod assume_role;
mod client;
mod config;
mod credentials;
mod descriptor;
mod endpoints;
mod error;
mod planning;
mod provider;
mod roots;
mod transport;
mod value;

pub use assume_role::{
    AssumeRoleBuilder, MAX_CHAINED_DURATION_SECS, MAX_DURATION_SECS, MIN_DURATION_SECS,
    TemporaryCredentials, default_session_name,
};
pub use config::{AwsSecretsManagerBuilder, DEFAULT_APP_NAME, NumberFormat};
pub use descriptor::{AwsSecretsManagerDescriptor, DESCRIPTOR};
pub use error::classify;
pub use provider::AwsSecretsManagerProvider;
pub use value::extract_field;

/// The requests this provider sends, by report key.
pub mod requests {
    use secrets_core::{RequestKind, RequestRole};

    /// STS `AssumeRoleWithWebIdentity`.
    pub const STS_ASSUME_ROLE: RequestKind =
        RequestKind::new("sts_assume_role", RequestRole::Login);
    /// Secrets Manager `GetSecretValue`.
    pub const SM_GET: RequestKind = RequestKind::new("sm_get", RequestRole::Read);
    /// Secrets Manager `BatchGetSecretValue`.
    pub const SM_BATCH_GET: RequestKind = RequestKind::new("sm_batch_get", RequestRole::Batch);
    /// Every kind, for the report and the plan.
    pub const ALL: &[RequestKind] = &[STS_ASSUME_ROLE, SM_GET, SM_BATCH_GET];
}
