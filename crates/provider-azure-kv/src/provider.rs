//! The [`SecretProvider`] for `azure_key_vault:` secrets.
//!
//! One call resolves every Azure secret of a job:
//!
//! 1. each secret is checked without I/O (vault URL, tenant, client, token, name, version);
//! 2. secrets are grouped by identity (tenant, client, ID token), and the token is parsed
//!    (the resolver has checked its expiry);
//! 3. per identity, one Entra token per resource: known suffixes need no challenge, other
//!    vault hosts send one challenge each, verified against the vault's domain;
//! 4. one read per distinct (vault, name, version), concurrently, bounded per server by
//!    `ctx.max_concurrency`; results come back in request order.

use crate::api::{Assertion, challenge, get, token};
use crate::classify::TokenFacts;
use crate::descriptor::DESCRIPTOR;
use crate::grouping::{Group, Scope, group};
use async_trait::async_trait;
use auth_oidc::IdToken;
use futures_util::future::join_all;
use provider_http::tls::display_url;
use provider_http::{ClientSettings, Endpoint, Failure, Slots};
use reqwest::Url;
use secrecy::SecretString;
use secrets_core::{
    Error, ErrorKind, ProviderDescriptor, ResolveContext, Resolved, SecretProvider, SecretRequest,
    SecretValue,
};
use std::collections::HashMap;
use std::fmt;
use tracing::instrument;

/// Resolves `azure_key_vault:` secrets with a federated client assertion (the job's ID
/// token). Build it with [`crate::AzureKeyVaultBuilder`].
pub struct AzureKeyVaultProvider {
    authority: Url,
    settings: ClientSettings,
}

impl fmt::Debug for AzureKeyVaultProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureKeyVaultProvider")
            .field("authority", &display_url(&self.authority))
            .field("settings", &self.settings)
            .finish()
    }
}

type Outcomes = Vec<(usize, Result<Resolved, Error>)>;

/// The servers of one resolution: Entra and each vault origin, each its own bound.
struct Servers {
    entra: Endpoint,
    vaults: HashMap<String, Endpoint>,
}

impl AzureKeyVaultProvider {
    pub(crate) fn new(authority: Url, settings: ClientSettings) -> Self {
        Self {
            authority,
            settings,
        }
    }

    /// One identity: its tokens, then its reads.
    #[instrument(skip_all, fields(tenant = group.key.tenant, client = group.key.client, secrets = group.members.len()))]
    async fn run_group(
        &self,
        group: Group<'_>,
        servers: &Servers,
        ctx: &ResolveContext,
    ) -> Outcomes {
        let Group {
            key,
            members,
            reads,
        } = &group;
        let fail_all = |e: &Failure| -> Outcomes {
            members
                .iter()
                .map(|m| (m.index, Err(e.to_core(m.variable, &m.reference))))
                .collect()
        };
        let id_token = match IdToken::parse(key.jwt) {
            Ok(t) => t,
            Err(e) => {
                return fail_all(
                    &Failure::new(
                        ErrorKind::Unauthenticated,
                        format!("the ID token is not a JWT ({e}); no request was sent"),
                    )
                    .with_fix("pass the token itself (`token: $AZURE_JWT`, an `id_tokens:` entry), not its name"),
                );
            }
        };
        let facts = TokenFacts::of(id_token.claims());
        let assertion = Assertion {
            authority: &self.authority,
            tenant: key.tenant,
            client: key.client,
            jwt: key.jwt,
            facts: &facts,
        };
        let scopes = group.scopes();
        let tokens = scopes.iter().map(|scope| {
            let assertion = &assertion;
            async move {
                let resource = match scope {
                    Scope::Known(resource) => (*resource).to_owned(),
                    Scope::Challenge(_) => {
                        let read = reads
                            .iter()
                            .find(|r| &r.scope == *scope)
                            .expect("a read of each scope");
                        let vault =
                            &servers.vaults[read.vault.origin().ascii_serialization().as_str()];
                        challenge(vault, &ctx.retry, read, key.tenant, key.client).await?
                    }
                };
                token(&servers.entra, &ctx.retry, assertion, &resource).await
            }
        });
        let tokens: Vec<Result<SecretString, Failure>> =
            match ctx.before_deadline(join_all(tokens)).await {
                Ok(t) => t,
                Err(late) => {
                    return members
                        .iter()
                        .map(|m| (m.index, Err(late.error(m.variable, &m.reference))))
                        .collect();
                }
            };
        let token_of: HashMap<&Scope, &Result<SecretString, Failure>> =
            scopes.iter().copied().zip(tokens.iter()).collect();
        let reads_done = reads.iter().map(|read| async {
            match token_of[&read.scope] {
                Err(e) => Err(e.clone()),
                Ok(t) => {
                    let vault = &servers.vaults[read.vault.origin().ascii_serialization().as_str()];
                    get(vault, &ctx.retry, read, t, key.client).await
                }
            }
        });
        let answers: Vec<Result<SecretValue, Failure>> =
            match ctx.before_deadline(join_all(reads_done)).await {
                Ok(a) => a,
                Err(late) => {
                    return members
                        .iter()
                        .map(|m| (m.index, Err(late.error(m.variable, &m.reference))))
                        .collect();
                }
            };
        let mut sharing = vec![0usize; reads.len()];
        for m in members {
            sharing[m.read] += 1;
        }
        members
            .iter()
            .map(|m| {
                let result = match &answers[m.read] {
                    Err(e) => Err(e.to_core(m.variable, &m.reference)),
                    Ok(value) => {
                        let mut resolved = Resolved::new(value.duplicate());
                        if sharing[m.read] > 1 {
                            resolved.notes.push(format!(
                                "read secret {} once for {} variables",
                                reads[m.read].name, sharing[m.read]
                            ));
                        }
                        Ok(resolved)
                    }
                };
                (m.index, result)
            })
            .collect()
    }
}

#[async_trait]
impl SecretProvider for AzureKeyVaultProvider {
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
        if groups.is_empty() {
            return results.into_results();
        }
        let http = match self.settings.build(ctx, "Azure Key Vault") {
            Ok(http) => http,
            Err(e) => {
                for g in &groups {
                    for m in &g.members {
                        results.fill(m.index, Err(e.to_core(m.variable, &m.reference)));
                    }
                }
                return results.into_results();
            }
        };
        let mut vaults = HashMap::new();
        for g in &groups {
            for r in &g.reads {
                vaults
                    .entry(r.vault.origin().ascii_serialization())
                    .or_insert_with(|| Endpoint::new(http.clone(), ctx));
            }
        }
        let servers = Servers {
            entra: Endpoint::new(http, ctx),
            vaults,
        };
        let runs = groups.into_iter().map(|g| self.run_group(g, &servers, ctx));
        for (index, result) in join_all(runs).await.into_iter().flatten() {
            results.fill(index, result);
        }
        results.into_results()
    }
}
