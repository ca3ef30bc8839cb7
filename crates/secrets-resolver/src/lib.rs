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
//! let mut resolution = resolver.resolve_payload(&payload).await?;
//! let variables = resolution.runner_variables(&payload.variables);
//! // ... start the job with `variables`; the Vault token's revoke is still in flight ...
//! resolution.close().await; // waits for it (and counts it in the report)
//! # let _ = variables; Ok(()) }
//! ```
//!
//! A [`Resolution`] comes back as soon as every value is there: cleanup that the job need not
//! wait for (revoking a Vault token) is still in flight, and [`Resolution::close`] (or
//! [`Resolution::closing`], which borrows nothing) waits for it. A failed resolution has
//! finished its cleanup when it returns.
//!
//! Providers are compiled in by cargo feature (see [`compiled_providers`]; all default) and
//! registered explicitly by [`ResolverBuilder::with_default_providers`] or
//! [`ResolverBuilder::with_provider`]. Each brings its offline description
//! ([`secrets_core::ProviderDescriptor`]), which [`Plan`], the token checks and the report
//! use, so that nothing here knows a provider but the one registration table.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod mask;
mod options;
mod plan;
mod registry;
mod report;
mod resolver;
mod tuning;

pub use options::ResolveOptions;
pub use plan::Plan;
/// The AWS Secrets Manager provider, for configuring it by hand ([`ResolverBuilder::with_provider`]).
#[cfg(feature = "aws-sm")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws-sm")))]
pub use provider_aws_sm;
/// The Vault / OpenBao provider, for configuring it by hand ([`ResolverBuilder::with_provider`]).
#[cfg(feature = "vault")]
#[cfg_attr(docsrs, doc(cfg(feature = "vault")))]
pub use provider_vault;
pub use registry::{compiled_providers, descriptor_for, descriptors, feature_for, log_targets};
pub use report::{Outcome, Report, ResolveFailure, SecretReport};
pub use resolver::{Resolution, Resolver, ResolverBuilder};
pub use secrets_core;
pub use secrets_core::PlannedIdentity;
pub use secrets_core::masker::{MaskStream, MaskWriter, Masker};
