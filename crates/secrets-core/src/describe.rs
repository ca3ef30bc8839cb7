//! A provider's offline description: what the resolver, `check` and `doctor` need to know
//! about a provider without building it or sending a request. Each provider crate owns one
//! and the facade registers it once, next to the provider.

use crate::payload::{ProviderKind, Secret};
use crate::requests::{RequestKind, RequestRole};
use auth_oidc::Claims;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// What a provider is, offline.
pub trait ProviderDescriptor: Send + Sync + fmt::Debug {
    /// The keyword it serves.
    fn kind(&self) -> ProviderKind;

    /// The facade's cargo feature that compiles it in.
    fn feature(&self) -> &'static str;

    /// The ID token `secret` logs in with, as the entry holds it: the variable reference
    /// before expansion, the token after. `None` when this secret needs no ID token (e.g. AWS
    /// with the default credential chain); the resolver checks the token once, before any
    /// request, with the resolution's clock.
    fn id_token(&self, secret: &Secret) -> Option<String>;

    /// The one reference text of `secret` in reports and errors (server, mount, path, field;
    /// secret id and region; ...), never a token or credentials.
    fn reference(&self, secret: &Secret) -> String;

    /// What resolving `secrets` (as GitLab sends them, before expansion) costs, one entry per
    /// identity, computed by the code the live path groups and batches with.
    fn plan(&self, secrets: &[(&str, &Secret)]) -> Vec<PlannedIdentity>;

    /// Every kind of request it sends (its report keys).
    fn request_kinds(&self) -> &'static [RequestKind];

    /// Its own tracing targets, logged at the level the user asks for.
    fn log_targets(&self) -> &'static [&'static str];

    /// Dependencies whose debug output may quote service messages or headers: kept at info
    /// unless the user names them explicitly.
    fn quiet_log_targets(&self) -> &'static [&'static str] {
        &[]
    }

    /// What the provider's server side must match to admit a token with `claims` for
    /// `target` (a Vault role, an AWS role ARN, ...). `None` when it logs in otherwise.
    fn trust_hint(&self, claims: &Claims, target: &str) -> Option<TrustHint> {
        let _ = (claims, target);
        None
    }
}

/// One login identity of a plan and what it costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PlannedIdentity {
    /// The provider keyword.
    pub provider: String,
    /// Who logs in where (server, auth path and role; region and role; ...): never a token.
    pub identity: String,
    /// The variables this identity resolves.
    pub variables: Vec<String>,
    /// Requests by report key.
    pub requests: BTreeMap<String, u64>,
    /// Requests that log in (Vault logins, STS calls, token requests).
    pub logins: u64,
    /// Single reads.
    pub reads: u64,
    /// Batch reads.
    pub batches: u64,
}

impl PlannedIdentity {
    /// An identity of `kind` with its planned requests; totals by role are derived.
    pub fn new(
        kind: ProviderKind,
        identity: impl Into<String>,
        variables: Vec<String>,
        requests: impl IntoIterator<Item = (RequestKind, u64)>,
    ) -> Self {
        let mut out = Self {
            provider: kind.keyword().to_owned(),
            identity: identity.into(),
            variables,
            requests: BTreeMap::new(),
            logins: 0,
            reads: 0,
            batches: 0,
        };
        for (request, count) in requests {
            if count == 0 {
                continue;
            }
            *out.requests.entry(request.as_str().to_owned()).or_default() += count;
            match request.role() {
                RequestRole::Login => out.logins += count,
                RequestRole::Read => out.reads += count,
                RequestRole::Batch => out.batches += count,
                RequestRole::Logout => {}
            }
        }
        out
    }
}

/// What a server must be configured with to admit a token, for `doctor`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TrustHint {
    /// What this describes, e.g. "A Vault JWT role admits this token when".
    pub title: String,
    /// The settings, as the server's API or policy language takes them.
    pub settings: serde_json::Value,
    /// What the server answers when they do not match.
    pub notes: Vec<String>,
}

impl TrustHint {
    /// A hint.
    pub fn new(title: impl Into<String>, settings: serde_json::Value, notes: Vec<String>) -> Self {
        Self {
            title: title.into(),
            settings,
            notes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_follow_the_roles() {
        const LOGIN: RequestKind = RequestKind::new("x_login", RequestRole::Login);
        const READ: RequestKind = RequestKind::new("x_read", RequestRole::Read);
        const BATCH: RequestKind = RequestKind::new("x_batch", RequestRole::Batch);
        const OUT: RequestKind = RequestKind::new("x_out", RequestRole::Logout);
        let id = PlannedIdentity::new(
            ProviderKind::Vault,
            "who",
            vec!["A".into()],
            [(LOGIN, 1), (READ, 3), (BATCH, 2), (OUT, 1), (READ, 0)],
        );
        assert_eq!((id.logins, id.reads, id.batches), (1, 3, 2));
        assert_eq!(id.requests.len(), 4);
        assert_eq!(id.requests["x_out"], 1);
    }
}
