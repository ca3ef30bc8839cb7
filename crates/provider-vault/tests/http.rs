//! HTTP-level tests against a mock Vault (wiremock): the exact requests, error classes,
//! not-found rules, value formatting, token reuse, dedupe, revocation, retries and order.

mod common;

use common::*;
use secrets_core::{ErrorKind, ResolveContext, RetryPolicy, SecretProvider};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

// ---------------------------------------------------------------------------------------
// The exact requests

#[tokio::test]
async fn login_and_read_requests_are_exact() {
    let server = MockServer::start().await;
    let jwt = id_token();
    Mock::given(method("PUT"))
        .and(path("/v1/auth/gitlab/jwt/login"))
        .and(header("x-vault-request", "true"))
        .and(header("x-vault-namespace", "team1"))
        .and(body_json(json!({"jwt": jwt, "role": "ci"})))
        .respond_with(login_ok())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/ci/app"))
        .and(header("x-vault-request", "true"))
        .and(header("x-vault-namespace", "team1"))
        .and(header("x-vault-token", VAULT_TOKEN))
        .respond_with(kv2(json!({"password": "team1-password"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/token/revoke-self"))
        .and(header("x-vault-namespace", "team1"))
        .and(header("x-vault-token", VAULT_TOKEN))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;

    let mut spec = Spec::new(&server, "ci/app", "password").jwt(&jwt);
    spec.namespace = Some("team1".into());
    spec.auth_path = "/gitlab//jwt/".into();
    let ctx = ctx();
    let results = provider().resolve(&[spec.request("PASSWORD")], &ctx).await;
    assert_eq!(value(&results[0]), "team1-password");
    assert_eq!(ctx.requests.get(provider_vault::requests::LOGIN), 1);
    assert_eq!(ctx.requests.get(provider_vault::requests::READ), 1);
    assert_eq!(ctx.requests.get(provider_vault::requests::REVOKE), 1);
}

#[tokio::test]
async fn login_without_role_or_namespace_sends_neither() {
    let server = MockServer::start().await;
    let jwt = id_token();
    Mock::given(method("PUT"))
        .and(path("/v1/auth/jwt/login"))
        .and(header("x-vault-request", "true"))
        .and(no_namespace_header)
        .and(body_json(json!({"jwt": jwt})))
        .respond_with(login_ok())
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/ci/app"))
        .and(no_namespace_header)
        .respond_with(kv2(json!({"password": "p"})))
        .expect(2)
        .mount(&server)
        .await;
    mount_revoke(&server, 2).await;

    let unset = Spec::new(&server, "ci/app", "password")
        .jwt(&jwt)
        .role(None);
    let mut empty = unset.clone().role(Some(""));
    // An empty namespace is no namespace; a different URL spelling is another identity.
    empty.namespace = Some(String::new());
    empty.url = format!("{}/", server.uri());
    let results = provider()
        .resolve(&[unset.request("A"), empty.request("B")], &ctx())
        .await;
    assert_eq!(value(&results[0]), "p");
    assert_eq!(value(&results[1]), "p");
}

#[tokio::test]
async fn read_paths_per_engine_follow_go_path_join() {
    let server = MockServer::start().await;
    mount_login(&server, 1).await;
    mount_revoke(&server, 1).await;
    let cases = [
        ("kv-v2", "secret/", "/ci//app/", "/v1/secret/data/ci/app"),
        ("kv-v2", "engine/", "/secret/", "/v1/engine/data/secret"),
        (
            "kv-v2",
            "/ops",
            "production/./x/../db",
            "/v1/ops/data/production/db",
        ),
        ("kv-v1", "kv1", "ci/legacy", "/v1/kv1/ci/legacy"),
        (
            "generic",
            "artifactory",
            "production/jfrog",
            "/v1/artifactory/production/jfrog",
        ),
        ("generic", "totp/", "code//ci", "/v1/totp/code/ci"),
    ];
    let mut requests = Vec::new();
    for (i, (engine, mount, p, want)) in cases.iter().enumerate() {
        let body = if *engine == "kv-v2" {
            kv2(json!({"f": format!("v{i}")}))
        } else {
            kv1(json!({"f": format!("v{i}")}))
        };
        Mock::given(method("GET"))
            .and(path(*want))
            .respond_with(body)
            .expect(1)
            .mount(&server)
            .await;
        requests.push(
            Spec::new(&server, p, "f")
                .engine(engine, mount)
                .request(&format!("V{i}")),
        );
    }
    let results = provider().resolve(&requests, &ctx()).await;
    for (i, r) in results.iter().enumerate() {
        assert_eq!(value(r), format!("v{i}"), "case {i}: {:?}", cases[i]);
    }
}

#[tokio::test]
async fn a_server_url_with_a_path_prefix_keeps_it() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/vault/v1/auth/jwt/login"))
        .respond_with(login_ok())
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/vault/v1/secret/data/ci/app"))
        .respond_with(kv2(json!({"f": "x"})))
        .expect(1)
        .mount(&server)
        .await;
    let mut spec = Spec::new(&server, "ci/app", "f");
    spec.url = format!("{}/vault/", server.uri());
    let results = no_revoke().resolve(&[spec.request("X")], &ctx()).await;
    assert_eq!(value(&results[0]), "x");
}

#[tokio::test]
async fn paths_climbing_out_of_v1_are_refused_without_a_read() {
    let server = MockServer::start().await;
    mount_login(&server, 1).await;
    let spec = Spec::new(&server, "../../../sys/seal-status", "f");
    let ctx = ctx();
    let results = no_revoke().resolve(&[spec.request("X")], &ctx).await;
    let err = error(&results[0]);
    assert_eq!(err.kind(), ErrorKind::InvalidSpec);
    assert!(err.to_string().contains("climbs out of /v1/"), "{err}");
    assert_eq!(ctx.requests.get(provider_vault::requests::READ), 0);
}

// ---------------------------------------------------------------------------------------
// Offline failures: zero requests

#[tokio::test]
async fn empty_and_malformed_tokens_make_no_request() {
    // Expiry is checked once, by the resolver, with the resolution's clock (see
    // secrets-resolver's request_counts tests).
    let server = MockServer::start().await;
    let cases = [
        ("", "the ID token is empty"),
        ("not-a-jwt", "not a valid JWT"),
    ];
    for (jwt, text) in cases {
        let ctx = ctx();
        let requests = [
            Spec::new(&server, "ci/app", "a").jwt(jwt).request("A"),
            Spec::new(&server, "ci/other", "b").jwt(jwt).request("B"),
        ];
        let results = provider().resolve(&requests, &ctx).await;
        for (r, var) in results.iter().zip(["A", "B"]) {
            let err = error(r);
            assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
            assert_eq!(err.variable(), Some(var));
            assert!(err.to_string().contains(text), "{err}");
            assert!(err.to_string().contains(&server.uri()), "{err}");
        }
        assert_eq!(ctx.requests.total(), 0, "{jwt:?}");
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn config_errors_use_the_runner_wording_and_make_no_request() {
    let server = MockServer::start().await;
    let mut no_jwt = Spec::new(&server, "ci/app", "f");
    no_jwt.jwt = None;
    let bad_engine = Spec::new(&server, "ci/app", "f").engine("kv-v3", "secret");
    let mut bad_auth = Spec::new(&server, "ci/app", "f").request("AUTH");
    bad_auth.secret.vault.as_mut().unwrap().server.auth.name = "approle".into();
    let mut no_url = Spec::new(&server, "ci/app", "f");
    no_url.url = String::new();

    let ctx = ctx();
    let results = provider()
        .resolve(
            &[
                no_jwt.request("NO_JWT"),
                bad_engine.request("ENGINE"),
                bad_auth,
                no_url.request("URL"),
            ],
            &ctx,
        )
        .await;
    let cases = [
        (
            "NO_JWT",
            "missing required auth method configuration key \"jwt\"",
        ),
        (
            "ENGINE",
            "factory for secret engine \"kv-v3\" is not registered",
        ),
        (
            "AUTH",
            "factory for auth method \"approle\" is not registered",
        ),
        ("URL", "VAULT_SERVER_URL"),
    ];
    for (r, (var, text)) in results.iter().zip(cases) {
        let err = error(r);
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
        assert_eq!(err.variable(), Some(var));
        assert!(err.to_string().contains(text), "{err}");
    }
    assert_eq!(ctx.requests.total(), 0);
}

// ---------------------------------------------------------------------------------------
// Error classes

async fn read_failure(response: ResponseTemplate, attempts: u64) -> (secrets_core::Error, u64) {
    let server = MockServer::start().await;
    mount_login(&server, 1).await;
    mount_revoke(&server, 1).await;
    Mock::given(method("GET"))
        .and(path("/v1/ops/data/production/db"))
        .respond_with(response)
        .expect(attempts)
        .mount(&server)
        .await;
    let spec = Spec::new(&server, "production/db", "password").engine("kv-v2", "ops");
    let ctx = ctx();
    let mut results = provider()
        .resolve(&[spec.request("DB_PASSWORD")], &ctx)
        .await;
    let err = results.remove(0).unwrap_err();
    let text = err.to_string();
    // Every message names the variable, the server, the mount, the path and the field.
    for part in [
        "DB_PASSWORD",
        &server.uri(),
        "mount ops",
        "path production/db",
        "field password",
    ] {
        assert!(text.contains(part), "{part:?} missing from {text}");
    }
    (err, ctx.requests.get(provider_vault::requests::READ))
}

#[tokio::test]
async fn read_errors_are_classified() {
    // (status, body, kind, retryable, attempts, text)
    let cases: Vec<(u16, Value, ErrorKind, bool, u64, &str)> = vec![
        (
            400,
            errors(&["invalid request"]),
            ErrorKind::InvalidSpec,
            false,
            1,
            "invalid request",
        ),
        (
            401,
            errors(&[]),
            ErrorKind::Unauthenticated,
            false,
            1,
            "token",
        ),
        (
            403,
            errors(&["permission denied"]),
            ErrorKind::PermissionDenied,
            false,
            1,
            "the role's policies do not grant read on ops/data/production/db",
        ),
        (
            404,
            errors(&[]),
            ErrorKind::NotFound,
            false,
            1,
            "secret not found",
        ),
        (
            429,
            errors(&["rate limit quota exceeded"]),
            ErrorKind::RateLimited,
            true,
            3,
            "429",
        ),
        (
            500,
            errors(&["internal error"]),
            ErrorKind::Unavailable,
            true,
            3,
            "internal error",
        ),
        (
            503,
            errors(&["Vault is sealed"]),
            ErrorKind::Unavailable,
            false,
            1,
            "Vault is sealed",
        ),
        (
            502,
            json!("<html>bad gateway</html>"),
            ErrorKind::Unavailable,
            true,
            3,
            "502",
        ),
    ];
    for (status, body, kind, retryable, attempts, text) in cases {
        let (err, reads) =
            read_failure(ResponseTemplate::new(status).set_body_json(body), attempts).await;
        assert_eq!(err.kind(), kind, "{status}: {err}");
        assert_eq!(err.is_retryable(), retryable, "{status}: {err}");
        assert_eq!(reads, attempts, "{status}");
        assert!(err.to_string().contains(text), "{status}: {err}");
        assert!(!err.to_string().contains("<html>"), "{err}");
    }
}

#[tokio::test]
async fn malformed_json_is_unexpected_and_never_quoted() {
    let (err, reads) = read_failure(
        ResponseTemplate::new(200).set_body_string("{\"data\": not json canary-body"),
        1,
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::Unexpected);
    assert_eq!(reads, 1);
    assert!(!format!("{err} {err:?}").contains("canary-body"), "{err}");
}

#[tokio::test]
async fn login_errors_explain_the_claims_to_check() {
    let cases: Vec<(u16, Value, ErrorKind, &str)> = vec![
        (
            400,
            errors(&["error validating token: invalid audience (aud) claim"]),
            ErrorKind::Unauthenticated,
            "bound_audiences",
        ),
        (
            400,
            errors(&[
                "error validating claims: claim \"ref\" does not match any associated bound claim values",
            ]),
            ErrorKind::Unauthenticated,
            "ref main, ref_type branch",
        ),
        (
            403,
            errors(&["permission denied"]),
            ErrorKind::Unauthenticated,
            "check the role's bound_claims",
        ),
        (
            401,
            errors(&[]),
            ErrorKind::Unauthenticated,
            "aud https://vault.example.com",
        ),
        (
            404,
            errors(&[]),
            ErrorKind::InvalidConfig,
            "VAULT_AUTH_PATH",
        ),
    ];
    for (status, body, kind, text) in cases {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .and(path("/v1/auth/jwt/login"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .expect(1)
            .mount(&server)
            .await;
        let ctx = ctx();
        let jwt = id_token();
        let results = provider()
            .resolve(
                &[
                    Spec::new(&server, "ci/app", "a").jwt(&jwt).request("A"),
                    Spec::new(&server, "ci/app", "b").jwt(&jwt).request("B"),
                ],
                &ctx,
            )
            .await;
        for (r, var) in results.iter().zip(["A", "B"]) {
            let err = error(r);
            assert_eq!(err.kind(), kind, "{status}: {err}");
            assert_eq!(err.variable(), Some(var));
            let text_all = err.to_string();
            assert!(text_all.contains(text), "{status}: {text_all}");
            assert!(
                text_all.contains("sub project_path:mygroup/myproject") || status == 404,
                "{text_all}"
            );
            assert!(!text_all.contains(&jwt));
        }
        assert_eq!(
            ctx.requests.get(provider_vault::requests::LOGIN),
            1,
            "{status}"
        );
        assert_eq!(ctx.requests.get(provider_vault::requests::READ), 0);
        assert_eq!(ctx.requests.get(provider_vault::requests::REVOKE), 0);
    }
}

#[tokio::test]
async fn connection_refused_is_unavailable_and_retried() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut spec = Spec {
        url: format!("http://127.0.0.1:{port}"),
        ..Spec::new(&MockServer::start().await, "ci/app", "f")
    };
    spec.role = Some("ci".into());
    let ctx = ctx();
    let results = provider().resolve(&[spec.request("X")], &ctx).await;
    let err = error(&results[0]);
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("cannot connect"), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert_eq!(
        ctx.requests.get(provider_vault::requests::LOGIN),
        3,
        "every attempt counts"
    );
}

#[tokio::test]
async fn slow_answers_time_out() {
    let server = MockServer::start().await;
    mount_login(&server, 1).await;
    mount_revoke(&server, 1).await;
    Mock::given(method("GET"))
        .respond_with(kv2(json!({"f": "x"})).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let ctx = ResolveContext {
        request_timeout: Duration::from_millis(200),
        retry: RetryPolicy::none(),
        ..ctx()
    };
    let results = provider()
        .resolve(&[Spec::new(&server, "ci/app", "f").request("X")], &ctx)
        .await;
    let err = error(&results[0]);
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("within 0.2s"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Not found

#[tokio::test]
async fn not_found_cases() {
    let server = MockServer::start().await;
    mount_login(&server, 1).await;
    mount_revoke(&server, 1).await;
    let read = |p: &str, response: ResponseTemplate| {
        Mock::given(method("GET"))
            .and(path(format!("/v1/secret/data/{p}")))
            .respond_with(response)
    };
    read("nf-empty", ResponseTemplate::new(404))
        .mount(&server)
        .await;
    read(
        "nf-errors",
        ResponseTemplate::new(404).set_body_json(errors(&[])),
    )
    .mount(&server)
    .await;
    read(
        "no-data",
        ResponseTemplate::new(200).set_body_json(json!({"data": null})),
    )
    .mount(&server)
    .await;
    read(
        "data-null",
        ResponseTemplate::new(200).set_body_json(json!({"data": {"data": null, "metadata": {}}})),
    )
    .mount(&server)
    .await;
    read("fields", kv2(json!({"present": "x", "nul": null})))
        .mount(&server)
        .await;
    read(
        "deleted",
        ResponseTemplate::new(404).set_body_json(json!({"data": {"data": null, "metadata": {
            "created_time": "2026-01-01T00:00:00Z", "deletion_time": "2026-02-01T00:00:00Z",
            "destroyed": false, "version": 2}}})),
    )
    .mount(&server)
    .await;

    let cases = [
        ("nf-empty", "f", "answered status 404"),
        ("nf-errors", "f", "answered status 404"),
        ("no-data", "f", "returned no data"),
        ("data-null", "f", "deleted or destroyed"),
        (
            "fields",
            "missing",
            "field \"missing\" is not in secret/data/fields",
        ),
        ("fields", "nul", "field \"nul\" of secret/data/fields"),
        ("deleted", "f", "is deleted (at 2026-02-01T00:00:00Z)"),
    ];
    let requests: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, (p, f, _))| Spec::new(&server, p, f).request(&format!("V{i}")))
        .collect();
    let ctx = ctx();
    let results = provider().resolve(&requests, &ctx).await;
    for (i, (r, (p, f, text))) in results.iter().zip(cases).enumerate() {
        let err = error(r);
        let shown = err.to_string();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{shown}");
        assert!(shown.contains("secret not found"), "{shown}");
        assert!(shown.contains(text), "{shown}");
        assert!(
            shown.starts_with(&format!(
                "V{i} (vault kv-v2 mount secret path {p} field {f} at "
            )),
            "{shown}"
        );
    }
    let fix = error(&results[4]).fix().unwrap();
    assert!(fix.contains("the secret has: nul, present"), "{fix}");
    // 6 distinct paths, each read once.
    assert_eq!(ctx.requests.get(provider_vault::requests::READ), 6);
}

#[tokio::test]
async fn non_object_kv2_data_cannot_be_coerced() {
    let server = MockServer::start().await;
    mount_login(&server, 1).await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {"data": "text"}})))
        .mount(&server)
        .await;
    let results = no_revoke()
        .resolve(&[Spec::new(&server, "ci/app", "f").request("X")], &ctx())
        .await;
    let err = error(&results[0]);
    assert!(
        err.to_string()
            .contains("data for key secret/data/ci/app cannot be coerced to 'map[string]any'"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// Values

#[tokio::test]
async fn values_are_formatted_like_go() {
    let server = MockServer::start().await;
    mount_login(&server, 1).await;
    mount_revoke(&server, 1).await;
    let body = r#"{"data":{"data":{
        "s":"text with $dollar","empty":"","int":5432,"exp":1e3,"dec":0.10,
        "big":123456789012345678901234567890,"t":true,"f":false,
        "obj":{"b":2,"a":{"y":[1,"x"],"n":null}},"arr":["a","b"],"emptyarr":[],"emptyobj":{}
    },"metadata":{}}}"#;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/ci/types"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    let cases = [
        ("s", "text with $dollar"),
        ("empty", ""),
        ("int", "5432"),
        ("exp", "1e3"),
        ("dec", "0.10"),
        ("big", "123456789012345678901234567890"),
        ("t", "true"),
        ("f", "false"),
        ("obj", "map[a:map[n:<nil> y:[1 x]] b:2]"),
        ("arr", "[a b]"),
        ("emptyarr", "[]"),
        ("emptyobj", "map[]"),
    ];
    let requests: Vec<_> = cases
        .iter()
        .map(|(f, _)| Spec::new(&server, "ci/types", f).request(&f.to_uppercase()))
        .collect();
    let ctx = ctx();
    let results = provider().resolve(&requests, &ctx).await;
    for (r, (f, want)) in results.iter().zip(cases) {
        assert_eq!(value(r), want, "field {f}");
    }
    assert_eq!(ctx.requests.get(provider_vault::requests::READ), 1);
}

// ---------------------------------------------------------------------------------------
// Reuse, dedupe, revocation, retries, concurrency, order

#[tokio::test]
async fn one_login_per_identity() {
    let server = MockServer::start().await;
    mount_login(&server, 1).await;
    mount_revoke(&server, 1).await;
    Mock::given(method("GET"))
        .respond_with(kv2(json!({"f": "v"})))
        .expect(5)
        .mount(&server)
        .await;
    let jwt = id_token();
    let requests: Vec<_> = (0..5)
        .map(|i| {
            Spec::new(&server, &format!("ci/s{i}"), "f")
                .jwt(&jwt)
                .request(&format!("V{i}"))
        })
        .collect();
    let ctx = ctx();
    let results = provider().resolve(&requests, &ctx).await;
    assert!(results.iter().all(|r| value(r) == "v"));
    assert_eq!(ctx.requests.get(provider_vault::requests::LOGIN), 1);
    assert_eq!(ctx.requests.get(provider_vault::requests::READ), 5);
}

#[tokio::test]
async fn two_roles_log_in_twice_and_read_with_their_own_tokens() {
    let server = MockServer::start().await;
    let jwt = id_token();
    for (role, token) in [("ci", "s.ci"), ("deploy", "s.deploy")] {
        Mock::given(method("PUT"))
            .and(path("/v1/auth/jwt/login"))
            .and(body_json(json!({"jwt": jwt, "role": role})))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"auth": {"client_token": token}})),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v1/secret/data/shared"))
            .and(header("x-vault-token", token))
            .respond_with(kv2(json!({"who": role})))
            .expect(1)
            .mount(&server)
            .await;
    }
    let ctx = ctx();
    let results = no_revoke()
        .resolve(
            &[
                Spec::new(&server, "shared", "who")
                    .jwt(&jwt)
                    .role(Some("ci"))
                    .request("A"),
                Spec::new(&server, "shared", "who")
                    .jwt(&jwt)
                    .role(Some("deploy"))
                    .request("B"),
                Spec::new(&server, "shared", "who")
                    .jwt(&jwt)
                    .role(Some("ci"))
                    .request("C"),
            ],
            &ctx,
        )
        .await;
    assert_eq!(value(&results[0]), "ci");
    assert_eq!(value(&results[1]), "deploy");
    assert_eq!(value(&results[2]), "ci");
    assert_eq!(ctx.requests.get(provider_vault::requests::LOGIN), 2);
    assert_eq!(ctx.requests.get(provider_vault::requests::READ), 2);
}

#[tokio::test]
async fn several_fields_of_one_path_are_read_once() {
    let server = MockServer::start().await;
    mount_login(&server, 1).await;
    mount_revoke(&server, 1).await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/ci/app"))
        .respond_with(kv2(
            json!({"username": "app-user", "password": "pw", "port": 5432}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let requests: Vec<_> = ["username", "password", "port"]
        .iter()
        .map(|f| Spec::new(&server, "ci/app", f).request(&f.to_uppercase()))
        .collect();
    let ctx = ctx();
    let results = provider().resolve(&requests, &ctx).await;
    assert_eq!(value(&results[0]), "app-user");
    assert_eq!(value(&results[1]), "pw");
    assert_eq!(value(&results[2]), "5432");
    assert_eq!(ctx.requests.get(provider_vault::requests::READ), 1);
    assert!(results[0].as_ref().unwrap().notes[0].contains("once for 3 variables"));
}

#[tokio::test]
async fn tokens_are_revoked_at_the_end_unless_disabled() {
    for (provider, revokes) in [(provider(), 1), (no_revoke(), 0)] {
        let server = MockServer::start().await;
        mount_login(&server, 1).await;
        mount_revoke(&server, revokes).await;
        Mock::given(method("GET"))
            .respond_with(kv2(json!({"f": "v"})))
            .expect(2)
            .mount(&server)
            .await;
        let ctx = ctx();
        let results = provider
            .resolve(
                &[
                    Spec::new(&server, "a", "f").request("A"),
                    Spec::new(&server, "b", "f").request("B"),
                ],
                &ctx,
            )
            .await;
        assert!(results.iter().all(|r| r.is_ok()));
        assert_eq!(ctx.requests.get(provider_vault::requests::REVOKE), revokes);
        // The revocation comes last.
        let received = server.received_requests().await.unwrap();
        if revokes == 1 {
            assert_eq!(
                received.last().unwrap().url.path(),
                "/v1/auth/token/revoke-self"
            );
        }
    }
}

#[tokio::test]
async fn a_failed_revocation_does_not_fail_the_job() {
    let server = MockServer::start().await;
    mount_login(&server, 1).await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/token/revoke-self"))
        .respond_with(ResponseTemplate::new(403).set_body_json(errors(&["permission denied"])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(kv2(json!({"f": "v"})))
        .mount(&server)
        .await;
    let results = provider()
        .resolve(&[Spec::new(&server, "a", "f").request("A")], &ctx())
        .await;
    assert_eq!(value(&results[0]), "v");
}

#[tokio::test]
async fn transient_failures_are_retried_then_succeed() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v1/auth/jwt/login"))
        .respond_with(
            ResponseTemplate::new(429).set_body_json(errors(&["rate limit quota exceeded"])),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    mount_login(&server, 1).await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503).set_body_json(errors(&["standby"])))
        .up_to_n_times(2)
        .with_priority(1)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(kv2(json!({"f": "finally"})))
        .expect(1)
        .mount(&server)
        .await;
    let ctx = ctx();
    let results = no_revoke()
        .resolve(&[Spec::new(&server, "a", "f").request("A")], &ctx)
        .await;
    assert_eq!(value(&results[0]), "finally");
    assert_eq!(ctx.requests.get(provider_vault::requests::LOGIN), 2);
    assert_eq!(ctx.requests.get(provider_vault::requests::READ), 3);
}

#[tokio::test]
async fn retry_after_lengthens_the_wait_before_the_next_attempt() {
    let server = MockServer::start().await;
    mount_login(&server, 1).await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(errors(&["rate limit quota exceeded"])),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(kv2(json!({"f": "after the wait"})))
        .expect(1)
        .mount(&server)
        .await;
    // The policy alone would wait at most 5 ms; the server asked for 1 s.
    let ctx = ctx();
    let started = Instant::now();
    let results = no_revoke()
        .resolve(&[Spec::new(&server, "a", "f").request("A")], &ctx)
        .await;
    assert_eq!(value(&results[0]), "after the wait");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(ctx.requests.get(provider_vault::requests::READ), 2);
}

#[tokio::test]
async fn vault_proxy_addr_carries_every_request() {
    // The proxy is the mock: the server's own name never resolves.
    let proxy = MockServer::start().await;
    mount_login(&proxy, 1).await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/a"))
        .respond_with(kv2(json!({"f": "through the proxy"})))
        .expect(1)
        .mount(&proxy)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/token/revoke-self"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&proxy)
        .await;
    let proxy_url = proxy.uri();
    let provider = provider_vault::VaultProviderBuilder::new()
        .with_env(
            [("VAULT_PROXY_ADDR", proxy_url.clone())]
                .into_iter()
                .collect(),
        )
        .build()
        .unwrap();
    let spec = Spec::at("http://vault.invalid:8200", "a", "f");
    let results = provider.resolve(&[spec.request("A")], &ctx()).await;
    assert_eq!(value(&results[0]), "through the proxy");
    let hosts: Vec<String> = proxy
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| r.url.host_str().unwrap_or_default().to_owned())
        .collect();
    assert!(hosts.iter().all(|h| h == "vault.invalid"), "{hosts:?}");
}

#[tokio::test]
async fn reads_are_concurrent_but_bounded_per_server() {
    let delay = Duration::from_millis(300);
    let run = |max_concurrency: usize| async move {
        let server = MockServer::start().await;
        mount_login(&server, 1).await;
        Mock::given(method("GET"))
            .respond_with(kv2(json!({"f": "v"})).set_delay(delay))
            .expect(4)
            .mount(&server)
            .await;
        let requests: Vec<_> = (0..4)
            .map(|i| Spec::new(&server, &format!("p{i}"), "f").request(&format!("V{i}")))
            .collect();
        let ctx = ResolveContext {
            max_concurrency,
            ..ctx()
        };
        let started = Instant::now();
        let results = no_revoke().resolve(&requests, &ctx).await;
        assert!(results.iter().all(|r| r.is_ok()));
        started.elapsed()
    };
    let serial = run(1).await;
    assert!(serial >= delay * 4, "{serial:?}");
    let parallel = run(4).await;
    assert!(parallel < delay * 3, "{parallel:?}");
}

#[tokio::test]
async fn results_come_back_in_request_order_across_identities_and_servers() {
    let a = MockServer::start().await;
    let b = MockServer::start().await;
    for (server, who) in [(&a, "a"), (&b, "b")] {
        mount_login(server, 1).await;
        Mock::given(method("GET"))
            .and(path("/v1/secret/data/x"))
            .respond_with(kv2(json!({"who": who})))
            .mount(server)
            .await;
    }
    let mut bad = Spec::new(&a, "x", "who").engine("nope", "secret");
    bad.role = None;
    let requests = [
        Spec::new(&b, "x", "who").request("B1"),
        bad.request("BAD"),
        Spec::new(&a, "x", "who").request("A1"),
        Spec::new(&b, "x", "who").request("B2"),
    ];
    let results = no_revoke().resolve(&requests, &ctx()).await;
    assert_eq!(value(&results[0]), "b");
    assert_eq!(error(&results[1]).variable(), Some("BAD"));
    assert_eq!(value(&results[2]), "a");
    assert_eq!(value(&results[3]), "b");
}

#[tokio::test]
async fn a_standby_redirect_is_followed() {
    let server = MockServer::start().await;
    mount_login(&server, 1).await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/standby"))
        .respond_with(ResponseTemplate::new(307).insert_header(
            "location",
            format!("{}/v1/secret/data/active", server.uri()),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/active"))
        .and(header("x-vault-token", VAULT_TOKEN))
        .respond_with(kv2(json!({"f": "from-active"})))
        .expect(1)
        .mount(&server)
        .await;
    let results = no_revoke()
        .resolve(&[Spec::new(&server, "standby", "f").request("X")], &ctx())
        .await;
    assert_eq!(value(&results[0]), "from-active");
}

#[tokio::test]
async fn an_oversized_answer_is_not_read_whole() {
    let server = MockServer::start().await;
    mount_login(&server, 1).await;
    let huge = "x".repeat(5 * 1024 * 1024);
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/ci/huge"))
        .respond_with(kv2(json!({ "f": huge })))
        .expect(1)
        .mount(&server)
        .await;
    let ctx = ctx();
    let results = no_revoke()
        .resolve(&[Spec::new(&server, "ci/huge", "f").request("HUGE")], &ctx)
        .await;
    let err = error(&results[0]);
    assert_eq!(err.kind(), ErrorKind::Unexpected, "{err}");
    assert!(!err.is_retryable(), "{err}");
    assert!(
        err.to_string().contains("larger than 4194304 bytes"),
        "{err}"
    );
    assert!(!err.to_string().contains("xxxx"), "{err}");
}
