//! The offline plan: which identities log in and how many reads and batches a job's secrets
//! cost, computed from the payload before expansion (so it never holds a token).

use secrets_core::payload::{non_empty, token_reference};
use secrets_core::{ProviderKind, Secrets};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// At most this many secret ids go into one `BatchGetSecretValue`.
pub const AWS_BATCH_SIZE: usize = 20;

/// What resolving a job's secrets will cost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Secrets in the job.
    pub secrets: usize,
    /// Secrets per provider keyword.
    pub providers: BTreeMap<String, usize>,
    /// One entry per login identity.
    pub identities: Vec<PlannedIdentity>,
    /// Vault logins plus STS calls.
    pub logins: usize,
    /// Single reads (Vault reads and `GetSecretValue`).
    pub reads: usize,
    /// `BatchGetSecretValue` calls.
    pub batches: usize,
    /// Secrets skipped because no resolver handles them.
    pub skipped: Vec<String>,
}

/// One login identity and what it reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedIdentity {
    /// The provider keyword.
    pub provider: String,
    /// Server, auth path and role, or region and role: never a token.
    pub identity: String,
    /// The variables this identity resolves.
    pub variables: Vec<String>,
    /// 1 when the identity logs in (Vault, or AWS with a role), else 0.
    pub logins: usize,
    /// Distinct single reads.
    pub reads: usize,
    /// Batch calls.
    pub batches: usize,
}

#[derive(Default)]
struct Group {
    variables: Vec<String>,
    reads: BTreeSet<String>,
    batched: BTreeSet<String>,
    logs_in: bool,
}

impl Plan {
    /// The plan for `secrets` as GitLab sends them (before expansion).
    pub fn of(secrets: &Secrets) -> Self {
        let mut plan = Plan {
            secrets: secrets.len(),
            ..Plan::default()
        };
        let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
        for (key, secret) in secrets {
            let providers = secret.providers();
            let Some(kind) = providers.first() else {
                plan.skipped.push(key.clone());
                continue;
            };
            *plan.providers.entry(kind.keyword().to_owned()).or_default() += 1;
            match kind {
                ProviderKind::Vault => {
                    let v = secret.vault.as_ref().expect("providers() said vault");
                    let identity = format!(
                        "{} namespace {} auth {} role {} token {}",
                        v.server.url,
                        v.server.namespace.as_deref().unwrap_or("(root)"),
                        v.server.auth.path,
                        v.server
                            .auth
                            .data_str("role")
                            .unwrap_or_else(|| "(default)".into()),
                        token_reference(&v.server.auth.data_str("jwt").unwrap_or_default()),
                    );
                    let group = groups.entry((kind.keyword().into(), identity)).or_default();
                    group.logs_in = true;
                    group.variables.push(key.clone());
                    group
                        .reads
                        .insert(format!("{} {}/{}", v.engine.name, v.engine.path, v.path));
                }
                ProviderKind::AwsSecretsManager => {
                    let a = secret
                        .aws_secrets_manager
                        .as_ref()
                        .expect("providers() said aws");
                    let region = non_empty(&a.region).unwrap_or(&a.server.region);
                    let role = non_empty(&a.role_arn).or(non_empty(&a.server.role_arn));
                    let identity = match role {
                        Some(role) => format!(
                            "{region} role {role} session {} token {}",
                            non_empty(&a.role_session_name)
                                .or(non_empty(&a.server.role_session_name))
                                .unwrap_or("(default)"),
                            token_reference(&a.server.jwt)
                        ),
                        None => format!("{region} default credential chain"),
                    };
                    let group = groups.entry((kind.keyword().into(), identity)).or_default();
                    group.logs_in = role.is_some();
                    group.variables.push(key.clone());
                    let pinned =
                        non_empty(&a.version_id).is_some() || non_empty(&a.version_stage).is_some();
                    if pinned {
                        group.reads.insert(format!(
                            "{} {} {}",
                            a.secret_id,
                            a.version_id.as_deref().unwrap_or_default(),
                            a.version_stage.as_deref().unwrap_or_default()
                        ));
                    } else {
                        group.batched.insert(a.secret_id.clone());
                    }
                }
                other => {
                    let group = groups
                        .entry((other.keyword().into(), "not supported by this tool".into()))
                        .or_default();
                    group.variables.push(key.clone());
                }
            }
        }
        for ((provider, identity), group) in groups {
            let batches = group.batched.len().div_ceil(AWS_BATCH_SIZE);
            let entry = PlannedIdentity {
                provider,
                identity,
                variables: group.variables,
                logins: usize::from(group.logs_in),
                reads: group.reads.len(),
                batches,
            };
            plan.logins += entry.logins;
            plan.reads += entry.reads;
            plan.batches += entry.batches;
            plan.identities.push(entry);
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrets_core::JobPayload;

    #[test]
    fn counts_logins_reads_and_batches() {
        let mut secrets = serde_json::Map::new();
        for i in 0..20 {
            secrets.insert(
                format!("V{i}"),
                serde_json::json!({"vault": {"server": {"url": "https://v", "auth": {"name": "jwt", "path": "jwt",
                    "data": {"jwt": "$T", "role": "ci"}}}, "engine": {"name": "kv-v2", "path": "secret"},
                    "path": format!("app/{}", i % 5), "field": format!("f{i}")}}),
            );
        }
        for i in 0..30 {
            secrets.insert(
                format!("A{i}"),
                serde_json::json!({"aws_secrets_manager": {"secret_id": format!("s/{i}"),
                    "server": {"region": "us-east-1", "jwt": "$AWS_ID_TOKEN", "role_arn": "arn:aws:iam::1:role/r"}}}),
            );
        }
        secrets.insert(
            "PINNED".into(),
            serde_json::json!({"aws_secrets_manager": {"secret_id": "s/1", "version_stage": "AWSPREVIOUS",
                "server": {"region": "us-east-1", "jwt": "$AWS_ID_TOKEN", "role_arn": "arn:aws:iam::1:role/r"}}}),
        );
        secrets.insert("OLD".into(), serde_json::json!({"akeyless": {}}));
        secrets.insert(
            "LITERAL".into(),
            serde_json::json!({"vault": {"server": {"url": "https://v", "auth": {"name": "jwt", "path": "jwt",
                "data": {"jwt": "eyJ.canary-literal.sig"}}}, "engine": {"name": "kv-v2", "path": "secret"},
                "path": "x", "field": "f"}}),
        );
        let payload: JobPayload =
            serde_json::from_value(serde_json::json!({ "secrets": secrets })).unwrap();
        let plan = Plan::of(&payload.secrets);
        assert_eq!(plan.secrets, 53);
        assert_eq!(plan.identities.len(), 3);
        assert_eq!((plan.logins, plan.reads, plan.batches), (3, 5 + 1 + 1, 2));
        assert_eq!(plan.skipped, ["OLD"]);
        assert_eq!(plan.providers["vault"], 21);
        let printed = serde_json::to_string(&plan).unwrap();
        assert!(
            printed.contains("token $AWS_ID_TOKEN"),
            "references, not tokens"
        );
    }
}
