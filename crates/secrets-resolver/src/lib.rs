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
//! Providers are compiled in by cargo feature (see [`compiled_providers`]; all default) and
//! registered explicitly by [`ResolverBuilder::with_default_providers`] or
//! [`ResolverBuilder::with_provider`]. Each brings its offline description
//! ([`secrets_core::ProviderDescriptor`]), which [`Plan`], the token checks and the report
//! use, so that nothing here knows a provider but the one registration table.

mod options;
mod plan;
mod registry;
mod report;
mod resolver;
mod tuning;

pub use options::ResolveOptions;
pub use plan::Plan;
pub use registry::{compiled_providers, descriptor_for, descriptors, feature_for, log_targets};
pub use report::{Outcome, Report, ResolveFailure, SecretReport};
pub use resolver::{Resolution, Resolver, ResolverBuilder};
pub use secrets_core;
pub use secrets_core::PlannedIdentity;
