//! GitLab CI ID tokens.
//!
//! [`IdToken`] reads a token's claims *without* trusting them (the secret manager verifies the
//! signature) so that a resolution can fail before any request, with a clear error, when the
//! token is empty, malformed or expired, and so that refusals can be explained with the
//! token's `aud` and `sub`. The token itself is never printed.

mod clock;
mod token;

pub use clock::{Clock, FixedClock, SystemClock};
pub use token::{Audience, Claims, IdToken, TokenError};
