//! secrets-resolver
