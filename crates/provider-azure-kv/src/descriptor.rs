//! The offline description of the Azure Key Vault provider: token location, reference text,
//! plan, request kinds, log targets and the federated credential a token needs.

use crate::ENTRA_AUDIENCE;
use crate::grouping::{group, reference};
use crate::requests::{ALL, CHALLENGE, GET, TOKEN};
use auth_oidc::Claims;
use secrets_core::payload::token_reference;
use secrets_core::{PlannedIdentity, ProviderDescriptor, ProviderKind, Secret, TrustHint};

/// The Azure Key Vault provider's description.
#[derive(Debug, Clone, Copy, Default)]
pub struct AzureKeyVaultDescriptor;

/// The one instance.
pub static DESCRIPTOR: AzureKeyVaultDescriptor = AzureKeyVaultDescriptor;

impl ProviderDescriptor for AzureKeyVaultDescriptor {
    fn kind(&self) -> ProviderKind {
        ProviderKind::AzureKeyVault
    }

    fn feature(&self) -> &'static str {
        "azure-kv"
    }

    fn id_token(&self, secret: &Secret) -> Option<String> {
        secret
            .azure_key_vault
            .as_deref()
            .map(|a| a.server.jwt.expose().to_owned())
    }

    fn reference(&self, secret: &Secret) -> String {
        secret
            .azure_key_vault
            .as_deref()
            .map(reference)
            .unwrap_or_default()
    }

    /// Per identity: one token per resource, one challenge per vault host outside the
    /// known suffixes, one read per distinct (vault, name, version).
    fn plan(&self, secrets: &[(&str, &Secret)]) -> Vec<PlannedIdentity> {
        let (groups, _) = group(secrets.iter().copied());
        groups
            .iter()
            .map(|g| {
                let identity = format!(
                    "tenant {} client {} token {}",
                    g.key.tenant,
                    g.key.client,
                    token_reference(g.key.jwt)
                );
                let variables = g.members.iter().map(|m| m.variable.to_owned()).collect();
                PlannedIdentity::new(
                    ProviderKind::AzureKeyVault,
                    identity,
                    variables,
                    [
                        (CHALLENGE, g.challenges() as u64),
                        (TOKEN, g.scopes().len() as u64),
                        (GET, g.reads.len() as u64),
                    ],
                )
            })
            .collect()
    }

    fn request_kinds(&self) -> &'static [secrets_core::RequestKind] {
        ALL
    }

    fn log_targets(&self) -> &'static [&'static str] {
        &["provider_azure_kv"]
    }

    /// The federated credential an Entra app needs to admit this token (`target`: the
    /// app's client ID, or anything to name it).
    fn trust_hint(&self, claims: &Claims, target: &str) -> Option<TrustHint> {
        let audiences = claims
            .aud
            .as_ref()
            .map(|a| a.as_slice().to_vec())
            .unwrap_or_default();
        let mut notes = vec![
            "Entra matches issuer, subject and audience exactly (AADSTS70021 otherwise); a subject names one branch or tag.".to_owned(),
            "Give the app the Key Vault Secrets User role on the vault (ForbiddenByRbac otherwise).".to_owned(),
        ];
        if !audiences.iter().any(|a| a == ENTRA_AUDIENCE) {
            notes.push(format!(
                "The token's aud is not {ENTRA_AUDIENCE}: set `aud: {ENTRA_AUDIENCE}` in the job's id_tokens, or use the token's aud in the credential."
            ));
        }
        let audience = if audiences.iter().any(|a| a == ENTRA_AUDIENCE) {
            ENTRA_AUDIENCE.to_owned()
        } else {
            audiences
                .first()
                .cloned()
                .unwrap_or_else(|| ENTRA_AUDIENCE.to_owned())
        };
        Some(TrustHint::new(
            "An Entra app federated credential admits this token with",
            serde_json::json!({
                "application": target,
                "issuer": claims.iss,
                "subject": claims.sub,
                "audiences": [audience],
            }),
            notes,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrets_core::payload::{AzureSecret, AzureServer};

    fn secret(url: &str, name: &str, version: Option<&str>, jwt: &str) -> Secret {
        Secret {
            azure_key_vault: Some(Box::new(AzureSecret {
                name: name.into(),
                version: version.map(Into::into),
                server: AzureServer {
                    url: url.into(),
                    client_id: "c1".into(),
                    tenant_id: "t1".into(),
                    jwt: jwt.into(),
                },
            })),
            ..Secret::default()
        }
    }

    #[test]
    fn plans_one_token_per_resource_and_one_read_per_secret() {
        let a = secret("https://kv.vault.azure.net/", "db", None, "$T");
        let b = secret("https://kv.vault.azure.net", "DB", None, "$T");
        let c = secret("https://kv.vault.azure.net", "db", Some("0a"), "$T");
        let d = secret("https://kv.example.org", "x", None, "$T");
        let e = secret("https://other.vault.azure.cn", "x", None, "$T");
        let bad = secret("https://kv.vault.azure.net", "no_underscores", None, "$T");
        let plan = DESCRIPTOR.plan(&[
            ("A", &a),
            ("B", &b),
            ("C", &c),
            ("D", &d),
            ("E", &e),
            ("X", &bad),
        ]);
        assert_eq!(plan.len(), 1);
        let p = &plan[0];
        assert_eq!(p.requests["azure_get"], 4);
        assert_eq!(p.requests["azure_token"], 3);
        assert_eq!(p.requests["azure_challenge"], 1);
        assert_eq!(p.variables, ["A", "B", "C", "D", "E"]);
        assert_eq!(p.identity, "tenant t1 client c1 token $T");
        assert_eq!(
            DESCRIPTOR.reference(&c),
            "azure_key_vault secret db version 0a at https://kv.vault.azure.net"
        );
        assert_eq!(DESCRIPTOR.id_token(&a).as_deref(), Some("$T"));
    }

    #[test]
    fn the_trust_hint_is_the_tokens_issuer_subject_and_audience() {
        let claims: Claims = serde_json::from_value(serde_json::json!({
            "iss": "https://gitlab.example.com",
            "sub": "project_path:g/p:ref_type:branch:ref:main",
            "aud": "https://gitlab.example.com",
        }))
        .unwrap();
        let hint = DESCRIPTOR.trust_hint(&claims, "client-1").unwrap();
        assert_eq!(hint.settings["issuer"], "https://gitlab.example.com");
        assert_eq!(
            hint.settings["subject"],
            "project_path:g/p:ref_type:branch:ref:main"
        );
        assert_eq!(hint.settings["audiences"][0], "https://gitlab.example.com");
        assert!(
            hint.notes
                .iter()
                .any(|n| n.contains("api://AzureADTokenExchange"))
        );
    }
}
