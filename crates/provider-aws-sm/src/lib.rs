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
//! Modules: `config` (the builder), `provider` (the trait impl), `client` (SDK calls and
//! batching), `credentials` (identity selection), `value` (field extraction), `error`
//! ([`classify`]).

#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod config;
mod credentials;
mod error;
mod provider;
mod value;

pub use config::{AwsSecretsManagerBuilder, DEFAULT_APP_NAME, NumberFormat};
pub use error::classify;
pub use provider::AwsSecretsManagerProvider;
pub use value::extract_field;
