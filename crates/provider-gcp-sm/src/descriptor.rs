//! The offline description of the GCP Secret Manager provider: token location, reference
//! text, plan, request kinds, log targets and what a workload identity pool provider needs.

use crate::config::IMPERSONATE_VARIABLE;
use crate::grouping::{group, reference};
use crate::requests::{ALL, GCP_ACCESS, GCP_GENERATE_ACCESS_TOKEN, GCP_STS_EXCHANGE};
use auth_oidc::Claims;
use secrets_core::payload::token_reference;
use secrets_core::{PlannedIdentity, ProviderDescriptor, ProviderKind, Secret, TrustHint};

/// Google's limit on the mapped `google.subject`, in bytes.
pub(crate) const SUBJECT_LIMIT: usize = 127;

/// The GCP Secret Manager provider's description; register it with the provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcpSecretManagerDescriptor;

/// The one instance.
pub static DESCRIPTOR: GcpSecretManagerDescriptor = GcpSecretManagerDescriptor;

/// `(project number, pool, provider)` of a provider named as `//iam.googleapis.com/projects/
/// N/locations/global/workloadIdentityPools/P/providers/Q` (with or without the host).
fn parse_provider(target: &str) -> (String, String, String) {
    let path = target
        .trim_start_matches("https:")
        .trim_start_matches("//iam.googleapis.com/");
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [
            "projects",
            n,
            "locations",
            _,
            "workloadIdentityPools",
            pool,
            "providers",
            p,
        ] => ((*n).to_owned(), (*pool).to_owned(), (*p).to_owned()),
        _ => (
            "PROJECT_NUMBER".to_owned(),
            "POOL".to_owned(),
            if target.is_empty() {
                "PROVIDER"
            } else {
                target
            }
            .to_owned(),
        ),
    }
}

impl ProviderDescriptor for GcpSecretManagerDescriptor {
    fn kind(&self) -> ProviderKind {
        ProviderKind::GcpSecretManager
    }

    fn feature(&self) -> &'static str {
        "gcp-sm"
    }

    fn id_token(&self, secret: &Secret) -> Option<String> {
        secret
            .gcp_secret_manager
            .as_deref()
            .map(|g| g.server.jwt.expose().to_owned())
    }

    fn reference(&self, secret: &Secret) -> String {
        secret
            .gcp_secret_manager
            .as_deref()
            .map(reference)
            .unwrap_or_default()
    }

    /// One STS exchange per (audience, ID token), one `generateAccessToken` per service
    /// account it impersonates (opt-in) and one access per distinct version and principal.
    fn plan(&self, secrets: &[(&str, &Secret)]) -> Vec<PlannedIdentity> {
        let (groups, _) = group(secrets.iter().copied());
        groups
            .iter()
            .map(|g| {
                let (reads, _) = g.distinct_reads();
                let identity = format!("{} token {}", g.key.audience, token_reference(g.key.jwt));
                let variables = g.members.iter().map(|m| m.variable.to_owned()).collect();
                PlannedIdentity::new(
                    ProviderKind::GcpSecretManager,
                    identity,
                    variables,
                    [
                        (GCP_STS_EXCHANGE, 1),
                        (GCP_GENERATE_ACCESS_TOKEN, g.service_accounts().len() as u64),
                        (GCP_ACCESS, reads.len() as u64),
                    ],
                )
            })
            .collect()
    }

    fn request_kinds(&self) -> &'static [secrets_core::RequestKind] {
        ALL
    }

    fn log_targets(&self) -> &'static [&'static str] {
        &["provider_gcp_sm"]
    }

    /// `target`: the pool provider, as
    /// `//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/Q`.
    fn trust_hint(&self, claims: &Claims, target: &str) -> Option<TrustHint> {
        let (number, pool, provider) = parse_provider(target);
        let resource = format!(
            "projects/{number}/locations/global/workloadIdentityPools/{pool}/providers/{provider}"
        );
        let claim = |name: &str| claims.get_str(name).unwrap_or_else(|| "(none)".to_owned());
        let sub = claims.get_str("sub").unwrap_or_default();
        let mut notes = vec![
            format!(
                "STS answers invalid_grant when the token's aud ({}) is not an allowed audience; \
                 the default allowed audience is https://iam.googleapis.com/{resource}",
                claim("aud")
            ),
            "STS answers unauthorized_client when the attribute condition is false for the token."
                .to_owned(),
            format!(
                "The principal needs roles/secretmanager.secretAccessor, e.g. principalSet://iam.googleapis.com/\
                 projects/{number}/locations/global/workloadIdentityPools/{pool}/attribute.gitlab_project_id/{}",
                claim("project_id")
            ),
        ];
        notes.push(format!(
            "To impersonate a service account instead ({IMPERSONATE_VARIABLE}), grant that principal set \
             roles/iam.workloadIdentityUser on the service account, and the service account \
             roles/secretmanager.secretAccessor on the secrets."
        ));
        if sub.len() > SUBJECT_LIMIT {
            notes.push(format!(
                "google.subject = assertion.sub is {} bytes, over Google's {SUBJECT_LIMIT}-byte limit: STS \
                 answers invalid_request; map google.subject to a shorter claim",
                sub.len()
            ));
        }
        Some(TrustHint::new(
            "A workload identity pool provider admits this token with",
            serde_json::json!({
                "provider": format!("//iam.googleapis.com/{resource}"),
                "issuer_uri": claims.iss,
                "allowed_audiences": claims.aud.as_ref().map(|a| a.as_slice().to_vec()).unwrap_or_default(),
                "attribute_mapping": {
                    "google.subject": "assertion.sub",
                    "attribute.gitlab_project_id": "assertion.project_id",
                    "attribute.namespace_path": "assertion.namespace_path",
                    "attribute.ref": "assertion.ref",
                },
                "attribute_condition": format!(
                    "assertion.namespace_path == \"{}\" && assertion.project_id == \"{}\"",
                    claim("namespace_path"),
                    claim("project_id")
                ),
                "google_subject": {"value": sub, "bytes": sub.len(), "limit": SUBJECT_LIMIT},
            }),
            notes,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_parse_from_their_names() {
        assert_eq!(
            parse_provider(
                "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q"
            ),
            ("1".into(), "p".into(), "q".into())
        );
        assert_eq!(parse_provider("q").2, "q");
    }

    #[test]
    fn the_trust_hint_names_audience_subject_length_and_principal() {
        use base64::Engine as _;
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let sub = format!("project_path:g/p:ref_type:branch:ref:{}", "x".repeat(100));
        let claims = serde_json::json!({"iss": "https://gitlab.example.com", "aud": "https://a",
            "sub": sub, "project_id": "42", "namespace_path": "g"});
        let jwt = format!("{}.{}.sig", b(r#"{"alg":"RS256"}"#), b(&claims.to_string()));
        let token = auth_oidc::IdToken::parse(&jwt).unwrap();
        let target =
            "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q";
        let hint = DESCRIPTOR.trust_hint(token.claims(), target).unwrap();
        assert_eq!(hint.settings["provider"], target);
        assert_eq!(hint.settings["google_subject"]["bytes"], sub.len());
        assert_eq!(hint.settings["allowed_audiences"][0], "https://a");
        let notes = hint.notes.join("\n");
        assert!(notes.contains("over Google's 127-byte limit"), "{notes}");
        assert!(notes.contains("attribute.gitlab_project_id/42"), "{notes}");
        assert!(notes.contains("roles/iam.workloadIdentityUser"), "{notes}");
    }
}
