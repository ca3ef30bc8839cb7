//! The `secrets:` model shared by every crate of the workspace.
//!
//! - [`payload`]: the job payload exactly as GitLab sends it to a runner.
//! - [`gitlab_ci`]: a job's `secrets:` read from `.gitlab-ci.yml` and normalised the way
//!   GitLab's server does it, producing the same payload.
//! - [`expand`]: Go `os.Expand` compatible variable expansion, applied per provider field.
//! - [`provider`]: the object-safe [`SecretProvider`] trait that provider crates implement.
//! - [`value`]: [`SecretValue`], a resolved value that never prints itself.
//! - [`materialise`]: resolved secrets as job variables and as private files.
//! - [`masking`]: whether GitLab could mask a value.
//! - [`masker`]: masking secret values in a job's output, streaming, as the runner masks its log.

pub mod error;
pub mod expand;
pub mod gitlab_ci;
pub mod masker;
pub mod masking;
pub mod materialise;
pub mod payload;
pub mod provider;
pub mod value;
pub mod variables;

mod redact;

pub use error::{Error, ErrorKind, FailureReason, Result};
pub use payload::{JobPayload, ProviderKind, Secret, Secrets};
pub use provider::{
    DeadlinePassed, RequestCounter, RequestKind, ResolveContext, Resolved, RetryPolicy,
    SecretProvider, SecretRequest,
};
pub use value::SecretValue;
pub use variables::{JobVariable, Variables};
