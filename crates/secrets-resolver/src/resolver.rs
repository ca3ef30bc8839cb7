//! The resolution loop: classify, expand, check tokens, dispatch per provider concurrently,
//! retry failed secrets, then succeed whole or fail whole.

use crate::options::ResolveOptions;
use crate::registry::{compiled_providers, descriptor_for, feature_for};
use crate::report::{Outcome, Report, ResolveFailure, SecretReport};
use auth_oidc::{Clock, IdToken, SystemClock};
use futures_util::future::join_all;
use secrets_core::masking::mask_problems;
use secrets_core::materialise::{SecretVariable, runner_variables};
use secrets_core::payload::token_reference;
use secrets_core::{
    Cleanup, DeadlinePassed, Environment, Error, ErrorKind, JobPayload, JobVariable,
    ProviderDescriptor, ProviderKind, RequestCounter, RequestRole, ResolveContext, Resolved,
    Secret, SecretProvider, SecretRequest, SecretValue, Secrets, Variables,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tracing::{info, warn};

/// Builds a [`Resolver`].
#[derive(Debug)]
pub struct ResolverBuilder {
    providers: BTreeMap<ProviderKind, Arc<dyn SecretProvider>>,
    options: ResolveOptions,
    clock: Arc<dyn Clock>,
    env: Environment,
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

    /// Sets the clock every expiry check of a resolution reads (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the environment snapshot the providers read during a resolution (set by
    /// [`Self::with_default_providers_from`]; empty by default).
    pub fn with_environment(mut self, env: Environment) -> Self {
        self.env = env;
        self
    }

    /// The resolver.
    pub fn build(self) -> Resolver {
        Resolver {
            providers: self.providers,
            options: self.options,
            clock: self.clock,
            env: self.env,
        }
    }
}

/// Resolves a job's secrets. Cheap to share; one resolution per call.
#[derive(Debug)]
pub struct Resolver {
    providers: BTreeMap<ProviderKind, Arc<dyn SecretProvider>>,
    options: ResolveOptions,
    clock: Arc<dyn Clock>,
    env: Environment,
}

/// A successful resolution.
///
/// It comes back as soon as every value is there; work the providers do after their reads
/// (revoking a Vault token) may still be in flight. [`Self::close`] waits for it: call it
/// before the process exits, after starting whatever the variables are for. Dropped without
/// [`Self::close`], that work still finishes on the runtime in the background (and a Vault
/// token whose revoke is cut short by the runtime shutting down is revoked on a thread of its
/// own; see `provider_vault::wait_for_revocations`).
#[derive(Debug)]
pub struct Resolution {
    /// The secret variables, in payload order (skipped secrets left out).
    pub variables: Vec<SecretVariable>,
    /// What happened. Its `requests` count what was sent until the values were there;
    /// [`Self::close`] adds the cleanup's (a Vault revoke).
    pub report: Report,
    cleanup: Cleanup,
    requests: RequestCounter,
}

impl Resolution {
    /// The runner's variable list: the job's variables, then the secrets (which win).
    pub fn runner_variables(&self, job: &[JobVariable]) -> Vec<JobVariable> {
        runner_variables(job, &self.variables)
    }

    /// How many pieces of cleanup work (a Vault token's revocation each) are still in flight.
    pub fn in_flight(&self) -> usize {
        self.cleanup.in_flight()
    }

    /// Waits for the work still in flight, e.g. while the variables are written out or a
    /// child process starts, without borrowing `self`. It does not update the report:
    /// [`Self::close`] does.
    pub fn closing(&self) -> impl Future<Output = ()> + Send + 'static {
        let cleanup = self.cleanup.clone();
        async move { cleanup.finish().await }
    }

    /// Waits for the work still in flight (each piece bounded by the request timeout; a
    /// failed revoke is logged, the token then lives until its TTL ends), then counts its
    /// requests in [`Self::report`]. Calling it again does nothing more.
    pub async fn close(&mut self) {
        self.cleanup.finish().await;
        self.report.requests = all_requests(&self.requests);
    }
}

/// Every request counted, by report key.
fn all_requests(counter: &RequestCounter) -> BTreeMap<String, u64> {
    counter
        .snapshot()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// The requests counted, but for those that end a session (a revoke), which may or may not
/// have been sent yet while the cleanup is in flight: the same numbers every time.
fn requests_before_cleanup(counter: &RequestCounter) -> BTreeMap<String, u64> {
    counter
        .by_kind()
        .into_iter()
        .filter(|(k, _)| k.role() != RequestRole::Logout)
        .map(|(k, v)| (k.as_str().to_owned(), v))
        .collect()
}

struct Slot {
    report: SecretReport,
    value: Option<SecretValue>,
    secret: Secret,
    /// The typed error of a failed secret.
    error: Option<Error>,
}

impl Slot {
    fn fail(&mut self, err: Error) {
        self.report.outcome = Outcome::failed(&err);
        self.error = Some(err);
    }
}

impl Resolver {
    /// A builder with no providers and default options.
    pub fn builder() -> ResolverBuilder {
        ResolverBuilder {
            providers: BTreeMap::new(),
            options: ResolveOptions::default(),
            clock: Arc::new(SystemClock),
            env: Environment::default(),
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
        let started = monotonic_now();
        let counter = RequestCounter::default();
        // Cleanup (a revoke) runs while the caller already has the variables.
        let cleanup = Cleanup::deferred();
        let ctx = ResolveContext {
            requests: counter.clone(),
            request_timeout: self.options.request_timeout,
            connect_timeout: self.options.connect_timeout,
            max_concurrency: self.options.max_concurrency.max(1),
            retry: self.options.retry,
            deadline: None,
            clock: Arc::clone(&self.clock),
            env: self.env.clone(),
            cleanup: cleanup.clone(),
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
                    reference: self.reference(secret),
                    outcome: Outcome::Resolved,
                    duration_ms: 0,
                    attempt: 1,
                    notes: Vec::new(),
                },
                value: None,
                secret: secret.clone(),
                error: None,
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
                    slot.fail(err);
                }
                Classified::Resolve(kind) => {
                    info!("Using \"{}\" secret resolver...", kind.resolver_name());
                    slot.report.provider = Some(kind.keyword().to_owned());
                    let mut expanded = secret.clone();
                    expanded.expand_variables(&lookup);
                    // One reference text per secret: the one the provider's errors carry.
                    slot.report.reference = self.reference(&expanded);
                    match self.check_token(key, kind, secret, &expanded) {
                        Err(err) => slot.fail(err),
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
            let failed = self
                .dispatch(std::mem::take(&mut pending), &ctx, &mut slots, attempt)
                .await;
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
                        "{}: GitLab could not mask this value as a CI/CD variable: it {problem} \
                         (`ci-secrets exec` and the runner still mask it in the job log)",
                        slot.report.variable
                    ));
                }
            }
        }
        let failed = slots.iter().any(|s| s.report.outcome.is_failure());
        if failed {
            // Nobody would wait for the cleanup of a failure: it ends here.
            cleanup.finish().await;
        }
        let report = Report {
            secrets: slots.iter().map(|s| s.report.clone()).collect(),
            requests: if failed {
                all_requests(&counter)
            } else {
                requests_before_cleanup(&counter)
            },
            attempts: attempt,
            duration_ms: started.elapsed().as_millis() as u64,
            warnings,
        };
        if failed {
            let errors = slots.into_iter().filter_map(|s| s.error).collect();
            return Err(ResolveFailure { report, errors });
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
        Ok(Resolution {
            variables,
            report,
            cleanup,
            requests: counter,
        })
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
                    Some(_) if compiled_providers().contains(kind) => Error::new(
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
                    None => {
                        let supported: Vec<&str> =
                            compiled_providers().iter().map(|k| k.keyword()).collect();
                        Error::new(
                            ErrorKind::InvalidConfig,
                            format!("the {kind} provider is not supported by this tool yet"),
                        )
                        .with_fix(format!(
                            "resolve this secret with GitLab Runner, or use one of: {}",
                            supported.join(", ")
                        ))
                    }
                };
                Classified::Fail(
                    err.with_variable(key)
                        .with_reference(self.reference(secret)),
                )
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

    /// The description of `kind`: the registered provider's, else the compiled one's.
    fn descriptor(&self, kind: ProviderKind) -> Option<&'static dyn ProviderDescriptor> {
        self.providers
            .get(&kind)
            .map(|p| p.descriptor())
            .or_else(|| descriptor_for(kind))
    }

    /// The reference text of a secret: its provider's, or a generic one for providers this
    /// build does not have.
    fn reference(&self, secret: &Secret) -> String {
        match secret.providers().as_slice() {
            [kind] => self
                .descriptor(*kind)
                .map(|d| d.reference(secret))
                .unwrap_or_else(|| secret.reference()),
            _ => secret.reference(),
        }
    }

    /// The one check of the ID token a secret logs in with, before any request and with the
    /// resolution's clock: an empty (undefined variable), malformed or expired token fails
    /// here, naming the token's variable.
    fn check_token(
        &self,
        key: &str,
        kind: ProviderKind,
        original: &Secret,
        expanded: &Secret,
    ) -> Result<(), Error> {
        let Some(descriptor) = self.descriptor(kind) else {
            return Ok(());
        };
        let (Some(reference), Some(token)) =
            (descriptor.id_token(original), descriptor.id_token(expanded))
        else {
            return Ok(());
        };
        match IdToken::parse_and_check(&token, self.clock.as_ref()) {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::new(ErrorKind::InvalidConfig, e.to_string())
                .with_variable(key)
                .with_reference(format!(
                    "{}, token {}",
                    descriptor.reference(expanded),
                    token_reference(&reference)
                ))),
        }
    }

    /// Resolves `pending` (one provider call per provider, concurrently, under the deadline)
    /// and records outcomes. Returns the requests that failed, for another attempt.
    async fn dispatch(
        &self,
        pending: Vec<(usize, ProviderKind, SecretRequest)>,
        ctx: &ResolveContext,
        slots: &mut [Slot],
        attempt: u32,
    ) -> Vec<(usize, ProviderKind, SecretRequest)> {
        // Requests move into their provider's group (no copy: an expanded secret can hold
        // an ID token, and a job can have a thousand).
        let mut groups: BTreeMap<ProviderKind, (Vec<usize>, Vec<SecretRequest>)> = BTreeMap::new();
        for (index, kind, request) in pending {
            let (indices, requests) = groups.entry(kind).or_default();
            indices.push(index);
            requests.push(request);
        }
        // Providers see the deadline and stop in time to clean up; the outer timeout, later
        // by one request's time (a revoke), only stops a provider that ignores it.
        let ctx = &ResolveContext {
            deadline: Some(monotonic_now() + self.options.deadline),
            ..ctx.clone()
        };
        let backstop = self.options.deadline + self.options.request_timeout;
        let calls = groups
            .into_iter()
            .map(|(kind, (indices, requests))| async move {
                let provider = &self.providers[&kind];
                let started = monotonic_now();
                let results =
                    tokio::time::timeout(backstop, provider.resolve(&requests, ctx)).await;
                (kind, indices, requests, results, started.elapsed())
            });
        let mut failed = Vec::new();
        for (kind, indices, requests, results, elapsed) in join_all(calls).await {
            let mut results = match results {
                Ok(results) => results.into_iter().map(Some).collect::<Vec<_>>(),
                Err(_) => Vec::new(),
            };
            results.resize_with(indices.len(), || None);
            for ((index, request), result) in indices.into_iter().zip(requests).zip(results) {
                let slot = &mut slots[index];
                slot.report.duration_ms = elapsed.as_millis() as u64;
                slot.report.attempt = attempt;
                let result = result.unwrap_or_else(|| {
                    Err(DeadlinePassed.error(&request.variable, &slot.report.reference))
                });
                match result {
                    Ok(Resolved { value, notes }) => {
                        slot.report.outcome = Outcome::Resolved;
                        slot.error = None;
                        slot.report.notes = notes;
                        slot.value = Some(value);
                    }
                    Err(err) if err.is_secret_not_found() && !self.options.fail_if_missing => {
                        slot.report.outcome = Outcome::MissingAllowed;
                        slot.report.notes.push(format!(
                            "not found; created empty because FF_SECRET_RESOLVING_FAILS_IF_MISSING is false ({err})"
                        ));
                        slot.value = Some(SecretValue::new(""));
                        slot.error = None;
                    }
                    Err(err) => {
                        slot.fail(err.or_variable(&request.variable));
                        failed.push((index, kind, request));
                    }
                }
            }
        }
        failed
    }
}

/// The resolver's one monotonic clock: report durations and each attempt's deadline.
fn monotonic_now() -> Instant {
    #[allow(
        clippy::disallowed_methods,
        reason = "the one monotonic clock of a resolution"
    )]
    let now = Instant::now();
    now
}

enum Classified {
    Skip(String),
    Fail(Error),
    Resolve(ProviderKind),
}
