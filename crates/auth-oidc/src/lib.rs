//! GitLab CI ID tokens.
//!
//! [`IdToken`] reads a token's claims *without* trusting them (the secret manager verifies the
//! signature) so that a resolution can fail before any request, with a clear error, when the
//! token is empty, malformed or expired, and so that refusals can be explained with the
//! token's `aud` and `sub`. The token itself is never printed.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod clock;
/// Test support: a local OIDC issuer, a token minter and the e2e fixtures (feature `testing`).
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod token;

pub use clock::{Clock, FixedClock, SystemClock};
pub use token::{Audience, Claims, IdToken, TokenError};
