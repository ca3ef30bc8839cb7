//! The offline description of the Vault provider: token location, reference text, plan,
//! request kinds, log targets and the role a token needs.

use crate::grouping::{group, reference};
use crate::requests::{ALL, LOGIN, READ, REVOKE};
use auth_oidc::Claims;
use provider_http::tls::display_url_text;
use secrets_core::payload::token_reference;
use secrets_core::{PlannedIdentity, ProviderDescriptor, ProviderKind, Secret, TrustHint};

/// The Vault provider's description; register it with the provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct VaultDescriptor;

/// The one instance.
pub static DESCRIPTOR: VaultDescriptor = VaultDescriptor;

impl ProviderDescriptor for VaultDescriptor {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Vault
    }

    fn feature(&self) -> &'static str {
        "vault"
    }

    fn id_token(&self, secret: &Secret) -> Option<String> {
        let v = secret.vault.as_deref()?;
        (v.server.auth.name == "jwt")
            .then(|| v.server.auth.data_str("jwt"))
            .flatten()
    }

    fn reference(&self, secret: &Secret) -> String {
        secret.vault.as_deref().map(reference).unwrap_or_default()
    }

    /// One login, one read per distinct path and one revocation per identity (revocation
    /// is on by default).
    fn plan(&self, secrets: &[(&str, &Secret)]) -> Vec<PlannedIdentity> {
        let (groups, _) = group(secrets.iter().copied());
        groups
            .iter()
            .map(|g| {
                let (paths, _) = g.distinct_paths();
                let identity = format!(
                    "{} namespace {} auth {} role {} token {}",
                    display_url_text(g.key.url),
                    g.key.namespace.unwrap_or("(root)"),
                    g.auth_path,
                    g.key.role.as_deref().unwrap_or("(default)"),
                    token_reference(&g.key.jwt),
                );
                let variables = g.members.iter().map(|m| m.variable.to_owned()).collect();
                PlannedIdentity::new(
                    ProviderKind::Vault,
                    identity,
                    variables,
                    [(LOGIN, 1), (READ, paths.len() as u64), (REVOKE, 1)],
                )
            })
            .collect()
    }

    fn request_kinds(&self) -> &'static [secrets_core::RequestKind] {
        ALL
    }

    fn log_targets(&self) -> &'static [&'static str] {
        &["provider_vault"]
    }

    fn trust_hint(&self, claims: &Claims, role: &str) -> Option<TrustHint> {
        let bound: serde_json::Map<String, serde_json::Value> =
            ["project_path", "ref", "ref_type", "ref_protected"]
                .into_iter()
                .filter_map(|k| claims.get_str(k).map(|v| (k.to_owned(), v.into())))
                .collect();
        Some(TrustHint::new(
            "A Vault JWT role admits this token when (bound_claims_type=glob)",
            serde_json::json!({
                "role": role,
                "bound_audiences": claims.aud.as_ref().map(|a| a.as_slice().to_vec()).unwrap_or_default(),
                "bound_claims_type": "glob",
                "bound_claims": bound,
                "bound_issuer": claims.iss,
            }),
            vec![
                "Vault 1.17+ refuses tokens whose aud is not in bound_audiences (HTTP 400 on login)."
                    .to_owned(),
            ],
        ))
    }
}
