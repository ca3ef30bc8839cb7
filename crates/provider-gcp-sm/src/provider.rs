//! The [`SecretProvider`] for `gcp_secret_manager:` secrets.
//!
//! One call resolves every GCP secret of a job:
//!
//! 1. each secret is checked (the `GCP_*` settings, name, version, token) without I/O;
//! 2. secrets are grouped by identity (STS audience, ID token);
//! 3. identities exchange their token at STS concurrently, once each;
//! 4. where the user opted in (`CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT`), each identity
//!    impersonates each of its service accounts once (`generateAccessToken`), concurrently;
//! 5. each identity reads each distinct version once per principal, concurrently, bounded per
//!    endpoint by `ctx.max_concurrency`; results come back in request order.

use crate::classify::ClaimHints;
use crate::client::Server;
use crate::config::Endpoints;
use crate::descriptor::DESCRIPTOR;
use crate::grouping::{Group, group};
use async_trait::async_trait;
use auth_oidc::IdToken;
use futures_util::future::join_all;
use provider_http::{ClientSettings, Failure, Slots};
use secrecy::SecretString;
use secrets_core::{
    DeadlinePassed, Error, ErrorKind, ProviderDescriptor, ResolveContext, Resolved, SecretProvider,
    SecretRequest,
};
use std::collections::HashMap;
use std::fmt;
use tracing::instrument;

/// Resolves `gcp_secret_manager:` secrets through workload identity federation, as GitLab
/// Runner does, with one STS exchange per identity and one read per distinct version. Build
/// it with [`crate::GcpSecretManagerBuilder`].
pub struct GcpSecretManagerProvider {
    endpoints: Endpoints,
}

impl fmt::Debug for GcpSecretManagerProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpSecretManagerProvider")
            .field("sts", &self.endpoints.sts.as_str())
            .field(
                "secretmanager",
                &self.endpoints.secretmanager.as_ref().map(|u| u.as_str()),
            )
            .field("iamcredentials", &self.endpoints.iamcredentials.as_str())
            .finish()
    }
}

type Outcomes = Vec<(usize, Result<Resolved, Error>)>;

impl GcpSecretManagerProvider {
    pub(crate) fn new(endpoints: Endpoints) -> Self {
        Self { endpoints }
    }

    #[cfg(test)]
    pub(crate) fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Exchanges one identity's token, then reads its versions.
    #[instrument(skip_all, fields(audience = %group.key.audience, secrets = group.members.len()))]
    async fn run_group(
        &self,
        group: Group<'_>,
        sts: &Server,
        iamcredentials: &Server,
        secretmanager: &HashMap<String, Server>,
        ctx: &ResolveContext,
    ) -> Outcomes {
        let (reads, read_of) = group.distinct_reads();
        let members = &group.members;
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
        // The resolver checked the token's expiry; an unreadable token still fails here.
        let hints = match IdToken::parse(group.key.jwt) {
            Ok(token) => ClaimHints::from_claims(token.claims()),
            Err(e) => {
                return fail_all(&Failure::new(
                    ErrorKind::Unauthenticated,
                    format!(
                        "failed to exchange sts token for {}: {e}",
                        group.key.audience
                    ),
                ));
            }
        };
        let exchange = sts.exchange(&group.key.audience, group.key.jwt, &hints);
        let token = match ctx.before_deadline(exchange).await {
            Ok(Ok(token)) => {
                tracing::debug!(reads = reads.len(), "exchanged the ID token at STS");
                token
            }
            Ok(Err(e)) => return fail_all(&e),
            Err(late) => return fail_late(late),
        };
        // Opt-in impersonation: one token per service account, all at once.
        let accounts = group.service_accounts();
        let impersonated = ctx
            .before_deadline(join_all(accounts.iter().map(|account| {
                let token = &token;
                async move {
                    iamcredentials
                        .generate_access_token(account, token)
                        .await
                        .map(|t| (*account, t))
                }
            })))
            .await;
        let impersonated: Vec<Result<(&str, SecretString), Failure>> = match impersonated {
            Ok(tokens) => tokens,
            Err(late) => return fail_late(late),
        };
        if !accounts.is_empty() {
            tracing::debug!(
                accounts = accounts.len(),
                "impersonated the service accounts"
            );
        }
        let token_for = |account: &str| -> Result<&SecretString, Failure> {
            if account.is_empty() {
                return Ok(&token);
            }
            match impersonated
                .iter()
                .zip(&accounts)
                .find(|(_, a)| **a == account)
            {
                Some((Ok((_, t)), _)) => Ok(t),
                Some((Err(e), _)) => Err(e.clone()),
                None => Err(Failure::new(
                    ErrorKind::Unexpected,
                    format!("no token was generated for {account}"),
                )),
            }
        };
        let answers = ctx
            .before_deadline(join_all(reads.iter().map(
                |(resource, location, account)| {
                    let base = self.endpoints.secretmanager_for(location);
                    let token = token_for(account);
                    async move {
                        let token = token?;
                        match secretmanager.get(&base) {
                            Some(server) => server.access(resource, account, token).await,
                            None => Err(Failure::new(
                                ErrorKind::Unexpected,
                                format!("no client for {base}"),
                            )),
                        }
                    }
                },
            )))
            .await;
        let answers = match answers {
            Ok(answers) => answers,
            Err(late) => return fail_late(late),
        };
        let mut sharing = vec![0usize; reads.len()];
        for &at in &read_of {
            sharing[at] += 1;
        }
        members
            .iter()
            .zip(read_of)
            .map(|(m, at)| {
                let result = match &answers[at] {
                    Err(e) => Err(e.to_core(m.variable, &m.reference)),
                    Ok(accessed) => {
                        let mut resolved = Resolved::new(accessed.value.duplicate());
                        if sharing[at] > 1 {
                            resolved.notes.push(format!(
                                "read {} once for {} variables",
                                m.resource, sharing[at]
                            ));
                        }
                        if let Some(name) = accessed.name.as_deref().filter(|n| *n != m.resource) {
                            resolved.notes.push(format!("read {name}"));
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
impl SecretProvider for GcpSecretManagerProvider {
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
        let settings = ClientSettings::new(concat!(
            "ci-secrets-provider-gcp-sm/",
            env!("CARGO_PKG_VERSION")
        ));
        let http = match settings.build(ctx, "Google") {
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
        let sts = Server::new(http.clone(), self.endpoints.sts.clone(), ctx);
        let iamcredentials = Server::new(http.clone(), self.endpoints.iamcredentials.clone(), ctx);
        // One client (and concurrency bound) per Secret Manager endpoint.
        let mut secretmanager: HashMap<String, Server> = HashMap::new();
        for g in &groups {
            for m in &g.members {
                let base = self.endpoints.secretmanager_for(&m.location);
                if let std::collections::hash_map::Entry::Vacant(slot) = secretmanager.entry(base) {
                    match reqwest::Url::parse(slot.key()) {
                        Ok(url) => {
                            slot.insert(Server::new(http.clone(), url, ctx));
                        }
                        Err(_) => tracing::warn!("cannot parse the endpoint {}", slot.key()),
                    }
                }
            }
        }
        let runs = groups
            .into_iter()
            .map(|g| self.run_group(g, &sts, &iamcredentials, &secretmanager, ctx));
        for (index, result) in join_all(runs).await.into_iter().flatten() {
            results.fill(index, result);
        }
        results.into_results()
    }
}
