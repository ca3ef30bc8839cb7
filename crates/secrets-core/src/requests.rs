//! Remote requests, counted by kind. Each provider names its own kinds (its report keys);
//! the core only knows what role a kind plays in a plan.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// What a request does for a resolution, so a plan can total logins, reads and batches of
/// any provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum RequestRole {
    /// Exchanges an identity for a session or credentials (Vault login, STS, token endpoint).
    Login,
    /// Reads one secret.
    Read,
    /// Reads several secrets in one request.
    Batch,
    /// Ends a session (Vault token revocation).
    Logout,
}

/// A kind of remote request: a report key owned by the provider that sends it (e.g.
/// `vault_login`) and its role.
///
/// ```
/// use secrets_core::{RequestKind, RequestRole};
/// const LOGIN: RequestKind = RequestKind::new("example_login", RequestRole::Login);
/// assert_eq!(LOGIN.as_str(), "example_login");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestKind {
    key: &'static str,
    role: RequestRole,
}

impl RequestKind {
    /// A kind with its report key (lowercase, `provider_operation`) and role.
    pub const fn new(key: &'static str, role: RequestRole) -> Self {
        Self { key, role }
    }

    /// The report key.
    pub fn as_str(self) -> &'static str {
        self.key
    }

    /// What the request does.
    pub fn role(self) -> RequestRole {
        self.role
    }
}

impl fmt::Debug for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key)
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key)
    }
}

/// Counts requests by kind; shared by every provider of one resolution.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Mutex<BTreeMap<RequestKind, u64>>>);

impl RequestCounter {
    /// Counts one request of `kind` (each attempt, retries included).
    pub fn record(&self, kind: RequestKind) {
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_default() += 1;
    }

    /// How many requests of `kind` were made.
    pub fn get(&self, kind: RequestKind) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&kind)
            .copied()
            .unwrap_or(0)
    }

    /// The counts by kind.
    pub fn by_kind(&self) -> BTreeMap<RequestKind, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The counts by report key.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.by_kind()
            .into_iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect()
    }

    /// Total requests of every kind.
    pub fn total(&self) -> u64 {
        self.by_kind().values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: RequestKind = RequestKind::new("x_login", RequestRole::Login);
    const READ: RequestKind = RequestKind::new("x_read", RequestRole::Read);
    const OTHER: RequestKind = RequestKind::new("y_read", RequestRole::Read);

    #[test]
    fn counts_by_report_key() {
        let counter = RequestCounter::default();
        let shared = counter.clone();
        counter.record(LOGIN);
        shared.record(READ);
        shared.record(READ);
        assert_eq!(counter.get(READ), 2);
        assert_eq!(counter.get(OTHER), 0);
        assert_eq!(counter.total(), 3);
        assert_eq!(
            counter.snapshot().into_iter().collect::<Vec<_>>(),
            [("x_login", 1), ("x_read", 2)]
        );
    }
}
