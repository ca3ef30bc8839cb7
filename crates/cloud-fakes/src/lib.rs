//! Protocol-exact fakes of the cloud services `gcp_secret_manager:` and `azure_key_vault:`
//! talk to, for tests only (`publish = false`; never a dependency of a shipped crate).
//!
//! - Google (plain HTTP on loopback): STS `POST /v1/token`, Secret Manager
//!   `GET /v1/…/versions/…:access` (global and regional names), IAM Credentials
//!   `generateAccessToken`.
//! - Azure (TLS, under the real host names with a test CA): Entra ID discovery, instance
//!   discovery and the v2.0 token endpoint with federated client assertions; Key Vault
//!   `GET /secrets/<name>[/<version>]` with the bearer challenge.
//! - An HTTP `CONNECT` proxy that tunnels only the Azure host names to the Azure listener
//!   ([`connect`]), so an unmodified client reaches it through `HTTPS_PROXY`.
//! - Both: `GET /_fake/requests` (counts per endpoint kind), `POST /_fake/reset`,
//!   `GET /_fake/health`.
//!
//! ID tokens are verified against the issuer's JWKS found by OIDC discovery (the local
//! issuer of `auth-oidc`'s `testing` feature in this workspace). Seed data comes from a
//! [`Fixture`]. See `README.md` for the wire details and their sources, and
//! `docs/e2e-fixtures.md` for the seeded data.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

pub mod azure;
pub mod connect;
pub mod counts;
pub mod env;
pub mod fixture;
pub mod gcp;
pub mod jwt;
mod serve;
mod server;
pub mod tls;
mod util;

pub use counts::{Counters, Kind};
pub use fixture::Fixture;
pub use serve::{ServeArgs, serve_blocking};
pub use server::{RunningFakes, StartError, tls_names};

/// The default fixture, as `cargo xtask services up` seeds it (`fixtures/default.yaml`).
pub const DEFAULT_FIXTURE: &str = include_str!("../fixtures/default.yaml");
