//! The [`SecretProvider`] for `vault:` secrets.
//!
//! One call resolves every Vault secret of a job:
//!
//! 1. each request is checked (server URL, auth method, `jwt` key, engine, path) without I/O;
//! 2. requests are grouped by identity (server URL, namespace, auth path, role, ID token) and
//!    each identity's token is checked (empty, malformed, expired) before any request;
//! 3. identities log in concurrently, once each;
//! 4. each identity reads each distinct API path once, concurrently, bounded per server by
//!    `ctx.max_concurrency`; every variable takes its field from its path's answer;
//! 5. each Vault token is revoked (unless turned off) through `ctx.cleanup`: before the
//!    results when it is inline, while the caller already has them when it is deferred (as
//!    the resolver does); results come back in request order.

use crate::classify::ClaimHints;
use crate::config::TlsConfig;
use crate::descriptor::DESCRIPTOR;
use crate::engine::EngineKind;
use crate::format::{Extract, extract_field};
use crate::grouping::{Group, Planned, group};
use crate::server::ServerClient;
use crate::token_guard::TokenGuard;
use async_trait::async_trait;
use auth_oidc::IdToken;
use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt as _};
use provider_http::{Failure, MAX_STREAMS, Slots};
use secrets_core::{
    DeadlinePassed, Error, ErrorKind, ProviderDescriptor, ResolveContext, Resolved, SecretProvider,
    SecretRequest, SecretValue,
};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use tracing::{Instrument as _, instrument};

/// Field names listed at most in a "field not found" message.
const MAX_LISTED_FIELDS: usize = 20;

/// Resolves `vault:` secrets against HashiCorp Vault or OpenBao, as GitLab Runner does, with
/// one login per identity, one read per distinct path, concurrent requests, retries and
/// token revocation. Build it with [`crate::VaultProviderBuilder`].
pub struct VaultProvider {
    tls: TlsConfig,
    revoke_token: bool,
}

impl fmt::Debug for VaultProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultProvider")
            .field("tls", &self.tls)
            .field("revoke_token", &self.revoke_token)
            .finish_non_exhaustive()
    }
}

type Outcomes = Vec<(usize, Result<Resolved, Error>)>;

impl VaultProvider {
    pub(crate) fn new(tls: TlsConfig, revoke_token: bool) -> Self {
        Self { tls, revoke_token }
    }

    /// Logs one identity in, reads its paths, takes its fields, revokes its token.
    #[instrument(skip_all, fields(server = %client.display(), auth_path = %group.auth_path, secrets = group.members.len()))]
    async fn run_group(
        &self,
        group: Group<'_>,
        client: &Arc<ServerClient>,
        ctx: &ResolveContext,
    ) -> Outcomes {
        // One read per distinct path, concurrently.
        let (paths, path_of) = group.distinct_paths();
        let Group {
            key,
            auth_path,
            members,
            ..
        } = &group;
        let auth_path: &str = auth_path;
        let fail_all = |e: &Failure| -> Outcomes {
            members
                .iter()
                .map(|m| (m.index, Err(e.to_core(m.variable, &m.reference))))
                .collect()
        };
        let fail_late = |late: DeadlinePassed| -> Outcomes {
            members
                .iter()
                .map(|m| (m.index, Err(late.error(m.variable, &m.reference))))
                .collect()
        };

        // The resolver checked the token's expiry before any request; an unreadable token
        // still fails here, with no request.
        let token = match IdToken::parse(&key.jwt) {
            Ok(token) => token,
            Err(e) => {
                let err = Failure::new(
                    ErrorKind::Unauthenticated,
                    format!("cannot log in to {}: {e}", client.display()),
                );
                return fail_all(&err);
            }
        };
        let hints = ClaimHints::from_claims(token.claims());
        let role = key.role.as_deref();
        let login = client.login(key.namespace, auth_path, role, &token, &hints);
        let vault_token = match ctx.before_deadline(login).await {
            Ok(Ok(t)) => TokenGuard::new(Arc::clone(client), key.namespace, t),
            Ok(Err(e)) => return fail_all(&e),
            Err(late) => return fail_late(late),
        };
        drop(token);

        // Reads stop at the deadline so that the token is still revoked in time. At most a
        // wave's worth of read futures exists at once (the server's bound limits what is in
        // flight); a thousand at once would hold megabytes for nothing.
        let reads = stream::iter(0..paths.len())
            .map(|at| {
                let read = client.read(key.namespace, vault_token.token(), paths[at], role);
                async move { (at, read.await) }
            })
            .buffer_unordered(MAX_STREAMS)
            .collect::<Vec<_>>();
        let answers = ctx.before_deadline(reads).await.map(|mut answers| {
            answers.sort_unstable_by_key(|(at, _)| *at);
            answers
                .into_iter()
                .map(|(_, answer)| answer)
                .collect::<Vec<_>>()
        });

        if !self.revoke_token {
            vault_token.keep();
        } else {
            // Off the critical path when the resolver defers cleanup: the results go back
            // while the revoke is in flight, on the connection the reads used.
            let server = client.display().to_owned();
            let revoke = async move {
                if let Err(e) = vault_token.revoke().await {
                    tracing::warn!(
                        %server,
                        "could not revoke the Vault token (it lives until its TTL ends): {e}"
                    );
                }
            };
            ctx.cleanup.run(revoke.in_current_span()).await;
        }
        let answers = match answers {
            Ok(answers) => answers,
            Err(late) => return fail_late(late),
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
                    Ok(body) => take_field(body, m, client.display()).map(|value| {
                        let mut resolved = Resolved::new(value);
                        if sharing[at] > 1 {
                            resolved.notes.push(format!(
                                "read {} once for {} variables",
                                m.logical, sharing[at]
                            ));
                        }
                        resolved
                    }),
                };
                (m.index, result)
            })
            .collect()
    }
}

/// The member's field from its path's answer, or a not-found / shape error.
fn take_field(body: &str, m: &Planned<'_>, server: &str) -> Result<SecretValue, Error> {
    let kv_v2 = m.engine == EngineKind::KvV2;
    match extract_field(body, kv_v2, m.field) {
        Ok(mut value) => Ok(SecretValue::new(std::mem::take(&mut *value))),
        Err(why) => {
            let logical = &m.logical;
            let err = match why {
                Extract::NoData => Failure::new(
                    ErrorKind::NotFound,
                    format!("secret not found: GET {logical} at {server} returned no data"),
                )
                .with_fix("check the engine name, mount and path"),
                Extract::Deleted {
                    deletion_time,
                    destroyed,
                } => {
                    let state = if destroyed {
                        "destroyed".to_owned()
                    } else if let Some(at) = deletion_time {
                        format!("deleted (at {at})")
                    } else {
                        "deleted or destroyed".to_owned()
                    };
                    Failure::new(
                        ErrorKind::NotFound,
                        format!("secret not found: the latest version of {logical} at {server} is {state}"),
                    )
                    .with_fix("undelete it (`vault kv undelete`) or write a new version")
                }
                Extract::NotAMap => Failure::new(
                    ErrorKind::InvalidSpec,
                    format!("data for key {logical} cannot be coerced to 'map[string]any'"),
                )
                .with_fix("is this mount really kv-v2? use `engine:name: kv-v1` or `generic` for other engines"),
                Extract::FieldMissing(fields) => {
                    let fix = if fields.is_empty() {
                        "the secret has no fields".to_owned()
                    } else if fields.len() > MAX_LISTED_FIELDS {
                        format!("field names are case-sensitive; the secret has {} fields", fields.len())
                    } else {
                        format!(
                            "field names are case-sensitive; the secret has: {}",
                            fields.join(", ")
                        )
                    };
                    Failure::new(
                        ErrorKind::NotFound,
                        format!(
                            "secret not found: field {:?} is not in {logical} at {server}",
                            m.field
                        ),
                    )
                    .with_fix(fix)
                }
                Extract::FieldNull => Failure::new(
                    ErrorKind::NotFound,
                    format!("secret not found: field {:?} of {logical} at {server} is null", m.field),
                ),
                Extract::Malformed(what) => Failure::new(
                    ErrorKind::Unexpected,
                    format!("the answer to GET {logical} at {server} is malformed: {what}"),
                ),
            };
            Err(err.to_core(m.variable, &m.reference))
        }
    }
}

#[async_trait]
impl SecretProvider for VaultProvider {
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

        // 1-2. Offline checks, then groups by identity, in request order.
        let (groups, failed) = group(requests.iter().map(|r| (r.variable.as_str(), &r.secret)));
        for (index, err) in failed {
            results.fill(index, Err(err));
        }

        // One client per server URL.
        let mut clients: HashMap<&str, Result<Arc<ServerClient>, Failure>> = HashMap::new();
        for group in &groups {
            if !clients.contains_key(group.key.url) {
                let client = ServerClient::connect(&group.server, &self.tls, ctx)
                    .await
                    .map(Arc::new);
                clients.insert(group.key.url, client);
            }
        }

        // 3-5. Identities concurrently.
        let runs = groups.into_iter().map(|group| {
            let client = &clients[group.key.url];
            async move {
                match client {
                    Ok(client) => self.run_group(group, client, ctx).await,
                    Err(e) => group
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
        // Every Vault not-found is the runner's own "secret not found", which
        // FF_SECRET_RESOLVING_FAILS_IF_MISSING=false softens.
        results
            .into_results()
            .into_iter()
            .map(|r| {
                r.map_err(|e| match e.kind() {
                    ErrorKind::NotFound => e.with_secret_not_found(),
                    _ => e,
                })
            })
            .collect()
    }
}
