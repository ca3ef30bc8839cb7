//! The resolution loop: classify, expand, check tokens, dispatch per provider concurrently,
//! retry failed secrets, then succeed whole or fail whole.

use crate::options::ResolveOptions;
use crate::registry::feature_for;
use crate::report::{Outcome, Report, ResolveFailure, SecretReport};
use auth_oidc::{Clock, IdToken, SystemClock};
use futures_util::future::join_all;
use secrets_core::masking::mask_problems;
use secrets_core::materialise::{SecretVariable, runner_variables};
use secrets_core::payload::non_empty;
use secrets_core::{
    Error, ErrorKind, JobPayload, JobVariable, ProviderKind, RequestCounter, ResolveContext,
    Resolved, Secret, SecretProvider, SecretRequest, SecretValue, Secrets, Variables,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Builds a [`Resolver`].
#[derive(Debug)]
pub struct ResolverBuilder {
    providers: BTreeMap<ProviderKind, Arc<dyn SecretProvider>>,
    options: ResolveOptions,
    clock: Arc<dyn Clock>,
}

impl ResolverBuilder {
    /// Registers a provider for its keyword, replacing an earlier one.
    pub fn with_provider(mut self, provider: Arc<dyn SecretProvider>) -> Self {
        self.providers.insert(provider.kind(), provider);
        self
    }

    /// Sets the options.
    pub fn with_options(mut self, options: ResolveOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets the clock used to check ID token expiry (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The resolver.
    pub fn build(self) -> Resolver {
        Resolver {
            providers: self.providers,
            options: self.options,
            clock: self.clock,
        }
    }
}

/// Resolves a job's secrets. Cheap to share; one resolution per call.
#[derive(Debug)]
pub struct Resolver {
    providers: BTreeMap<ProviderKind, Arc<dyn SecretProvider>>,
    options: ResolveOptions,
    clock: Arc<dyn Clock>,
}

/// A successful resolution.
#[derive(Debug)]
pub struct Resolution {
    /// The secret variables, in payload order (skipped secrets left out).
    pub variables: Vec<SecretVariable>,
    /// What happened.
    pub report: Report,
}

impl Resolution {
    /// The runner's variable list: the job's variables, then the secrets (which win).
    pub fn runner_variables(&self, job: &[JobVariable]) -> Vec<JobVariable> {
        runner_variables(job, &self.variables)
    }
}

struct Slot {
    report: SecretReport,
    value: Option<SecretValue>,
    secret: Secret,
}

impl Resolver {
    /// A builder with no providers and default options.
    pub fn builder() -> ResolverBuilder {
        ResolverBuilder {
            providers: BTreeMap::new(),
            options: ResolveOptions::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The options in use.
    pub fn options(&self) -> &ResolveOptions {
        &self.options
    }

    /// The registered providers.
    pub fn providers(&self) -> impl Iterator<Item = ProviderKind> + '_ {
        self.providers.keys().copied()
    }

    /// Resolves a job payload's `secrets` against its `variables`.
    pub async fn resolve_payload(
        &self,
        payload: &JobPayload,
    ) -> Result<Resolution, ResolveFailure> {
        self.resolve(&payload.secrets, &Variables::new(payload.variables.clone()))
            .await
    }

    /// Resolves `secrets`, expanding their fields with `variables` as the runner does.
    /// Everything is resolved before deciding; on any failure nothing is returned but the
    /// report.
    pub async fn resolve(
        &self,
        secrets: &Secrets,
        variables: &Variables,
    ) -> Result<Resolution, ResolveFailure> {
        let started = Instant::now();
        let counter = RequestCounter::default();
        let ctx = ResolveContext {
            requests: counter.clone(),
            request_timeout: self.options.request_timeout,
            connect_timeout: self.options.connect_timeout,
            max_concurrency: self.options.max_concurrency.max(1),
            retry: self.options.retry,
            deadline: None,
        };
        let mut warnings = self.options.warnings.clone();
        let expanded_variables = variables.expanded();
        let lookup = |name: &str| expanded_variables.get(name).map(|v| v.into_owned());

        info!("Resolving secrets");
        let mut slots = Vec::with_capacity(secrets.len());
        let mut pending = Vec::new();
        for (index, (key, secret)) in secrets.iter().enumerate() {
            info!("Resolving secret \"{key}\"...");
            let mut slot = Slot {
                report: SecretReport {
                    variable: key.clone(),
                    provider: None,
                    reference: secret.reference(),
                    outcome: Outcome::Resolved,
                    duration_ms: 0,
                    attempt: 1,
                    notes: Vec::new(),
                },
                value: None,
                secret: secret.clone(),
            };
            match self.classify(key, secret) {
                Classified::Skip(reason) => {
                    warn!(variable = %key, "Not resolved: no resolver that can handle the secret");
                    warnings.push(format!("{key}: {reason}"));
                    slot.report.outcome = Outcome::Skipped { reason };
                }
                Classified::Fail(err) => {
                    slot.report.provider =
                        secret.providers().first().map(|p| p.keyword().to_owned());
                    slot.report.outcome = Outcome::failed(&err);
                }
                Classified::Resolve(kind) => {
                    info!("Using \"{}\" secret resolver...", kind.resolver_name());
                    slot.report.provider = Some(kind.keyword().to_owned());
                    let mut expanded = secret.clone();
                    expanded.expand_variables(&lookup);
                    match self.check_token(key, secret, &expanded) {
                        Err(err) => slot.report.outcome = Outcome::failed(&err),
                        Ok(()) => pending.push((
                            index,
                            kind,
                            SecretRequest {
                                variable: key.clone(),
                                secret: expanded,
                            },
                        )),
                    }
                }
            }
            slots.push(slot);
        }

        let mut attempt = 1;
        loop {
            let failed = self.dispatch(&pending, &ctx, &mut slots, attempt).await;
            pending = failed;
            if pending.is_empty() || attempt >= self.options.attempts {
                break;
            }
            attempt += 1;
            let backoff = self.options.backoff_before(attempt);
            info!(
                "Retrying... (attempt {attempt} of {}, after {backoff:?})",
                self.options.attempts
            );
            tokio::time::sleep(backoff).await;
        }

        for slot in &slots {
            if let Some(value) = &slot.value {
                for problem in mask_problems(value.expose()) {
                    warnings.push(format!(
                        "{}: GitLab could not mask this value: it {problem}",
                        slot.report.variable
                    ));
                }
            }
        }
        let report = Report {
            secrets: slots.iter().map(|s| s.report.clone()).collect(),
            requests: counter
                .snapshot()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            attempts: attempt,
            duration_ms: started.elapsed().as_millis() as u64,
            warnings,
        };
        if report.failures().next().is_some() {
            return Err(ResolveFailure { report });
        }
        let variables = slots
            .into_iter()
            .filter_map(|slot| {
                let value = slot.value?;
                Some(SecretVariable::new(
                    slot.report.variable,
                    &slot.secret,
                    value,
                ))
            })
            .collect();
        Ok(Resolution { variables, report })
    }

    fn classify(&self, key: &str, secret: &Secret) -> Classified {
        let providers = secret.providers();
        match providers.as_slice() {
            [] => {
                let unknown: Vec<_> = secret.unknown_members().collect();
                Classified::Skip(if unknown.is_empty() {
                    "no provider key; not resolved".to_owned()
                } else {
                    format!(
                        "no resolver that can handle the secret (unknown provider {}); not resolved",
                        unknown.join(", ")
                    )
                })
            }
            [kind] if self.providers.contains_key(kind) => Classified::Resolve(*kind),
            [kind] => {
                let err = match feature_for(*kind) {
                    Some(_) if crate::compiled_providers().contains(kind) => Error::new(
                        ErrorKind::InvalidConfig,
                        format!("no {kind} provider is registered with this resolver"),
                    )
                    .with_fix("register it (ResolverBuilder::with_default_providers)"),
                    Some(feature) => Error::new(
                        ErrorKind::InvalidConfig,
                        format!("the {kind} provider is not compiled into this build"),
                    )
                    .with_fix(format!(
                        "build secrets-resolver with the cargo feature `{feature}`"
                    )),
                    None => Error::new(
                        ErrorKind::InvalidConfig,
                        format!("the {kind} provider is not supported by this tool yet"),
                    )
                    .with_fix("resolve this secret with GitLab Runner, or use vault or aws_secrets_manager"),
                };
                Classified::Fail(err.with_variable(key).with_reference(secret.reference()))
            }
            many => {
                let names: Vec<_> = many.iter().map(|k| k.keyword()).collect();
                Classified::Fail(
                    Error::new(
                        ErrorKind::InvalidSpec,
                        format!("names several providers ({})", names.join(", ")),
                    )
                    .with_variable(key)
                    .with_fix("use exactly one provider per secret (GitLab Runner would silently use the first)"),
                )
            }
        }
    }

    /// Checks the ID token a secret logs in with before any request: an empty (undefined
    /// variable), malformed or expired token fails here.
    fn check_token(&self, key: &str, original: &Secret, expanded: &Secret) -> Result<(), Error> {
        let (reference, token) = if let (Some(orig), Some(v)) = (&original.vault, &expanded.vault) {
            if v.server.auth.name != "jwt" || !v.server.auth.data.contains_key("jwt") {
                return Ok(());
            }
            (
                orig.server.auth.data_str("jwt").unwrap_or_default(),
                v.server.auth.data_str("jwt").unwrap_or_default(),
            )
        } else if let (Some(orig), Some(a)) =
            (&original.aws_secrets_manager, &expanded.aws_secrets_manager)
        {
            let role = non_empty(&a.role_arn).or(non_empty(&a.server.role_arn));
            if role.is_none() {
                return Ok(());
            }
            (orig.server.jwt.clone(), a.server.jwt.clone())
        } else {
            return Ok(());
        };
        match IdToken::parse_and_check(&token, self.clock.as_ref()) {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::new(ErrorKind::InvalidConfig, e.to_string())
                .with_variable(key)
                .with_reference(format!(
                    "{}, token {}",
                    original.reference(),
                    secrets_core::payload::token_reference(&reference)
                ))),
        }
    }

    /// Resolves `pending` (one provider call per provider, concurrently, under the deadline)
    /// and records outcomes. Returns the requests that failed, for another attempt.
    async fn dispatch(
        &self,
        pending: &[(usize, ProviderKind, SecretRequest)],
        ctx: &ResolveContext,
        slots: &mut [Slot],
        attempt: u32,
    ) -> Vec<(usize, ProviderKind, SecretRequest)> {
        let mut groups: BTreeMap<ProviderKind, Vec<&(usize, ProviderKind, SecretRequest)>> =
            BTreeMap::new();
        for item in pending {
            groups.entry(item.1).or_default().push(item);
        }
        // Providers see the deadline and stop in time to clean up; the outer timeout, later
        // by one request's time (a revoke), only stops a provider that ignores it.
        let ctx = &ResolveContext {
            deadline: Some(Instant::now() + self.options.deadline),
            ..ctx.clone()
        };
        let backstop = self.options.deadline + self.options.request_timeout;
        let calls = groups.into_iter().map(|(kind, items)| async move {
            let provider = &self.providers[&kind];
            let requests: Vec<SecretRequest> = items.iter().map(|(_, _, r)| r.clone()).collect();
            let started = Instant::now();
            let results = tokio::time::timeout(backstop, provider.resolve(&requests, ctx)).await;
            (items, results, started.elapsed())
        });
        let mut failed = Vec::new();
        for (items, results, elapsed) in join_all(calls).await {
            let mut results = match results {
                Ok(results) => results.into_iter().map(Some).collect::<Vec<_>>(),
                Err(_) => Vec::new(),
            };
            results.resize_with(items.len(), || None);
            for (item, result) in items.into_iter().zip(results) {
                let (index, _, request) = item;
                let slot = &mut slots[*index];
                slot.report.duration_ms = elapsed.as_millis() as u64;
                slot.report.attempt = attempt;
                let result = result.unwrap_or_else(|| {
                    Err(deadline_error(self.options.deadline, &request.variable))
                });
                match result {
                    Ok(Resolved { value, notes }) => {
                        slot.report.outcome = Outcome::Resolved;
                        slot.report.notes = notes;
                        slot.value = Some(value);
                    }
                    Err(err) if err.is_secret_not_found() && !self.options.fail_if_missing => {
                        slot.report.outcome = Outcome::MissingAllowed;
                        slot.report.notes.push(format!(
                            "not found; created empty because FF_SECRET_RESOLVING_FAILS_IF_MISSING is false ({err})"
                        ));
                        slot.value = Some(SecretValue::new(""));
                    }
                    Err(err) => {
                        let err = err.or_variable(&request.variable);
                        slot.report.outcome = Outcome::failed(&err);
                        failed.push(item.clone());
                    }
                }
            }
        }
        failed
    }
}

fn deadline_error(deadline: Duration, variable: &str) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "not resolved within the deadline of {}s",
            deadline.as_secs()
        ),
    )
    .with_variable(variable)
    .with_fix("check that the server is reachable, or raise the deadline")
}

enum Classified {
    Skip(String),
    Fail(Error),
    Resolve(ProviderKind),
}
