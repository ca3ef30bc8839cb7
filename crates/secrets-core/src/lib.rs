//! The `secrets:` model shared by every crate of the workspace.
//!
//! - [`payload`]: the job payload exactly as GitLab sends it to a runner.
//! - [`gitlab_ci`]: a job's `secrets:` read from `.gitlab-ci.yml` and normalised the way
//!   GitLab's server does it, producing the same payload.
//! - [`expand`]: Go `os.Expand` compatible variable expansion, applied per provider field.
//! - [`provider`]: the object-safe [`SecretProvider`] trait that provider crates implement,
//!   and [`describe`]: the offline [`ProviderDescriptor`] each of them registers beside it.
//! - [`context`], [`requests`], [`environment`], [`cleanup`]: what a resolution shares with its
//!   providers.
//! - [`value`]: [`SecretValue`], a resolved value that never prints itself.
//! - [`materialise`]: resolved secrets as job variables and as private files.
//! - [`private_file`]: the one writer of 0600 files and 0700 directories.
//! - [`hardening`]: no core dump of a process that holds values.
//! - [`masking`]: whether GitLab could mask a value.
//! - [`masker`]: masking secret values in a job's output, streaming, as the runner masks its log.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cleanup;
pub mod context;
pub mod describe;
pub mod environment;
pub mod error;
pub mod expand;
pub mod gitlab_ci;
pub mod hardening;
pub mod masker;
pub mod masking;
pub mod materialise;
pub mod payload;
pub mod private_file;
pub mod provider;
pub mod requests;
pub mod token;
pub mod value;
pub mod variables;

mod redact;

pub use cleanup::Cleanup;
pub use context::{DeadlinePassed, ResolveContext, RetryPolicy};
pub use describe::{PlannedIdentity, ProviderDescriptor, TrustHint};
pub use environment::Environment;
pub use error::{Error, ErrorKind, FailureReason, Result};
pub use payload::{JobPayload, ProviderKind, Secret, Secrets};
pub use provider::{Resolved, SecretProvider, SecretRequest};
pub use requests::{RequestCounter, RequestKind, RequestRole};
pub use token::Token;
pub use value::SecretValue;
pub use variables::{JobVariable, Variables};
