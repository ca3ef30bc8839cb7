//! The offline description of the GitLab Secrets Manager provider: token location,
//! reference text, plan, request kinds, log targets and what the OpenBao role needs.

use crate::planning::{group, reference};
use crate::requests::{ALL, READ};
use auth_oidc::Claims;
use provider_http::tls::display_url_text;
use secrets_core::{
    PlannedIdentity, ProviderDescriptor, ProviderKind, RequestKind, Secret, TrustHint,
};

/// The provider's description.
#[derive(Debug, Clone, Copy, Default)]
pub struct GitlabSecretsManagerDescriptor;

/// The one instance.
pub static DESCRIPTOR: GitlabSecretsManagerDescriptor = GitlabSecretsManagerDescriptor;

impl ProviderDescriptor for GitlabSecretsManagerDescriptor {
    fn kind(&self) -> ProviderKind {
        ProviderKind::GitlabSecretsManager
    }

    fn feature(&self) -> &'static str {
        "gitlab-sm"
    }

    /// `server.inline_auth.jwt`, the JWT GitLab minted.
    fn id_token(&self, secret: &Secret) -> Option<String> {
        secret
            .gitlab_secrets_manager
            .as_deref()
            .map(|g| g.server.inline_auth.jwt.expose().to_owned())
            .filter(|jwt| !jwt.is_empty())
    }

    fn reference(&self, secret: &Secret) -> String {
        secret
            .gitlab_secrets_manager
            .as_deref()
            .map(reference)
            .unwrap_or_default()
    }

    /// No login: one read per distinct path of each identity.
    fn plan(&self, secrets: &[(&str, &Secret)]) -> Vec<PlannedIdentity> {
        let (groups, _) = group(secrets.iter().copied());
        groups
            .iter()
            .map(|g| {
                let (paths, _) = g.distinct_paths();
                let identity = format!(
                    "{} inline auth {} role {}",
                    display_url_text(g.key.url),
                    g.key.auth_path,
                    g.key.role
                );
                let variables = g.members.iter().map(|m| m.variable.to_owned()).collect();
                PlannedIdentity::new(
                    ProviderKind::GitlabSecretsManager,
                    identity,
                    variables,
                    [(READ, paths.len() as u64)],
                )
            })
            .collect()
    }

    fn request_kinds(&self) -> &'static [RequestKind] {
        ALL
    }

    fn log_targets(&self) -> &'static [&'static str] {
        &["provider_gitlab_sm"]
    }

    fn trust_hint(&self, claims: &Claims, role: &str) -> Option<TrustHint> {
        let bound: serde_json::Map<String, serde_json::Value> = [
            "project_id",
            "namespace_id",
            "ref",
            "ref_protected",
            "environment",
        ]
        .into_iter()
        .filter_map(|k| claims.get_str(k).map(|v| (k.to_owned(), v.into())))
        .collect();
        Some(TrustHint::new(
            "The OpenBao jwt role (GitLab's all_pipelines, or a CEL role) admits this token when",
            serde_json::json!({
                "role": role,
                "role_type": "jwt",
                "token_type": "batch",
                "bound_audiences": claims.aud.as_ref().map(|a| a.as_slice().to_vec()).unwrap_or_default(),
                "bound_issuer": claims.iss,
                "claims_seen": bound,
            }),
            vec![
                "bound_audiences must be the OpenBao URL GitLab sends as server.url.".to_owned(),
                "A login failure carries X-Vault-Inline-Auth-Failed: true; a 403 without it is the policy."
                    .to_owned(),
                "CEL roles (…/cel/login) may also check `environment:` and the branch.".to_owned(),
            ],
        ))
    }
}
