//! The offline plan: which identities log in and which requests a job's secrets cost,
//! computed from the payload before expansion (so it never holds a token) by each provider's
//! own planning, the code its live path groups and batches with.

use crate::registry::descriptor_for;
use secrets_core::{PlannedIdentity, ProviderKind, Secret, Secrets};
use serde::Serialize;
use std::collections::BTreeMap;

/// What resolving a job's secrets will cost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Plan {
    /// Secrets in the job.
    pub secrets: usize,
    /// Secrets per provider keyword.
    pub providers: BTreeMap<String, usize>,
    /// One entry per login identity.
    pub identities: Vec<PlannedIdentity>,
    /// Requests by report key (the keys of [`crate::Report::requests`]).
    pub requests: BTreeMap<String, u64>,
    /// Requests that log in (Vault logins, STS calls, ...).
    pub logins: u64,
    /// Single reads.
    pub reads: u64,
    /// Batch reads.
    pub batches: u64,
    /// Secrets skipped because no resolver handles them.
    pub skipped: Vec<String>,
    /// Secrets whose provider is not compiled in or not supported (they will fail).
    pub unsupported: Vec<String>,
}

impl Plan {
    /// The plan for `secrets` as GitLab sends them (before expansion), by the providers
    /// compiled into this build.
    pub fn of(secrets: &Secrets) -> Self {
        let mut plan = Plan {
            secrets: secrets.len(),
            ..Plan::default()
        };
        let mut by_kind: BTreeMap<ProviderKind, Vec<(&str, &Secret)>> = BTreeMap::new();
        for (key, secret) in secrets {
            match secret.providers().as_slice() {
                [] => plan.skipped.push(key.clone()),
                [kind] => {
                    *plan.providers.entry(kind.keyword().to_owned()).or_default() += 1;
                    by_kind.entry(*kind).or_default().push((key, secret));
                }
                _ => plan.unsupported.push(key.clone()),
            }
        }
        for (kind, secrets) in by_kind {
            let Some(descriptor) = descriptor_for(kind) else {
                plan.unsupported
                    .extend(secrets.iter().map(|(k, _)| (*k).to_owned()));
                continue;
            };
            for identity in descriptor.plan(&secrets) {
                for (key, count) in &identity.requests {
                    *plan.requests.entry(key.clone()).or_default() += count;
                }
                plan.logins += identity.logins;
                plan.reads += identity.reads;
                plan.batches += identity.batches;
                plan.identities.push(identity);
            }
        }
        plan
    }
}

#[cfg(all(test, feature = "vault", feature = "aws-sm"))]
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
            serde_json::json!({"vault": {"server": {"url": "https://user:pw@v", "auth": {"name": "jwt", "path": "jwt",
                "data": {"jwt": "eyJ.canary-literal.sig"}}}, "engine": {"name": "kv-v2", "path": "secret"},
                "path": "x", "field": "f"}}),
        );
        let payload: JobPayload =
            serde_json::from_value(serde_json::json!({ "secrets": secrets })).unwrap();
        let plan = Plan::of(&payload.secrets);
        assert_eq!(plan.secrets, 53);
        assert_eq!(plan.identities.len(), 3);
        assert_eq!((plan.logins, plan.reads, plan.batches), (3, 5 + 1 + 1, 2));
        assert_eq!(plan.requests["vault_revoke"], 2);
        assert_eq!(plan.skipped, ["OLD"]);
        assert_eq!(plan.providers["vault"], 21);
        let printed = serde_json::to_string(&plan).unwrap();
        assert!(
            printed.contains("token $AWS_ID_TOKEN"),
            "references, not tokens"
        );
        assert!(
            !printed.contains("canary-literal") && !printed.contains("user:pw"),
            "{printed}"
        );
    }

    #[test]
    fn a_lone_current_aws_secret_is_one_get() {
        let payload: JobPayload = serde_json::from_value(serde_json::json!({"secrets": {
            "ONE": {"aws_secrets_manager": {"secret_id": "s", "server": {"region": "us-east-1"}}}
        }}))
        .unwrap();
        let plan = Plan::of(&payload.secrets);
        assert_eq!(plan.requests.get("sm_get"), Some(&1));
        assert_eq!(plan.requests.get("sm_batch_get"), None);
    }
}
