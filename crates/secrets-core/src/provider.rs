//! The provider trait and what a resolution shares with its providers.

use crate::context::ResolveContext;
use crate::describe::ProviderDescriptor;
use crate::payload::{ProviderKind, Secret};
use crate::{Error, SecretValue};
use async_trait::async_trait;
use std::fmt;

/// One secret to resolve: the variable it creates and its entry, already expanded.
#[derive(Debug, Clone)]
pub struct SecretRequest {
    /// The job variable the secret becomes.
    pub variable: String,
    /// The secret's entry after variable expansion. It may hold tokens; its `Debug` hides them.
    pub secret: Secret,
}

/// A resolved secret.
#[derive(Debug)]
pub struct Resolved {
    /// The value.
    pub value: SecretValue,
    /// Remarks for the report (never a value), e.g. "called eu-west-1, the ARN's region".
    pub notes: Vec<String>,
}

impl Resolved {
    /// A value without remarks.
    pub fn new(value: SecretValue) -> Self {
        Self {
            value,
            notes: Vec::new(),
        }
    }
}

/// A secret manager behind one provider keyword.
///
/// A provider gets every secret of its keyword in one call, so it can log in once per
/// identity, read each distinct object once and batch reads; it ends its sessions (e.g.
/// revokes Vault tokens) before it returns. It answers one result per request, in order.
/// A secret that does not exist is an [`Error`] of kind
/// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound); the caller decides whether that fails
/// the job.
#[async_trait]
pub trait SecretProvider: Send + Sync + fmt::Debug {
    /// The provider's offline description (its keyword, reference text, plan, ...).
    fn descriptor(&self) -> &'static dyn ProviderDescriptor;

    /// The provider keyword this implementation serves.
    fn kind(&self) -> ProviderKind {
        self.descriptor().kind()
    }

    /// Resolves `requests`, all of which name [`Self::kind`]. Returns one result per request,
    /// in the same order.
    async fn resolve(
        &self,
        requests: &[SecretRequest],
        ctx: &ResolveContext,
    ) -> Vec<Result<Resolved, Error>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn trait_is_object_safe() {
        fn takes(_: Option<Arc<dyn SecretProvider>>) {}
        takes(None);
    }
}
