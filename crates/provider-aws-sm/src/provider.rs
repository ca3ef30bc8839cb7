//! The [`SecretProvider`] for `aws_secrets_manager`.
//!
//! One resolution:
//! 1. checks every request locally (empty `secret_id`, `version_id` with `version_stage`,
//!    a token without a role ARN, no region), failing those with no request;
//! 2. groups the rest by identity (region, role ARN, session name, token) and by distinct
//!    object (region, secret id, version id, version stage), so a secret read for several
//!    fields is fetched once;
//! 3. per identity: loads credentials once (one STS call on the OIDC path) while the
//!    connections of the first wave of reads open, then reads
//!    current-version secrets with `BatchGetSecretValue` (20 ids a call; a denied batch falls
//!    back to `GetSecretValue`) and version-pinned ones with `GetSecretValue`, at most
//!    `ctx.max_concurrency` requests in flight per identity;
//! 4. picks each variable's field and answers in request order.

use crate::client::SmClient;
use crate::config::{AwsSecretsManagerBuilder, Config};
use crate::credentials::{self, Identity};
use crate::descriptor::DESCRIPTOR;
use crate::error::Failure;
use crate::planning::{Fetch, Planning, Schedule, objects_of, regions};
use crate::transport::SmTransport;
use crate::value::extract;
use async_trait::async_trait;
use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt as _};
use provider_http::Slots;
use secrecy::SecretString;
use secrets_core::{
    Error, ErrorKind, ProviderDescriptor, ResolveContext, Resolved, SecretProvider, SecretRequest,
};
use tokio::sync::Semaphore;
use tracing::Instrument as _;

/// Resolves `aws_secrets_manager` secrets. Build it with [`AwsSecretsManagerBuilder`].
#[derive(Debug)]
pub struct AwsSecretsManagerProvider {
    config: Config,
}

impl AwsSecretsManagerProvider {
    /// A builder with the defaults.
    pub fn builder() -> AwsSecretsManagerBuilder {
        AwsSecretsManagerBuilder::new()
    }

    pub(crate) fn new(config: Config) -> Self {
        Self { config }
    }
}

#[async_trait]
impl SecretProvider for AwsSecretsManagerProvider {
    fn descriptor(&self) -> &'static dyn ProviderDescriptor {
        &DESCRIPTOR
    }

    async fn resolve(
        &self,
        requests: &[SecretRequest],
        ctx: &ResolveContext,
    ) -> Vec<Result<Resolved, Error>> {
        let span = tracing::info_span!("aws_secrets_manager", requests = requests.len());
        resolve_all(&self.config, requests, ctx)
            .instrument(span)
            .await
    }
}

/// The outcome of one fetch, and remarks for every variable it serves.
#[derive(Debug)]
struct Fetched {
    raw: Result<SecretString, Failure>,
    notes: Vec<String>,
}

async fn resolve_all(
    config: &Config,
    requests: &[SecretRequest],
    ctx: &ResolveContext,
) -> Vec<Result<Resolved, Error>> {
    let mut out = Slots::new(requests.len());
    let Planning {
        identities,
        fetches,
        planned,
        failed,
    } = Planning::of(requests.iter().map(|r| (r.variable.as_str(), &r.secret)));
    for (i, err) in failed {
        out.fill(i, Err(err));
    }
    tracing::debug!(
        identities = identities.len(),
        objects = fetches.len(),
        "aws secrets manager plan"
    );

    // One pool for the resolution: connections opened ahead serve any identity's reads.
    let transport = match SmTransport::new(ctx.connect_timeout) {
        Ok(transport) => transport,
        Err(err) => {
            let failure = Failure::new(
                ErrorKind::Unexpected,
                format!("cannot set up TLS for Secrets Manager: {err}"),
            );
            for p in planned {
                let r = &requests[p.request];
                out.fill(
                    p.request,
                    Err(failure.clone().into_error(&r.variable, &p.reference)),
                );
            }
            return out.into_results();
        }
    };
    // Nothing to clean up in AWS: at the deadline every unfinished read simply fails.
    let per_identity = ctx
        .before_deadline(join_all(identities.iter().enumerate().map(
            |(i, identity)| run_identity(config, ctx, &transport, identity, i, &fetches),
        )))
        .await;
    let late = per_identity.as_ref().err().copied();
    let mut fetched: Vec<Option<Fetched>> = fetches.iter().map(|_| None).collect();
    for (index, outcome) in per_identity.into_iter().flatten().flatten() {
        fetched[index] = Some(outcome);
    }

    for p in planned {
        let variable = &requests[p.request].variable;
        let result = match &fetched[p.fetch] {
            Some(Fetched {
                raw: Ok(raw),
                notes,
            }) => {
                let secret_id = &fetches[p.fetch].secret_id;
                extract(raw, p.field.as_deref(), secret_id, config.number_format)
                    .map(|value| {
                        let mut all = p.notes;
                        all.extend(notes.iter().cloned());
                        Resolved { value, notes: all }
                    })
                    .map_err(|f| f.into_error(variable, &p.reference))
            }
            Some(Fetched { raw: Err(f), .. }) => Err(f.clone().into_error(variable, &p.reference)),
            None => Err(match late {
                Some(late) => late.error(variable, &p.reference),
                None => Error::new(ErrorKind::Unexpected, "the secret was not fetched")
                    .with_variable(variable)
                    .with_reference(&p.reference),
            }),
        };
        out.fill(p.request, result);
    }
    out.into_results()
}

/// Loads the identity's credentials once, then reads its objects. The STS connection opens
/// first, then the connections of the first wave of reads, which open while the credentials
/// load (one STS round trip on the OIDC path), so the reads go out as soon as the
/// credentials arrive.
async fn run_identity(
    config: &Config,
    ctx: &ResolveContext,
    transport: &SmTransport,
    identity: &Identity,
    index: usize,
    fetches: &[Fetch],
) -> Vec<(usize, Fetched)> {
    let mine = objects_of(fetches, index);
    let plan: Vec<(&str, Schedule)> = regions(fetches, &mine)
        .into_iter()
        .map(|region| {
            let in_region: Vec<usize> = mine
                .iter()
                .copied()
                .filter(|&f| fetches[f].region == region)
                .collect();
            (region, Schedule::of(fetches, &in_region, config.batching))
        })
        .collect();
    let unloaded = credentials::unloaded(identity, config, ctx, transport).await;
    credentials::open_ahead(identity, &unloaded, transport).await;
    let mut wave = ctx.max_concurrency.max(1);
    for (region, schedule) in &plan {
        let calls = (schedule.batches.len() + schedule.singles.len()).min(wave);
        wave -= calls;
        if let Some(target) = crate::endpoints::secrets_manager(&unloaded, region).await {
            transport.open_ahead(&target, calls);
        }
    }
    let sdk = match credentials::establish(identity, unloaded, ctx).await {
        Ok(sdk) => sdk,
        Err(failure) => return failed(mine, &failure),
    };
    let limit = Semaphore::new(ctx.max_concurrency.max(1));
    let limit = &limit;
    let clients: Vec<SmClient> = plan
        .iter()
        .map(|(region, _)| {
            SmClient::new(
                &sdk,
                region,
                transport,
                ctx.requests.clone(),
                identity.describe(),
            )
        })
        .collect();
    // Calls are made as the bound frees room: a thousand pending SDK futures would hold
    // megabytes for nothing. (Items are indices: closures over borrowed items do not meet
    // `async_trait`'s `Send` bound.)
    let calls: Vec<(usize, Call)> = plan
        .into_iter()
        .enumerate()
        .flat_map(|(c, (_, schedule))| {
            let batches = schedule.batches.into_iter().map(Call::Batch);
            let singles = schedule.singles.into_iter().map(Call::Single);
            batches.chain(singles).map(move |call| (c, call))
        })
        .collect();
    let clients = &clients;
    stream::iter(calls)
        .map(|(c, call)| run_call(&clients[c], call, fetches, limit))
        .buffer_unordered(ctx.max_concurrency.max(1))
        .flat_map(stream::iter)
        .collect()
        .await
}

async fn run_call(
    client: &SmClient,
    call: Call,
    fetches: &[Fetch],
    limit: &Semaphore,
) -> Vec<(usize, Fetched)> {
    match call {
        Call::Batch(chunk) => batch_op(client, chunk, fetches, limit).await,
        Call::Single(f) => {
            let raw = get_one(client, &fetches[f], limit).await;
            vec![(
                f,
                Fetched {
                    raw,
                    notes: Vec::new(),
                },
            )]
        }
    }
}

/// One Secrets Manager call of a schedule.
enum Call {
    Batch(Vec<usize>),
    Single(usize),
}

/// Every object in `objects` failed with `failure`.
fn failed(objects: Vec<usize>, failure: &Failure) -> Vec<(usize, Fetched)> {
    objects
        .into_iter()
        .map(|f| {
            (
                f,
                Fetched {
                    raw: Err(failure.clone()),
                    notes: Vec::new(),
                },
            )
        })
        .collect()
}

async fn get_one(
    client: &SmClient,
    fetch: &Fetch,
    limit: &Semaphore,
) -> Result<SecretString, Failure> {
    let _permit = limit.acquire().await;
    client
        .get(
            &fetch.secret_id,
            fetch.version_id.as_deref(),
            fetch.version_stage.as_deref(),
        )
        .await
}

/// One `BatchGetSecretValue` of up to 20 objects; ids the answer leaves out, and every id
/// when the batch API is refused, are read with `GetSecretValue`.
async fn batch_op(
    client: &SmClient,
    chunk: Vec<usize>,
    fetches: &[Fetch],
    limit: &Semaphore,
) -> Vec<(usize, Fetched)> {
    let ids: Vec<&str> = chunk
        .iter()
        .map(|&f| fetches[f].secret_id.as_str())
        .collect();
    let answer = {
        let _permit = limit.acquire().await;
        client.batch_get(&ids).await
    };
    let mut done = Vec::new();
    let mut fallback: Vec<usize> = Vec::new();
    let mut note = None;
    match answer {
        Ok(entries) => {
            for (f, entry) in chunk.iter().zip(entries) {
                match entry {
                    Some(raw) => done.push((
                        *f,
                        Fetched {
                            raw,
                            notes: Vec::new(),
                        },
                    )),
                    None => fallback.push(*f),
                }
            }
        }
        Err(failure) if failure.is_operation_refused() => {
            tracing::debug!(code = ?failure.code, "BatchGetSecretValue refused, falling back");
            note = Some(format!(
                "BatchGetSecretValue was refused ({}), so each secret was read with \
                 GetSecretValue; allow secretsmanager:BatchGetSecretValue to save requests",
                failure.code.as_deref().unwrap_or("denied")
            ));
            fallback = chunk;
        }
        Err(failure) => {
            return chunk
                .into_iter()
                .map(|f| {
                    (
                        f,
                        Fetched {
                            raw: Err(failure.clone()),
                            notes: Vec::new(),
                        },
                    )
                })
                .collect();
        }
    }
    let singles = join_all(fallback.into_iter().map(|f| {
        let note = note.clone();
        async move {
            let raw = get_one(client, &fetches[f], limit).await;
            (
                f,
                Fetched {
                    raw,
                    notes: note.into_iter().collect(),
                },
            )
        }
    }))
    .await;
    done.extend(singles);
    done
}
