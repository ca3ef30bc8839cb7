//! Behaviour of the resolution loop, with fake providers: order, flags, overrides, skips,
//! missing secrets, aggregated failures, retries, token checks, deadline.
#![cfg(feature = "vault")]

use async_trait::async_trait;
use auth_oidc::FixedClock;
use secrets_core::{
    Error, ErrorKind, JobPayload, JobVariable, ProviderDescriptor, ResolveContext, Resolved,
    SecretProvider, SecretRequest, SecretValue,
};
use secrets_resolver::{Outcome, ResolveOptions, Resolver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Answers `value-of:<path>`, fails for paths starting with `fail`, reports not-found for
/// `missing`, fails the first `flaky` call, hangs on `hang`.
#[derive(Debug, Default)]
struct FakeVault {
    calls: Mutex<Vec<Vec<String>>>,
}

#[async_trait]
impl SecretProvider for FakeVault {
    fn descriptor(&self) -> &'static dyn ProviderDescriptor {
        &provider_vault::DESCRIPTOR
    }

    async fn resolve(
        &self,
        requests: &[SecretRequest],
        _: &ResolveContext,
    ) -> Vec<Result<Resolved, Error>> {
        let paths: Vec<String> = requests
            .iter()
            .map(|r| r.secret.vault.as_deref().unwrap().path.clone())
            .collect();
        let first_flaky = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(paths.clone());
            calls.len() == 1
        };
        if paths.iter().any(|p| p == "hang") {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        paths
            .iter()
            .map(|path| match path.as_str() {
                p if p.starts_with("fail") => {
                    Err(Error::new(ErrorKind::PermissionDenied, "permission denied")
                        .with_reference(format!("vault {p}")))
                }
                "missing" => {
                    Err(Error::new(ErrorKind::NotFound, "secret not found").with_secret_not_found())
                }
                // A not-found that is not the runner's ErrSecretNotFound (as AWS's are).
                "gone" => Err(Error::new(ErrorKind::NotFound, "ResourceNotFoundException")),
                "flaky" if first_flaky => Err(Error::new(ErrorKind::Unavailable, "503")),
                p => Ok(Resolved::new(SecretValue::new(format!("value-of:{p}")))),
            })
            .collect()
    }
}

fn vault(path: &str, jwt: &str, file: Option<bool>) -> serde_json::Value {
    let mut secret = serde_json::json!({"vault": {
        "server": {"url": "https://v", "auth": {"name": "jwt", "path": "jwt", "data": {"jwt": jwt}}},
        "engine": {"name": "kv-v2", "path": "secret"}, "path": path, "field": "f"}});
    if let Some(file) = file {
        secret["file"] = file.into();
    }
    secret
}

const TOKEN_VAR: &str = "VAULT_ID_TOKEN";

/// A syntactically valid unsigned token expiring at 2000.
fn token() -> String {
    use base64::Engine as _;
    let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.sig",
        b(r#"{"alg":"RS256"}"#),
        b(r#"{"aud":"x","exp":2000}"#)
    )
}

fn payload(secrets: serde_json::Value, extra_vars: &[(&str, &str)]) -> JobPayload {
    let mut variables = vec![JobVariable {
        key: TOKEN_VAR.into(),
        value: token(),
        masked: true,
        ..JobVariable::default()
    }];
    variables.extend(extra_vars.iter().map(|(k, v)| JobVariable::new(*k, *v)));
    JobPayload {
        secrets: serde_json::from_value(secrets).unwrap(),
        variables,
    }
}

fn resolver(fake: Arc<FakeVault>, options: ResolveOptions) -> Resolver {
    Resolver::builder()
        .with_provider(fake)
        .with_options(options)
        .with_clock(Arc::new(FixedClock(1000)))
        .build()
}

#[tokio::test]
async fn produces_the_runner_variables_in_payload_order() {
    let fake = Arc::new(FakeVault::default());
    let p = payload(
        serde_json::json!({
            "B_FILE": vault("$APP/b", "$VAULT_ID_TOKEN", None),
            "A_PLAIN": vault("a", "${VAULT_ID_TOKEN}", Some(false)),
            "SHADOW": vault("s", "$VAULT_ID_TOKEN", Some(false)),
        }),
        &[("APP", "my-app"), ("SHADOW", "from-ci")],
    );
    let resolution = resolver(fake.clone(), ResolveOptions::default())
        .resolve_payload(&p)
        .await
        .unwrap();
    let keys: Vec<_> = resolution
        .variables
        .iter()
        .map(|v| v.key.as_str())
        .collect();
    assert_eq!(keys, ["B_FILE", "A_PLAIN", "SHADOW"]);
    assert_eq!(
        resolution.variables[0].value.expose(),
        "value-of:my-app/b",
        "spec fields are expanded"
    );
    assert!(resolution.variables[0].file && !resolution.variables[1].file);
    assert!(resolution.variables.iter().all(|v| v.masked && v.raw));
    assert_eq!(
        fake.calls.lock().unwrap().len(),
        1,
        "one provider call for all its secrets"
    );

    let all = resolution.runner_variables(&p.variables);
    let shadow: Vec<_> = all.iter().filter(|v| v.key == "SHADOW").collect();
    assert_eq!(
        shadow.last().unwrap().value,
        "value-of:s",
        "the secret comes last and wins"
    );
    assert!(
        resolution
            .report
            .secrets
            .iter()
            .all(|s| s.outcome == Outcome::Resolved)
    );
}

#[tokio::test]
async fn unknown_providers_are_skipped_and_several_providers_fail() {
    let fake = Arc::new(FakeVault::default());
    let p = payload(
        serde_json::json!({
            "OLD": {"akeyless": {"name": "x"}},
            "OK": vault("ok", "$VAULT_ID_TOKEN", None),
        }),
        &[],
    );
    let resolution = resolver(fake.clone(), ResolveOptions::default())
        .resolve_payload(&p)
        .await
        .unwrap();
    assert_eq!(resolution.variables.len(), 1);
    assert!(matches!(
        resolution.report.secrets[0].outcome,
        Outcome::Skipped { .. }
    ));
    assert!(
        resolution
            .report
            .warnings
            .iter()
            .any(|w| w.contains("OLD") && w.contains("akeyless"))
    );

    let mut both = vault("x", "$VAULT_ID_TOKEN", None);
    both["aws_secrets_manager"] = serde_json::json!({"secret_id": "s"});
    let p = payload(serde_json::json!({ "BOTH": both }), &[]);
    let failure = resolver(fake, ResolveOptions::default())
        .resolve_payload(&p)
        .await
        .unwrap_err();
    assert!(failure.to_string().contains("BOTH"), "{failure}");
    assert!(
        failure
            .to_string()
            .contains("several providers (aws_secrets_manager, vault)"),
        "{failure}"
    );
    assert!(failure.is_configuration_problem());
}

#[tokio::test]
async fn an_unregistered_provider_fails_with_its_name() {
    let p = payload(
        serde_json::json!({"G": {"gcp_secret_manager": {"name": "n", "version": "1"}}}),
        &[],
    );
    let failure = resolver(Arc::new(FakeVault::default()), ResolveOptions::default())
        .resolve_payload(&p)
        .await
        .unwrap_err();
    assert!(
        failure.to_string().contains("gcp_secret_manager provider"),
        "{failure}"
    );
}

#[tokio::test]
async fn missing_secrets_follow_the_feature_flag() {
    let p = payload(
        serde_json::json!({"M": vault("missing", "$VAULT_ID_TOKEN", Some(false))}),
        &[],
    );
    let failure = resolver(Arc::new(FakeVault::default()), ResolveOptions::default())
        .resolve_payload(&p)
        .await
        .unwrap_err();
    assert!(
        failure.to_string().contains("M: secret not found"),
        "{failure}"
    );
    assert!(!failure.is_configuration_problem());

    let options = ResolveOptions::from_job_variables(&[JobVariable::new(
        "FF_SECRET_RESOLVING_FAILS_IF_MISSING",
        "false",
    )]);
    let resolution = resolver(Arc::new(FakeVault::default()), options)
        .resolve_payload(&p)
        .await
        .unwrap();
    assert_eq!(resolution.variables[0].value.expose(), "");
    assert_eq!(
        resolution.report.secrets[0].outcome,
        Outcome::MissingAllowed
    );

    // The flag softens only the runner's own "secret not found".
    let gone = payload(
        serde_json::json!({"G": vault("gone", "$VAULT_ID_TOKEN", Some(false))}),
        &[],
    );
    let options = ResolveOptions::from_job_variables(&[JobVariable::new(
        "FF_SECRET_RESOLVING_FAILS_IF_MISSING",
        "false",
    )]);
    let failure = resolver(Arc::new(FakeVault::default()), options)
        .resolve_payload(&gone)
        .await
        .unwrap_err();
    assert!(
        failure.to_string().contains("ResourceNotFoundException"),
        "{failure}"
    );
}

#[tokio::test]
async fn every_failure_is_reported_and_nothing_is_returned() {
    let p = payload(
        serde_json::json!({
            "GOOD": vault("good", "$VAULT_ID_TOKEN", None),
            "BAD1": vault("fail/one", "$VAULT_ID_TOKEN", None),
            "BAD2": vault("fail/two", "$VAULT_ID_TOKEN", None),
        }),
        &[],
    );
    let failure = resolver(Arc::new(FakeVault::default()), ResolveOptions::default())
        .resolve_payload(&p)
        .await
        .unwrap_err();
    let text = failure.to_string();
    assert!(
        text.starts_with("resolving secrets: 2 of 3 secrets failed"),
        "{text}"
    );
    assert!(
        text.contains("BAD1 (vault fail/one): permission denied [runner_configuration_error]"),
        "{text}"
    );
    assert!(text.contains("BAD2"), "{text}");
    assert!(
        !text.contains("value-of"),
        "no value in the failure: {text}"
    );
    assert_eq!(failure.report.secrets[0].outcome, Outcome::Resolved);
}

#[tokio::test(start_paused = true)]
async fn later_attempts_retry_only_what_failed() {
    let fake = Arc::new(FakeVault::default());
    let p = payload(
        serde_json::json!({
            "STABLE": vault("stable", "$VAULT_ID_TOKEN", None),
            "FLAKY": vault("flaky", "$VAULT_ID_TOKEN", None),
        }),
        &[("SECRETS_RETRIEVAL_ATTEMPTS", "2")],
    );
    let options = ResolveOptions::from_job_variables(&p.variables);
    let resolution = resolver(fake.clone(), options)
        .resolve_payload(&p)
        .await
        .unwrap();
    assert_eq!(resolution.report.attempts, 2);
    assert_eq!(
        *fake.calls.lock().unwrap(),
        [vec!["stable", "flaky"], vec!["flaky"]]
    );
    assert_eq!(resolution.report.secrets[1].attempt, 2);

    let fake = Arc::new(FakeVault::default());
    let failure = resolver(fake.clone(), ResolveOptions::default())
        .resolve_payload(&p)
        .await
        .unwrap_err();
    assert_eq!(
        failure.report.attempts, 1,
        "default: one attempt, as the runner"
    );
    assert!(
        failure
            .to_string()
            .contains("runner_external_dependency_failure"),
        "{failure}"
    );
}

#[tokio::test]
async fn empty_or_expired_tokens_fail_before_any_request() {
    let fake = Arc::new(FakeVault::default());
    let p = payload(
        serde_json::json!({
            "EMPTY": vault("a", "$UNDEFINED_TOKEN", None),
            "EXPIRED": vault("b", "$VAULT_ID_TOKEN", None),
        }),
        &[],
    );
    let failure = Resolver::builder()
        .with_provider(fake.clone())
        .with_clock(Arc::new(FixedClock(5000)))
        .build()
        .resolve_payload(&p)
        .await
        .unwrap_err();
    let text = failure.to_string();
    assert!(
        text.contains(
            "EMPTY (vault kv-v2 mount secret path a field f at https://v, token $UNDEFINED_TOKEN): the ID token is empty"
        ),
        "{text}"
    );
    assert!(
        text.contains("EXPIRED") && text.contains("expired"),
        "{text}"
    );
    assert!(fake.calls.lock().unwrap().is_empty(), "no request made");
    assert!(failure.is_configuration_problem());
    assert!(!text.contains(&token()), "the token is never printed");
}

#[tokio::test(start_paused = true)]
async fn the_deadline_bounds_an_attempt() {
    let p = payload(
        serde_json::json!({"SLOW": vault("hang", "$VAULT_ID_TOKEN", None)}),
        &[],
    );
    let options = ResolveOptions::default().with_deadline(Duration::from_secs(2));
    let failure = resolver(Arc::new(FakeVault::default()), options)
        .resolve_payload(&p)
        .await
        .unwrap_err();
    assert!(
        failure.to_string().contains("SLOW (vault kv-v2 mount"),
        "{failure}"
    );
    assert!(
        failure
            .to_string()
            .contains("not resolved within the resolution's deadline"),
        "{failure}"
    );
}

#[tokio::test]
async fn values_gitlab_cannot_mask_are_warned_about_without_the_value() {
    let p = payload(
        serde_json::json!({"SHORT": vault("x", "$VAULT_ID_TOKEN", None)}),
        &[],
    );
    // value-of:x is 10 characters but has ':' (allowed); make it fail on the character rule.
    let p2 = payload(
        serde_json::json!({"SPACEY": vault("a b", "$VAULT_ID_TOKEN", None)}),
        &[],
    );
    let r = resolver(Arc::new(FakeVault::default()), ResolveOptions::default());
    assert!(
        r.resolve_payload(&p)
            .await
            .unwrap()
            .report
            .warnings
            .is_empty()
    );
    let warnings = r.resolve_payload(&p2).await.unwrap().report.warnings;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("SPACEY: GitLab could not mask"));
    assert!(!warnings[0].contains("value-of"));
}
