//! GitLab Secrets Manager provider for GitLab CI `secrets:gitlab_secrets_manager`.
//!
//! GitLab's secrets manager is OpenBao behind GitLab. GitLab replaces each
//! `gitlab_secrets_manager:` entry by a payload it computes (the OpenBao URL, a JWT it
//! mints, the role and login path inside the project's or group's namespace, a kv-v2 path).
//! Like GitLab Runner, this provider sends no login: each read carries OpenBao's *inline
//! auth* headers (`X-Vault-Inline-Auth-Path`, `-Parameter-jwt`, `-Parameter-role`, each
//! parameter the unpadded base64url of `{"key", "value"}`), an empty `X-Vault-Namespace`
//! and never a token. Better than the runner: one read per distinct path and identity,
//! concurrent and bounded, retries, the deadline and the answer cap of `provider-http`, and
//! failures classified by OpenBao's `X-Vault-Inline-Auth-Failed` header.
//!
//! ```no_run
//! use provider_gitlab_sm::GitlabSecretsManagerBuilder;
//! use secrets_core::SecretProvider;
//! use std::sync::Arc;
//!
//! let provider: Arc<dyn SecretProvider> =
//!     Arc::new(GitlabSecretsManagerBuilder::from_env().build()?);
//! # Ok::<(), secrets_core::Error>(())
//! ```
//!
//! See `docs/providers/gitlab-secrets-manager.md`.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod answer;
mod client;
mod config;
mod descriptor;
mod inline;
mod planning;
mod provider;

pub use answer::take_field;
pub use client::{ReadContext, read_failure};
pub use config::GitlabSecretsManagerBuilder;
pub use descriptor::{DESCRIPTOR, GitlabSecretsManagerDescriptor};
pub use inline::encode_parameter;
pub use provider::GitlabSecretsManagerProvider;

/// The requests this provider sends, by report key.
pub mod requests {
    use secrets_core::{RequestKind, RequestRole};

    /// `GET <engine.path>/data/<path>` with inline auth.
    pub const READ: RequestKind = RequestKind::new("gitlab_sm_read", RequestRole::Read);
    /// Every kind, for the report and the plan.
    pub const ALL: &[RequestKind] = &[READ];
}
