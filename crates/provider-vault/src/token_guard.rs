//! A Vault token that is revoked whatever ends the resolution.

use crate::server::ServerClient;
use provider_http::Failure;
use secrecy::SecretString;
use std::sync::Arc;

/// A logged-in Vault token that is revoked even when the resolution is dropped before it
/// ends (a caller's timeout or cancellation, its runtime shutting down): dropped while still
/// held, it revokes the token on a thread of its own (see `revocation.rs`).
/// [`Self::revoke`] revokes in place, [`Self::keep`] lets the token live until its TTL.
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

    /// Revokes the token now. The guard holds the token until the server has answered: if
    /// this future is dropped first (its runtime shutting down), `Drop` revokes it.
    pub(crate) async fn revoke(mut self) -> Result<(), Failure> {
        let result = self
            .client
            .revoke(self.namespace.as_deref(), self.token())
            .await;
        // Revoked, or refused: another attempt would not help.
        self.token = None;
        result
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
        tracing::info!(server = %self.client.display, "resolution dropped: revoking its Vault token");
        let bound = self.client.timeout();
        crate::revocation::revoke_detached(
            Arc::clone(&self.client),
            bound,
            self.namespace.take(),
            token,
        );
    }
}
