//! A Vault token that is revoked whatever ends the resolution.

use crate::server::ServerClient;
use provider_http::Failure;
use secrecy::SecretString;
use std::sync::Arc;

/// A logged-in Vault token that is revoked even when the resolution is dropped before it
/// ends (a caller's timeout or cancellation): dropped while still held, it revokes the token
/// in a task on the current Tokio runtime. [`Self::revoke`] revokes in place, [`Self::keep`]
/// lets the token live until its TTL.
pub(crate) struct TokenGuard {
    client: Arc<ServerClient>,
    namespace: Option<String>,
    token: Option<SecretString>,
}

impl TokenGuard {
    pub(crate) fn new(
        client: Arc<ServerClient>,
        namespace: Option<&str>,
        token: SecretString,
    ) -> Self {
        Self {
            client,
            namespace: namespace.map(str::to_owned),
            token: Some(token),
        }
    }

    /// The token, for requests.
    pub(crate) fn token(&self) -> &SecretString {
        self.token.as_ref().expect("held until revoked or kept")
    }

    /// Revokes the token now.
    pub(crate) async fn revoke(mut self) -> Result<(), Failure> {
        let token = self.token.take().expect("held until revoked or kept");
        self.client.revoke(self.namespace.as_deref(), &token).await
    }

    /// Lets the token live until its TTL ends (revocation turned off).
    pub(crate) fn keep(mut self) {
        self.token = None;
    }
}

impl Drop for TokenGuard {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                server = %self.client.display,
                "resolution dropped outside a Tokio runtime: the Vault token lives until its TTL ends"
            );
            return;
        };
        tracing::info!(server = %self.client.display, "resolution dropped: revoking its Vault token");
        let client = Arc::clone(&self.client);
        let namespace = self.namespace.take();
        runtime.spawn(async move {
            if let Err(e) = client.revoke(namespace.as_deref(), &token).await {
                tracing::warn!(
                    server = %client.display,
                    "could not revoke the Vault token (it lives until its TTL ends): {e}"
                );
            }
        });
    }
}
