//! GitLab Secrets Manager through the resolver: leaks (canary values and a canary JWT never
//! reach TRACE logs, errors, reports or panic messages), and, against the real OpenBao of
//! `cargo xtask services up`, an expired JWT refused before any request and the plan equal
//! to the requests sent. The e2e tests skip, saying why, unless `CI_SECRETS_E2E_ENV` is set.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

mod common;

use canary_capture::{assert_clean, logs};

use auth_oidc::testing::{E2eEnv, GitlabClaims};
use common::*;
use secrecy::ExposeSecret as _;
use secrets_core::{Environment, ErrorKind, JobPayload, Secret, Variables};
use secrets_resolver::{Plan, Resolution, ResolveFailure, Resolver};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Display, Debug and the report of a resolution, without exposing a value.
fn shown(result: &Result<Resolution, ResolveFailure>) -> String {
    let mut out = format!("{result:?}\n{result:#?}\n");
    match result {
        Ok(resolution) => {
            out.push_str(&serde_json::to_string(&resolution.report).unwrap_or_default());
            for v in &resolution.variables {
                out.push_str(&format!("{v:?} {:?}", v.value));
            }
        }
        Err(failure) => {
            out.push_str(&failure.to_string());
            out.push_str(&serde_json::to_string(&failure.report).unwrap_or_default());
        }
    }
    out
}

fn gsm(url: &str, ns: &str, name: &str, jwt: &str) -> Secret {
    serde_json::from_value(json!({
        "gitlab_secrets_manager": {
            "server": {"url": url, "inline_auth": {
                "path": format!("{ns}/auth/pipeline_jwt/login"), "jwt": jwt, "role": "all_pipelines"}},
            "engine": {"name": "kv-v2", "path": format!("{ns}/secrets/kv")},
            "path": format!("explicit/{name}"),
            "field": "value",
        },
        "file": false,
    }))
    .expect("a gitlab_secrets_manager secret")
}

fn resolver() -> Resolver {
    Resolver::builder()
        .with_default_providers_from(&Environment::default())
        .expect("providers")
        .with_options(fast_options())
        .build()
}

#[tokio::test]
async fn gitlab_sm_paths_leak_nothing_at_trace_level() {
    let logs = logs();
    let value = canary("gsmvalue");
    let sig = canary("gsmjwt");
    let server = MockServer::start().await;
    let jwt = jwt(&server.uri(), &sig);
    let ns = "group_12/project_34";
    let data = |name: &str| format!("/v1/{ns}/secrets/kv/data/explicit/{name}");
    Mock::given(method("GET"))
        .and(path(data("GOOD")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": {"data": {"value": value, "other": value}}})),
        )
        .mount(&server)
        .await;
    // Servers that echo the JWT in their messages.
    let echo = json!({"errors": [format!("bad token {jwt}")]});
    for (name, status, failed) in [
        ("DENIED", 403, false),
        ("REFUSED", 400, true),
        ("BROKEN", 500, false),
    ] {
        let mut answer = ResponseTemplate::new(status).set_body_json(echo.clone());
        if failed {
            answer = answer.insert_header("x-vault-inline-auth-failed", "true");
        }
        Mock::given(method("GET"))
            .and(path(data(name)))
            .respond_with(answer)
            .mount(&server)
            .await;
    }
    let url = server.uri();
    let ok = resolver()
        .resolve(
            &secrets(vec![("GSM_GOOD", gsm(&url, ns, "GOOD", &jwt))]),
            &Variables::default(),
        )
        .await;
    assert_eq!(
        ok.as_ref().expect("resolves").variables[0].value.expose(),
        value
    );
    let canaries = [value.as_str(), sig.as_str(), jwt.as_str()];
    assert_clean("a successful resolution", &shown(&ok), &canaries);

    let failed = resolver()
        .resolve(
            &secrets(vec![
                ("GSM_GOOD", gsm(&url, ns, "GOOD", &jwt)),
                ("GSM_DENIED", gsm(&url, ns, "DENIED", &jwt)),
                ("GSM_REFUSED", gsm(&url, ns, "REFUSED", &jwt)),
                ("GSM_BROKEN", gsm(&url, ns, "BROKEN", &jwt)),
            ]),
            &Variables::default(),
        )
        .await;
    let failure = failed.as_ref().expect_err("fails");
    assert_eq!(failure.errors.len(), 3, "{failure}");
    assert!(
        failure.to_string().contains("bad token <redacted>"),
        "{failure}"
    );
    assert_clean("a failed resolution", &shown(&failed), &canaries);
    let logged = logs.text();
    assert!(logged.contains("GSM_REFUSED"), "the capture works");
    assert_clean("the trace-level logs", &logged, &[&sig, &jwt, &value]);
}

fn e2e_claims(env: &E2eEnv) -> GitlabClaims {
    GitlabClaims::new()
        .with_project("mygroup/myproject", 34)
        .with_namespace("mygroup", 12)
        .with_audience(env.vault_addr())
}

#[tokio::test]
async fn gitlab_sm_through_the_resolver_plans_what_it_sends() {
    let Some(env) = E2eEnv::for_test("gitlab_sm_through_the_resolver_plans_what_it_sends") else {
        return;
    };
    let jwt = env.minter().mint(&e2e_claims(&env)).expect("mint");
    let jwt = jwt.expose_secret();
    let addr = env.vault_addr();
    let payload = JobPayload {
        secrets: secrets(vec![
            ("DB", gsm(addr, "group_12/project_34", "DB_PASSWORD", jwt)),
            (
                "DB_AGAIN",
                gsm(addr, "group_12/project_34", "DB_PASSWORD", jwt),
            ),
            (
                "SHARED",
                gsm(addr, "group_12/group_12", "SHARED_TOKEN", jwt),
            ),
        ]),
        variables: Vec::new(),
    };
    let resolution = resolver()
        .resolve_payload(&payload)
        .await
        .expect("resolves");
    assert_eq!(
        Plan::of(&payload.secrets).requests,
        resolution.report.requests
    );
    assert_eq!(resolution.report.requests.get("gitlab_sm_read"), Some(&2));
    let values: Vec<&str> = resolution
        .variables
        .iter()
        .map(|v| v.value.expose())
        .collect();
    assert_eq!(
        values,
        [
            "gsm-db-password-1",
            "gsm-db-password-1",
            "gsm-group-token-4"
        ]
    );
}

#[tokio::test]
async fn an_expired_gitlab_sm_jwt_is_refused_before_any_request() {
    let Some(env) = E2eEnv::for_test("an_expired_gitlab_sm_jwt_is_refused_before_any_request")
    else {
        return;
    };
    let jwt = env
        .minter()
        .mint(&e2e_claims(&env).expired())
        .expect("mint");
    let payload = JobPayload {
        secrets: secrets(vec![(
            "DB",
            gsm(
                env.vault_addr(),
                "group_12/project_34",
                "DB_PASSWORD",
                jwt.expose_secret(),
            ),
        )]),
        variables: Vec::new(),
    };
    let failure = resolver()
        .resolve_payload(&payload)
        .await
        .expect_err("expired");
    assert_eq!(failure.errors.len(), 1);
    let err = &failure.errors[0];
    assert!(
        matches!(
            err.kind(),
            ErrorKind::InvalidConfig | ErrorKind::Unauthenticated
        ),
        "{err}"
    );
    assert_eq!(err.variable(), Some("DB"));
    assert!(err.to_string().contains("expired"), "{err}");
    assert!(err.to_string().contains("explicit/DB_PASSWORD"), "{err}");
    assert!(err.to_string().contains("re-run the job"), "the fix: {err}");
    assert!(failure.report.requests.is_empty(), "no request was sent");
    assert!(!failure.to_string().contains(jwt.expose_secret()));
}
