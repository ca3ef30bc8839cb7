//! auth-oidc
