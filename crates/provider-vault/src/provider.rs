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
//! 5. each Vault token is revoked (unless turned off), and results come back in request order.

use crate::client::{ServerClient, TokenGuard, parse_server_url};
use crate::config::TlsConfig;
use crate::engine::{EngineKind, login_path};
use crate::error::{ClaimHints, VaultError};
use crate::format::{Extract, extract_field};
use async_trait::async_trait;
use auth_oidc::{Clock, IdToken};
use futures_util::future::join_all;
use secrets_core::payload::VaultSecret;
use secrets_core::{
    DeadlinePassed, Error, ErrorKind, ProviderKind, ResolveContext, Resolved, SecretProvider,
    SecretRequest, SecretValue,
};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use tracing::instrument;

/// Field names listed at most in a "field not found" message.
const MAX_LISTED_FIELDS: usize = 20;

/// Resolves `vault:` secrets against HashiCorp Vault or OpenBao, as GitLab Runner does, with
/// one login per identity, one read per distinct path, concurrent requests, retries and
/// token revocation. Build it with [`crate::VaultProviderBuilder`].
pub struct VaultProvider {
    tls: TlsConfig,
    revoke_token: bool,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for VaultProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultProvider")
            .field("tls", &self.tls)
            .field("revoke_token", &self.revoke_token)
            .finish_non_exhaustive()
    }
}

/// One request that passed the offline checks.
struct Planned<'a> {
    index: usize,
    variable: &'a str,
    reference: String,
    engine: EngineKind,
    logical: String,
    field: &'a str,
}

/// Who logs in where. Holds the ID token, so it has no `Debug`.
#[derive(Clone, PartialEq, Eq, Hash)]
struct IdentityKey<'a> {
    url: &'a str,
    namespace: Option<&'a str>,
    login_path: String,
    role: Option<Cow<'a, str>>,
    jwt: Cow<'a, str>,
}

struct Group<'a> {
    key: IdentityKey<'a>,
    auth_path: &'a str,
    server: reqwest::Url,
    members: Vec<Planned<'a>>,
}

type Outcomes = Vec<(usize, Result<Resolved, Error>)>;

/// An auth-data value as text: strings borrowed, other JSON as the runner's `%s` gives it.
fn data_text<'a>(value: &'a serde_json::Value) -> Cow<'a, str> {
    match value {
        serde_json::Value::String(s) => Cow::Borrowed(s),
        serde_json::Value::Null => Cow::Borrowed(""),
        other => Cow::Owned(other.to_string()),
    }
}

fn show(s: &str) -> &str {
    if s.is_empty() { "(empty)" } else { s }
}

/// `vault kv-v2 mount ops path production/db field password at https://... namespace team1`.
fn reference(v: &VaultSecret) -> String {
    let mut out = format!(
        "vault {} mount {} path {} field {} at {}",
        show(&v.engine.name),
        show(&v.engine.path),
        show(&v.path),
        show(&v.field),
        show(v.server.url.trim_end_matches('/')),
    );
    if let Some(ns) = v.server.namespace.as_deref().filter(|n| !n.is_empty()) {
        out.push_str(" namespace ");
        out.push_str(ns);
    }
    out
}

impl VaultProvider {
    pub(crate) fn new(tls: TlsConfig, revoke_token: bool, clock: Arc<dyn Clock>) -> Self {
        Self {
            tls,
            revoke_token,
            clock,
        }
    }

    /// Checks one request offline; its identity and plan, or the error for its variable.
    fn plan<'a>(
        index: usize,
        request: &'a SecretRequest,
    ) -> Result<(IdentityKey<'a>, &'a str, reqwest::Url, Planned<'a>), Error> {
        let variable = request.variable.as_str();
        let Some(v) = request.secret.vault.as_ref() else {
            return Err(Error::new(
                ErrorKind::InvalidSpec,
                "the secret has no `vault` entry but was given to the Vault provider",
            )
            .with_variable(variable));
        };
        let reference = reference(v);
        let fail = |e: VaultError| e.to_core(variable, &reference);

        let server = parse_server_url(&v.server.url).map_err(fail)?;
        let auth = &v.server.auth;
        if auth.name != "jwt" {
            return Err(fail(
                VaultError::new(
                    ErrorKind::InvalidConfig,
                    format!("factory for auth method {:?} is not registered", auth.name),
                )
                .with_fix("only the `jwt` auth method is supported (GitLab sends `jwt`)"),
            ));
        }
        let Some(jwt) = auth.data.get("jwt") else {
            return Err(fail(
                VaultError::new(
                    ErrorKind::InvalidConfig,
                    "missing required auth method configuration key \"jwt\"",
                )
                .with_fix("give the secret a `token:` or define `id_tokens:` in the job"),
            ));
        };
        let role = auth
            .data
            .get("role")
            .map(data_text)
            .filter(|r| !r.is_empty());
        let Some(engine) = EngineKind::from_name(&v.engine.name) else {
            return Err(fail(
                VaultError::new(
                    ErrorKind::InvalidConfig,
                    format!(
                        "factory for secret engine {:?} is not registered",
                        v.engine.name
                    ),
                )
                .with_fix("set `engine:name` to kv-v2, kv-v1 or generic"),
            ));
        };
        let logical = engine.logical_path(&v.engine.path, &v.path);
        let key = IdentityKey {
            url: v.server.url.as_str(),
            namespace: v.server.namespace.as_deref().filter(|n| !n.is_empty()),
            login_path: login_path(&auth.path),
            role,
            jwt: data_text(jwt),
        };
        let planned = Planned {
            index,
            variable,
            reference,
            engine,
            logical,
            field: v.field.as_str(),
        };
        Ok((key, auth.path.as_str(), server, planned))
    }

    /// Logs one identity in, reads its paths, takes its fields, revokes its token.
    #[instrument(skip_all, fields(server = %client.display(), auth_path = %group.auth_path, secrets = group.members.len()))]
    async fn run_group(
        &self,
        group: Group<'_>,
        client: &Arc<ServerClient>,
        ctx: &ResolveContext,
    ) -> Outcomes {
        let Group {
            key,
            auth_path,
            members,
            ..
        } = group;
        let fail_all = |e: &VaultError| -> Outcomes {
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

        // Token checks before any request.
        let token = match IdToken::parse_and_check(&key.jwt, &*self.clock) {
            Ok(token) => token,
            Err(e) => {
                let err = VaultError::new(
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

        // One read per distinct path, concurrently.
        let mut paths: Vec<&str> = Vec::new();
        let mut path_of: Vec<usize> = Vec::with_capacity(members.len());
        for m in &members {
            let at = paths
                .iter()
                .position(|p| *p == m.logical)
                .unwrap_or_else(|| {
                    paths.push(&m.logical);
                    paths.len() - 1
                });
            path_of.push(at);
        }
        // Reads stop at the deadline so that the token is still revoked in time.
        let answers = ctx
            .before_deadline(join_all(
                paths
                    .iter()
                    .map(|p| client.read(key.namespace, vault_token.token(), p, role)),
            ))
            .await;

        if !self.revoke_token {
            vault_token.keep();
        } else if let Err(e) = vault_token.revoke().await {
            tracing::warn!(
                server = %client.display(),
                "could not revoke the Vault token (it lives until its TTL ends): {e}"
            );
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
                Extract::NoData => VaultError::new(
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
                    VaultError::new(
                        ErrorKind::NotFound,
                        format!("secret not found: the latest version of {logical} at {server} is {state}"),
                    )
                    .with_fix("undelete it (`vault kv undelete`) or write a new version")
                }
                Extract::NotAMap => VaultError::new(
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
                    VaultError::new(
                        ErrorKind::NotFound,
                        format!(
                            "secret not found: field {:?} is not in {logical} at {server}",
                            m.field
                        ),
                    )
                    .with_fix(fix)
                }
                Extract::FieldNull => VaultError::new(
                    ErrorKind::NotFound,
                    format!("secret not found: field {:?} of {logical} at {server} is null", m.field),
                ),
                Extract::Malformed(what) => VaultError::new(
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
    fn kind(&self) -> ProviderKind {
        ProviderKind::Vault
    }

    #[instrument(skip_all, fields(secrets = requests.len()))]
    async fn resolve(
        &self,
        requests: &[SecretRequest],
        ctx: &ResolveContext,
    ) -> Vec<Result<Resolved, Error>> {
        let mut results: Vec<Option<Result<Resolved, Error>>> =
            requests.iter().map(|_| None).collect();

        // 1-2. Offline checks, then groups by identity, in request order.
        let mut groups: Vec<Group<'_>> = Vec::new();
        let mut group_of: HashMap<IdentityKey<'_>, usize> = HashMap::new();
        for (index, request) in requests.iter().enumerate() {
            match Self::plan(index, request) {
                Err(e) => results[index] = Some(Err(e)),
                Ok((key, auth_path, server, planned)) => match group_of.get(&key) {
                    Some(&g) => groups[g].members.push(planned),
                    None => {
                        group_of.insert(key.clone(), groups.len());
                        groups.push(Group {
                            key,
                            auth_path,
                            server,
                            members: vec![planned],
                        });
                    }
                },
            }
        }
        drop(group_of);

        // One client per server URL.
        let mut clients: HashMap<&str, Result<Arc<ServerClient>, VaultError>> = HashMap::new();
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
            results[index] = Some(result);
        }

        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(Error::new(
                        ErrorKind::Unexpected,
                        "the secret was not resolved",
                    ))
                })
            })
            .collect()
    }
}
