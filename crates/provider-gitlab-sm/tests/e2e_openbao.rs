//! End-to-end tests against the real OpenBao seeded by `cargo xtask services up` with
//! GitLab Secrets Manager's layout (`docs/e2e-fixtures.md`). Each test skips, saying why,
//! unless `CI_SECRETS_E2E_ENV` names the services' env file.

use auth_oidc::testing::{E2eEnv, GitlabClaims};
use provider_gitlab_sm::GitlabSecretsManagerBuilder;
use provider_gitlab_sm::requests::READ;
use secrecy::ExposeSecret as _;
use secrets_core::{
    Error, ErrorKind, ResolveContext, Resolved, Secret, SecretProvider, SecretRequest,
};
use serde_json::json;
use std::time::Duration;

const PROJECT_NS: &str = "group_12/project_34";
const GROUP_NS: &str = "group_12/group_12";

/// The JWT GitLab would mint: project 34 in group 12, audience the OpenBao URL.
fn claims(env: &E2eEnv) -> GitlabClaims {
    GitlabClaims::new()
        .with_project("mygroup/myproject", 34)
        .with_namespace("mygroup", 12)
        .with_audience(env.vault_addr())
}

fn mint(env: &E2eEnv, claims: &GitlabClaims) -> String {
    env.minter()
        .mint(claims)
        .expect("mint")
        .expose_secret()
        .to_owned()
}

struct Entry<'a> {
    ns: &'a str,
    name: &'a str,
    jwt: &'a str,
    role: &'a str,
    mount: &'a str,
}

fn request(env: &E2eEnv, variable: &str, e: &Entry<'_>) -> SecretRequest {
    let secret: Secret = serde_json::from_value(json!({
        "gitlab_secrets_manager": {
            "server": {"url": env.vault_addr(), "inline_auth": {
                "path": format!("{}/auth/{}/login", e.ns, e.mount), "jwt": e.jwt, "role": e.role}},
            "engine": {"name": "kv-v2", "path": format!("{}/secrets/kv", e.ns)},
            "path": format!("explicit/{}", e.name),
            "field": "value",
        },
        "file": false,
    }))
    .unwrap();
    SecretRequest {
        variable: variable.to_owned(),
        secret,
    }
}

fn project<'a>(name: &'a str, jwt: &'a str) -> Entry<'a> {
    Entry {
        ns: PROJECT_NS,
        name,
        jwt,
        role: "all_pipelines",
        mount: "pipeline_jwt",
    }
}

async fn resolve(requests: &[SecretRequest]) -> (Vec<Result<Resolved, Error>>, ResolveContext) {
    let ctx = ResolveContext {
        request_timeout: Duration::from_secs(10),
        ..ResolveContext::default()
    };
    let provider = GitlabSecretsManagerBuilder::new().build().unwrap();
    (provider.resolve(requests, &ctx).await, ctx)
}

fn error(result: &Result<Resolved, Error>) -> &Error {
    match result {
        Ok(_) => panic!("expected an error, got a value"),
        Err(e) => e,
    }
}

/// The error has `kind`, names the variable and the secret, has a fix, and never the JWT.
fn check(err: &Error, kind: ErrorKind, variable: &str, name: &str, jwt: &str) {
    assert_eq!(err.kind(), kind, "{err}");
    assert_eq!(err.variable(), Some(variable));
    let text = err.to_string();
    assert!(text.contains(variable), "{text}");
    assert!(text.contains(&format!("explicit/{name}")), "{text}");
    assert!(err.fix().is_some_and(|f| !f.is_empty()), "no fix: {text}");
    assert!(!text.contains(jwt) && !format!("{err:?}").contains(jwt));
}

#[tokio::test]
async fn project_and_group_secrets_with_one_read_per_path() {
    let Some(env) = E2eEnv::for_test("project_and_group_secrets_with_one_read_per_path") else {
        return;
    };
    let jwt = mint(&env, &claims(&env));
    let group = Entry {
        ns: GROUP_NS,
        ..project("SHARED_TOKEN", &jwt)
    };
    let requests = [
        request(&env, "DB_PASSWORD", &project("DB_PASSWORD", &jwt)),
        request(&env, "DB_PASSWORD_AGAIN", &project("DB_PASSWORD", &jwt)),
        request(&env, "API_KEY", &project("API_KEY", &jwt)),
        request(&env, "SHARED", &group),
    ];
    let (results, ctx) = resolve(&requests).await;
    let values: Vec<&str> = results
        .iter()
        .map(|r| match r {
            Ok(r) => r.value.expose(),
            Err(e) => panic!("{e}"),
        })
        .collect();
    assert_eq!(
        values,
        [
            "gsm-db-password-1",
            "gsm-db-password-1",
            "gsm-api-key-2",
            "gsm-group-token-4"
        ]
    );
    // Two variables on one secret: one read.
    assert_eq!(ctx.requests.get(READ), 3);
    assert!(results[0].as_ref().unwrap().notes[0].contains("once for 2 variables"));
}

#[tokio::test]
async fn login_failures_policy_denial_missing_and_non_string() {
    let Some(env) = E2eEnv::for_test("login_failures_policy_denial_missing_and_non_string") else {
        return;
    };
    let jwt = mint(&env, &claims(&env));
    let wrong_aud = mint(
        &env,
        &claims(&env).with_audience("https://gitlab.example.com"),
    );
    let other_project = mint(&env, &claims(&env).with_project("mygroup/other", 99));
    let cases: Vec<(&str, Entry<'_>, ErrorKind, &str)> = vec![
        (
            "WRONG_ROLE",
            Entry {
                role: "nope",
                ..project("DB_PASSWORD", &jwt)
            },
            ErrorKind::Unauthenticated,
            "all_pipelines",
        ),
        (
            "WRONG_AUD",
            project("API_KEY", &wrong_aud),
            ErrorKind::Unauthenticated,
            "aud",
        ),
        (
            "WRONG_PROJECT",
            project("DB_PASSWORD", &other_project),
            ErrorKind::Unauthenticated,
            "bound_claims",
        ),
        (
            "UNKNOWN_MOUNT",
            Entry {
                mount: "nope",
                ..project("DB_PASSWORD", &jwt)
            },
            ErrorKind::Unauthenticated,
            "pipeline_jwt",
        ),
        (
            "FORBIDDEN",
            project("FORBIDDEN", &jwt),
            ErrorKind::PermissionDenied,
            "policy",
        ),
        (
            "MISSING",
            project("MISSING", &jwt),
            ErrorKind::NotFound,
            "create the secret",
        ),
        (
            "PORT",
            project("PORT", &jwt),
            ErrorKind::InvalidSpec,
            "string",
        ),
    ];
    let requests: Vec<SecretRequest> = cases
        .iter()
        .map(|(variable, entry, ..)| request(&env, variable, entry))
        .collect();
    let (results, _) = resolve(&requests).await;
    for ((variable, entry, kind, fix), result) in cases.iter().zip(&results) {
        let err = error(result);
        check(err, *kind, variable, entry.name, entry.jwt);
        assert!(err.fix().unwrap().contains(fix), "{variable}: {err}");
    }
    assert!(
        error(&results[6])
            .to_string()
            .contains("invalid type number")
    );
}
