//! Azure Key Vault provider for GitLab CI `secrets:azure_key_vault`.
//!
//! Matches GitLab Runner's result (the secret's `value` as is; a missing secret is an
//! error) and does better: one Entra token per (tenant, client, ID token, resource) per job,
//! no challenge round trip for the known Key Vault DNS suffixes, one read per distinct
//! (vault, name, version), concurrent and bounded, retries of throttling and server errors,
//! secret names checked before any request, and classified errors that name the variable,
//! the vault, the secret and the fix, never a token or a value.
//!
//! ```no_run
//! use provider_azure_kv::AzureKeyVaultBuilder;
//! use secrets_core::{Environment, SecretProvider};
//! use std::sync::Arc;
//!
//! // AZURE_AUTHORITY_HOST from this process's environment.
//! let provider: Arc<dyn SecretProvider> =
//!     Arc::new(AzureKeyVaultBuilder::new().with_env(Environment::capture()).build()?);
//! # Ok::<(), secrets_core::Error>(())
//! ```
//!
//! See `docs/providers/azure-key-vault.md` for the behaviour in full.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod api;
mod classify;
mod config;
mod descriptor;
mod grouping;
mod provider;

pub use api::{parse_challenge, parse_secret_answer, resource_matches};
pub use classify::{EntraCode, ReadTarget, TokenFacts, TokenRequest, entra_failure, vault_failure};
pub use config::AzureKeyVaultBuilder;
pub use descriptor::{AzureKeyVaultDescriptor, DESCRIPTOR};
pub use grouping::{KNOWN_SUFFIXES, valid_secret_name};
pub use provider::AzureKeyVaultProvider;

/// The Key Vault REST `api-version` sent with every read. `7.5` is the GA version the Go
/// `azsecrets` module defaults to from 1.1 (the runner's client); the secret `GET` answer
/// (`value`, `id`, `attributes`, `contentType`, `tags`) is the same in every later version.
pub const API_VERSION: &str = "7.5";

/// The default Entra authority (azidentity's `AZURE_AUTHORITY_HOST` default).
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

/// The audience GitLab's docs and Entra's federated credentials use for ID tokens.
pub const ENTRA_AUDIENCE: &str = "api://AzureADTokenExchange";

/// The requests this provider sends, by report key.
pub mod requests {
    use secrets_core::{RequestKind, RequestRole};

    /// `POST <authority>/<tenant>/oauth2/v2.0/token` (client assertion).
    pub const TOKEN: RequestKind = RequestKind::new("azure_token", RequestRole::Login);
    /// `GET <vault>/secrets/<name>/<version>` with a bearer token.
    pub const GET: RequestKind = RequestKind::new("azure_get", RequestRole::Read);
    /// The unauthenticated `GET` that Key Vault answers with a `401` challenge, sent only for
    /// vaults outside the known DNS suffixes, once per vault host. Counted as a login: it
    /// only finds which token to get and reads nothing.
    pub const CHALLENGE: RequestKind = RequestKind::new("azure_challenge", RequestRole::Login);
    /// Every kind, for the report and the plan.
    pub const ALL: &[RequestKind] = &[TOKEN, GET, CHALLENGE];
}

impl AzureKeyVaultProvider {
    /// A builder; see [`AzureKeyVaultBuilder`].
    pub fn builder() -> AzureKeyVaultBuilder {
        AzureKeyVaultBuilder::new()
    }
}
