//! HashiCorp Vault / OpenBao provider for GitLab CI `secrets:vault`.
//!
//! Matches GitLab Runner (JWT login at `auth/<path>/login`, kv-v2 / kv-v1 / generic reads
//! with Go `path.Join` cleaning, its not-found rules and Go `%v` value formatting) and does
//! better: one login per identity, one read per distinct path, concurrent bounded requests,
//! retries of transient failures, token revocation, classified errors that name the
//! variable, the server, the mount, the path and the field, and never a value or a token.
//!
//! ```no_run
//! use provider_vault::VaultProviderBuilder;
//! use secrets_core::SecretProvider;
//! use std::sync::Arc;
//!
//! // TLS settings (VAULT_CACERT, ...) from this process's environment.
//! let provider: Arc<dyn SecretProvider> = Arc::new(VaultProviderBuilder::from_env().build()?);
//! # Ok::<(), secrets_core::Error>(())
//! ```
//!
//! See `docs/providers/vault.md` for the behaviour in full.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod api;
mod classify;
mod config;
mod descriptor;
mod engine;
mod format;
mod grouping;
mod provider;
mod revocation;
mod server;
mod server_messages;
mod token_guard;

pub use config::VaultProviderBuilder;
pub use descriptor::{DESCRIPTOR, VaultDescriptor};
pub use engine::{EngineKind, go_clean, go_join, request_path};
pub use format::format_go_value;
pub use provider::VaultProvider;
pub use revocation::wait_for_revocations;
pub use server_messages::server_errors;

/// The requests this provider sends, by report key.
pub mod requests {
    use secrets_core::{RequestKind, RequestRole};

    /// `PUT auth/<path>/login`.
    pub const LOGIN: RequestKind = RequestKind::new("vault_login", RequestRole::Login);
    /// `GET` of a secret.
    pub const READ: RequestKind = RequestKind::new("vault_read", RequestRole::Read);
    /// `POST auth/token/revoke-self`.
    pub const REVOKE: RequestKind = RequestKind::new("vault_revoke", RequestRole::Logout);
    /// Every kind, for the report and the plan.
    pub const ALL: &[RequestKind] = &[LOGIN, READ, REVOKE];
}

impl VaultProvider {
    /// A builder; see [`VaultProviderBuilder`].
    pub fn builder() -> VaultProviderBuilder {
        VaultProviderBuilder::new()
    }

    /// A provider configured from this process's environment (`VAULT_CACERT`, ...).
    pub fn from_env() -> Result<Self, secrets_core::Error> {
        VaultProviderBuilder::from_env().build()
    }
}
