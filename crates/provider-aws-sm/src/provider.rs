//! The [`SecretProvider`] for `aws_secrets_manager`.
//!
//! One resolution:
//! 1. checks every request locally (empty `secret_id`, `version_id` with `version_stage`,
//!    a token without a role ARN, no region), failing those with no request;
//! 2. groups the rest by identity (region, role ARN, session name, token) and by distinct
//!    object (region, secret id, version id, version stage), so a secret read for several
//!    fields is fetched once;
//! 3. per identity: loads credentials once (one STS call on the OIDC path), then reads
//!    current-version secrets with `BatchGetSecretValue` (20 ids a call; a denied batch falls
//!    back to `GetSecretValue`) and version-pinned ones with `GetSecretValue`, at most
//!    `ctx.max_concurrency` requests in flight per identity;
//! 4. picks each variable's field and answers in request order.

use crate::client::{BATCH_LIMIT, SmClient, arn_region};
use crate::config::{AwsSecretsManagerBuilder, Config};
use crate::credentials::{self, Auth, Identity};
use crate::error::Failure;
use crate::value::extract;
use async_trait::async_trait;
use futures_util::future::{BoxFuture, FutureExt, join_all};
use secrecy::SecretString;
use secrets_core::payload::{AwsSecret, non_empty};
use secrets_core::{
    Error, ErrorKind, ProviderKind, ResolveContext, Resolved, SecretProvider, SecretRequest,
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
    fn kind(&self) -> ProviderKind {
        ProviderKind::AwsSecretsManager
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

/// One distinct object to read.
#[derive(Debug, PartialEq, Eq)]
struct Fetch {
    identity: usize,
    region: String,
    secret_id: String,
    version_id: Option<String>,
    version_stage: Option<String>,
}

impl Fetch {
    fn is_current(&self) -> bool {
        self.version_id.is_none() && self.version_stage.is_none()
    }
}

/// The outcome of one fetch, and remarks for every variable it serves.
#[derive(Debug)]
struct Fetched {
    raw: Result<SecretString, Failure>,
    notes: Vec<String>,
}

/// One request after the local checks.
#[derive(Debug)]
struct Planned {
    request: usize,
    fetch: usize,
    reference: String,
    field: Option<String>,
    notes: Vec<String>,
}

/// The request's identity and object, or the error that fails it before any request.
fn plan(request: &SecretRequest) -> Result<(Identity, PlannedFetch), Error> {
    let Some(aws) = &request.secret.aws_secrets_manager else {
        return Err(Error::new(
            ErrorKind::Unexpected,
            "the secret has no aws_secrets_manager entry",
        )
        .with_variable(&request.variable));
    };
    let server = &aws.server;
    let effective_region =
        non_empty(&aws.region).or(Some(server.region.as_str()).filter(|r| !r.is_empty()));
    let from_arn = arn_region(&aws.secret_id);
    let (call_region, note) = match (non_empty(&aws.region), effective_region, from_arn) {
        (Some(own), _, _) => (Some(own), None),
        (None, Some(effective), Some(arn)) if arn != effective => (
            Some(arn),
            Some(format!(
                "read from {arn}, the region in the secret's ARN, instead of AWS_REGION \
                 {effective} (GitLab Runner would call {effective})"
            )),
        ),
        (None, effective, arn) => (effective.or(arn), None),
    };
    let reference = reference(aws, call_region.unwrap_or(""));
    let fail = |kind, message: String, fix: &str| {
        Err(Error::new(kind, message)
            .with_variable(&request.variable)
            .with_reference(&reference)
            .with_fix(fix))
    };
    if aws.secret_id.is_empty() {
        return fail(
            ErrorKind::InvalidSpec,
            "secret_id is empty".to_owned(),
            "name the secret: `aws_secrets_manager: <id>[#field]` or `secret_id:` (a short \
             form starting with '#' has no id)",
        );
    }
    let version_id = non_empty(&aws.version_id);
    let version_stage = non_empty(&aws.version_stage);
    if version_id.is_some() && version_stage.is_some() {
        return fail(
            ErrorKind::InvalidSpec,
            "version_id and version_stage are both set; AWS accepts only one".to_owned(),
            "remove one: version_id pins one version, version_stage (AWSCURRENT, AWSPREVIOUS \
             or a custom label) follows a label",
        );
    }
    let role_arn = non_empty(&aws.role_arn).or_else(|| non_empty(&server.role_arn));
    let auth = match role_arn {
        Some(role_arn) => Auth::WebIdentity {
            role_arn: role_arn.to_owned(),
            session_name: non_empty(&aws.role_session_name)
                .or_else(|| non_empty(&server.role_session_name))
                .unwrap_or_default()
                .to_owned(),
            token: SecretString::from(server.jwt.clone()),
        },
        None if !server.jwt.is_empty() => {
            return fail(
                ErrorKind::InvalidConfig,
                "Role ARN is required when using JWT for AWS authentication".to_owned(),
                "set the CI/CD variable AWS_ROLE_ARN (or `role_arn:` on the secret) to the role \
                 to assume with the ID token; if you did not mean to use OIDC, rename the ID \
                 token called AWS_ID_TOKEN: AWS secrets use $AWS_ID_TOKEN by default, so \
                 defining it selects OIDC",
            );
        }
        None => Auth::DefaultChain,
    };
    let (Some(identity_region), Some(call_region)) = (effective_region.or(from_arn), call_region)
    else {
        return fail(
            ErrorKind::InvalidConfig,
            "no AWS region".to_owned(),
            "set the CI/CD variable AWS_REGION or `region:` on the secret",
        );
    };
    Ok((
        Identity {
            region: identity_region.to_owned(),
            auth,
        },
        PlannedFetch {
            region: call_region.to_owned(),
            secret_id: aws.secret_id.clone(),
            version_id: version_id.map(str::to_owned),
            version_stage: version_stage.map(str::to_owned),
            reference,
            field: non_empty(&aws.field).map(str::to_owned),
            notes: note.into_iter().collect(),
        },
    ))
}

/// A planned request before identities are numbered.
#[derive(Debug)]
struct PlannedFetch {
    region: String,
    secret_id: String,
    version_id: Option<String>,
    version_stage: Option<String>,
    reference: String,
    field: Option<String>,
    notes: Vec<String>,
}

/// `aws_secrets_manager <id>[#field] [version_id <v>] [version_stage <s>] in <region>`, with
/// the region actually called.
fn reference(aws: &AwsSecret, region: &str) -> String {
    let mut out = format!("aws_secrets_manager {}", aws.secret_id);
    if let Some(field) = non_empty(&aws.field) {
        out.push('#');
        out.push_str(field);
    }
    if let Some(id) = non_empty(&aws.version_id) {
        out.push_str(" version_id ");
        out.push_str(id);
    }
    if let Some(stage) = non_empty(&aws.version_stage) {
        out.push_str(" version_stage ");
        out.push_str(stage);
    }
    if !region.is_empty() {
        out.push_str(" in ");
        out.push_str(region);
    }
    out
}

async fn resolve_all(
    config: &Config,
    requests: &[SecretRequest],
    ctx: &ResolveContext,
) -> Vec<Result<Resolved, Error>> {
    let mut out: Vec<Option<Result<Resolved, Error>>> = requests.iter().map(|_| None).collect();
    let mut identities: Vec<Identity> = Vec::new();
    let mut fetches: Vec<Fetch> = Vec::new();
    let mut planned: Vec<Planned> = Vec::new();
    for (i, request) in requests.iter().enumerate() {
        let (identity, p) = match plan(request) {
            Ok(ok) => ok,
            Err(err) => {
                out[i] = Some(Err(err));
                continue;
            }
        };
        let identity = match identities.iter().position(|known| known.same_as(&identity)) {
            Some(known) => known,
            None => {
                identities.push(identity);
                identities.len() - 1
            }
        };
        let fetch = Fetch {
            identity,
            region: p.region,
            secret_id: p.secret_id,
            version_id: p.version_id,
            version_stage: p.version_stage,
        };
        let fetch = match fetches.iter().position(|known| *known == fetch) {
            Some(known) => known,
            None => {
                fetches.push(fetch);
                fetches.len() - 1
            }
        };
        planned.push(Planned {
            request: i,
            fetch,
            reference: p.reference,
            field: p.field,
            notes: p.notes,
        });
    }
    tracing::debug!(
        identities = identities.len(),
        objects = fetches.len(),
        "aws secrets manager plan"
    );

    // Nothing to clean up in AWS: at the deadline every unfinished read simply fails.
    let per_identity = ctx
        .before_deadline(join_all(
            identities
                .iter()
                .enumerate()
                .map(|(i, identity)| run_identity(config, ctx, identity, i, &fetches)),
        ))
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
        out[p.request] = Some(result);
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::new(ErrorKind::Unexpected, "no result"))))
        .collect()
}

/// Loads the identity's credentials once, then reads its objects.
async fn run_identity(
    config: &Config,
    ctx: &ResolveContext,
    identity: &Identity,
    index: usize,
    fetches: &[Fetch],
) -> Vec<(usize, Fetched)> {
    let mine: Vec<usize> = (0..fetches.len())
        .filter(|&f| fetches[f].identity == index)
        .collect();
    let sdk = match credentials::establish(identity, config, ctx).await {
        Ok(sdk) => sdk,
        Err(failure) => {
            return mine
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
    };
    let limit = Semaphore::new(ctx.max_concurrency.max(1));
    let limit = &limit;
    let mut regions: Vec<&str> = Vec::new();
    for &f in &mine {
        if !regions.contains(&fetches[f].region.as_str()) {
            regions.push(&fetches[f].region);
        }
    }
    let clients: Vec<SmClient> = regions
        .iter()
        .map(|region| SmClient::new(&sdk, region, ctx.requests.clone(), identity.describe()))
        .collect();
    let mut ops: Vec<BoxFuture<'_, Vec<(usize, Fetched)>>> = Vec::new();
    for (region, client) in regions.iter().zip(&clients) {
        let in_region = mine
            .iter()
            .copied()
            .filter(|&f| fetches[f].region == *region);
        let (current, pinned): (Vec<usize>, Vec<usize>) =
            in_region.partition(|&f| fetches[f].is_current());
        let batched = if config.batching && current.len() >= 2 {
            current.clone()
        } else {
            Vec::new()
        };
        for chunk in batched.chunks(BATCH_LIMIT) {
            ops.push(batch_op(client, chunk.to_vec(), fetches, limit).boxed());
        }
        let singles = if batched.is_empty() {
            current
        } else {
            Vec::new()
        };
        for f in singles.into_iter().chain(pinned) {
            ops.push(
                async move {
                    let fetch = &fetches[f];
                    let raw = get_one(client, fetch, limit).await;
                    vec![(
                        f,
                        Fetched {
                            raw,
                            notes: Vec::new(),
                        },
                    )]
                }
                .boxed(),
            );
        }
    }
    join_all(ops).await.into_iter().flatten().collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use secrets_core::Secret;
    use secrets_core::payload::AwsServer;

    fn request(variable: &str, aws: AwsSecret) -> SecretRequest {
        SecretRequest {
            variable: variable.into(),
            secret: Secret {
                aws_secrets_manager: Some(aws),
                ..Secret::default()
            },
        }
    }

    fn secret(id: &str) -> AwsSecret {
        AwsSecret {
            secret_id: id.into(),
            server: AwsServer {
                region: "us-east-1".into(),
                ..AwsServer::default()
            },
            ..AwsSecret::default()
        }
    }

    #[test]
    fn local_checks_fail_before_any_request() {
        let mut both = secret("db");
        both.version_id = Some("v1".into());
        both.version_stage = Some("AWSCURRENT".into());
        let err = plan(&request("DB", both)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSpec);
        assert!(
            err.to_string().starts_with(
                "DB (aws_secrets_manager db version_id v1 version_stage AWSCURRENT in us-east-1): \
             version_id and version_stage are both set"
            ),
            "{err}"
        );

        let mut jwt = secret("db");
        jwt.server.jwt = "a.b.c".into();
        let err = plan(&request("DB", jwt)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert_eq!(
            err.message(),
            "Role ARN is required when using JWT for AWS authentication"
        );
        assert!(err.fix().unwrap().contains("AWS_ROLE_ARN"));
        assert!(err.fix().unwrap().contains("AWS_ID_TOKEN"));
        assert!(!err.to_string().contains("a.b.c"));

        let err = plan(&request("DB", secret(""))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSpec);

        let mut no_region = secret("db");
        no_region.server.region.clear();
        let err = plan(&request("DB", no_region)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.fix().unwrap().contains("AWS_REGION"));
    }

    #[test]
    fn per_secret_values_win_and_empty_counts_as_unset() {
        let mut s = secret("db");
        s.server.role_arn = Some("arn:aws:iam::1:role/server".into());
        s.server.role_session_name = Some("server-session".into());
        s.role_arn = Some(String::new());
        s.role_session_name = Some("own-session".into());
        s.region = Some("eu-west-1".into());
        let (identity, fetch) = plan(&request("DB", s)).unwrap();
        assert_eq!(identity.region, "eu-west-1");
        assert_eq!(fetch.region, "eu-west-1");
        let Auth::WebIdentity {
            role_arn,
            session_name,
            ..
        } = identity.auth
        else {
            panic!("web identity expected");
        };
        assert_eq!(role_arn, "arn:aws:iam::1:role/server");
        assert_eq!(session_name, "own-session");
    }

    #[test]
    fn arn_region_is_called_with_a_note() {
        let arn = "arn:aws:secretsmanager:eu-west-1:987654321098:secret:shared-AbCdEf";
        let (identity, fetch) = plan(&request("S", secret(arn))).unwrap();
        assert_eq!(
            identity.region, "us-east-1",
            "STS and the chain stay in AWS_REGION"
        );
        assert_eq!(fetch.region, "eu-west-1");
        assert_eq!(fetch.notes.len(), 1);
        assert!(fetch.notes[0].contains("eu-west-1"), "{:?}", fetch.notes);

        let mut own = secret(arn);
        own.region = Some("us-east-2".into());
        let (_, fetch) = plan(&request("S", own)).unwrap();
        assert_eq!(fetch.region, "us-east-2", "an explicit region wins");
        assert!(fetch.notes.is_empty());

        let same = "arn:aws:secretsmanager:us-east-1:987654321098:secret:shared-AbCdEf";
        let (_, fetch) = plan(&request("S", secret(same))).unwrap();
        assert!(fetch.notes.is_empty());
    }
}
