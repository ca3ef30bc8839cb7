//! provider-vault
