//! The [`SecretProvider`] for `gitlab_secrets_manager:` secrets.
//!
//! 1. each secret is checked without I/O (inline auth, URL, engine, path);
//! 2. secrets are grouped by identity (OpenBao URL, login path, role, JWT);
//! 3. each identity reads each distinct path once with its inline-auth headers, all
//!    concurrently, bounded per server by `ctx.max_concurrency`; no login, no token;
//! 4. each variable takes its field from its path's answer; results come back in order.

use crate::answer::take_field;
use crate::client::{ReadContext, ServerClient};
use crate::descriptor::DESCRIPTOR;
use crate::inline;
use crate::planning::{Group, group};
use async_trait::async_trait;
use futures_util::future::join_all;
use provider_http::{ClientSettings, Failure, Slots};
use secrets_core::{
    Error, ProviderDescriptor, ResolveContext, Resolved, SecretProvider, SecretRequest,
};
use std::collections::HashMap;
use std::fmt;
use tracing::instrument;

/// Resolves `gitlab_secrets_manager:` secrets against GitLab's OpenBao with inline auth.
/// Build it with [`crate::GitlabSecretsManagerBuilder`].
pub struct GitlabSecretsManagerProvider {
    settings: ClientSettings,
}

impl fmt::Debug for GitlabSecretsManagerProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitlabSecretsManagerProvider")
            .field("settings", &self.settings)
            .finish()
    }
}

type Outcomes = Vec<(usize, Result<Resolved, Error>)>;

impl GitlabSecretsManagerProvider {
    pub(crate) fn new(settings: ClientSettings) -> Self {
        Self { settings }
    }

    /// Reads one identity's distinct paths and takes each member's field.
    #[instrument(skip_all, fields(server = %client.display(), auth_path = %group.key.auth_path, secrets = group.members.len()))]
    async fn run_group(
        &self,
        group: &Group<'_>,
        client: &ServerClient,
        ctx: &ResolveContext,
    ) -> Outcomes {
        let members = &group.members;
        let fail_all = |e: &Failure| -> Outcomes {
            members
                .iter()
                .map(|m| (m.index, Err(e.to_core(m.variable, &m.reference))))
                .collect()
        };
        let key = &group.key;
        let headers = match inline::headers(&key.auth_path, key.jwt, key.role) {
            Ok(h) => h,
            Err(e) => return fail_all(&e),
        };
        let (paths, path_of) = group.distinct_paths();
        let reads = paths.iter().map(|logical| {
            let read = ReadContext {
                logical,
                auth_path: &key.auth_path,
                role: key.role,
                jwt: key.jwt,
            };
            let headers = &headers;
            async move { client.read(headers, &read).await }
        });
        let answers = match ctx.before_deadline(join_all(reads)).await {
            Ok(answers) => answers,
            Err(late) => {
                return members
                    .iter()
                    .map(|m| (m.index, Err(late.error(m.variable, &m.reference))))
                    .collect();
            }
        };
        let mut sharing = vec![0usize; paths.len()];
        for &at in &path_of {
            sharing[at] += 1;
        }
        members
            .iter()
            .zip(path_of)
            .map(|(m, at)| {
                let result = match &answers[at] {
                    Err(e) => Err(e.to_core(m.variable, &m.reference)),
                    Ok(answer) => take_field(
                        &answer.body,
                        m.engine,
                        m.field,
                        &m.logical,
                        client.display(),
                    )
                    .map(|value| {
                        let mut resolved = Resolved::new(value);
                        if sharing[at] > 1 {
                            resolved.notes.push(format!(
                                "read {} once for {} variables",
                                m.logical, sharing[at]
                            ));
                        }
                        resolved
                    })
                    .map_err(|e| e.to_core(m.variable, &m.reference)),
                };
                (m.index, result)
            })
            .collect()
    }
}

#[async_trait]
impl SecretProvider for GitlabSecretsManagerProvider {
    fn descriptor(&self) -> &'static dyn ProviderDescriptor {
        &DESCRIPTOR
    }

    #[instrument(skip_all, fields(secrets = requests.len()))]
    async fn resolve(
        &self,
        requests: &[SecretRequest],
        ctx: &ResolveContext,
    ) -> Vec<Result<Resolved, Error>> {
        let mut results = Slots::new(requests.len());
        let (groups, failed) = group(requests.iter().map(|r| (r.variable.as_str(), &r.secret)));
        for (index, err) in failed {
            results.fill(index, Err(err));
        }
        let mut clients: HashMap<&str, Result<ServerClient, Failure>> = HashMap::new();
        for g in &groups {
            clients
                .entry(g.key.url)
                .or_insert_with(|| ServerClient::connect(&g.server, &self.settings, ctx));
        }
        let runs = groups.iter().map(|g| {
            let client = &clients[g.key.url];
            async move {
                match client {
                    Ok(client) => self.run_group(g, client, ctx).await,
                    Err(e) => g
                        .members
                        .iter()
                        .map(|m| (m.index, Err(e.to_core(m.variable, &m.reference))))
                        .collect(),
                }
            }
        });
        for (index, result) in join_all(runs).await.into_iter().flatten() {
            results.fill(index, result);
        }
        results.into_results()
    }
}
