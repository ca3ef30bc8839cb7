//! Resolve a GitLab job's `secrets:` into the variables GitLab Runner would produce.
//!
//! ```no_run
//! # async fn run(payload_json: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use secrets_core::JobPayload;
//! use secrets_resolver::{ResolveOptions, Resolver};
//!
//! let payload = JobPayload::from_json(payload_json)?;
//! let resolver = Resolver::builder()
//!     .with_default_providers()?
//!     .with_options(ResolveOptions::from_job_variables(&payload.variables))
//!     .build();
//! let resolution = resolver.resolve_payload(&payload).await?;
//! let variables = resolution.runner_variables(&payload.variables);
//! # let _ = variables; Ok(()) }
//! ```
//!
//! Providers are compiled in by cargo feature (`vault`, `aws-sm`, both default) and
//! registered explicitly by [`ResolverBuilder::with_default_providers`] or
//! [`ResolverBuilder::with_provider`].

mod mask;
mod options;
mod plan;
mod registry;
mod report;
mod resolver;

pub use options::ResolveOptions;
pub use plan::{Plan, PlannedIdentity};
pub use registry::{compiled_providers, feature_for};
pub use report::{Outcome, Report, ResolveFailure, SecretReport};
pub use resolver::{Resolution, Resolver, ResolverBuilder};
pub use secrets_core;
pub use secrets_core::masker::{MaskStream, MaskWriter, Masker};
