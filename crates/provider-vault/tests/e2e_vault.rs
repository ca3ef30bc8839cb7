//! End-to-end tests against a real OpenBao seeded by `cargo xtask services up`
//! (`docs/e2e-fixtures.md`). Each test skips, saying why, unless `CI_SECRETS_E2E_ENV` names
//! the services' env file.

use auth_oidc::testing::{E2eEnv, GitlabClaims};
use provider_vault::VaultProviderBuilder;
use secrecy::ExposeSecret as _;
use secrets_core::{
    Error, ErrorKind, ResolveContext, Resolved, Secret, SecretProvider, SecretRequest,
};
use serde_json::json;
use std::time::Duration;

struct Fixture {
    env: E2eEnv,
    /// A token with the default claims (branch `main` of `mygroup/myproject`).
    token: String,
}

fn fixture(test: &str) -> Option<Fixture> {
    let env = E2eEnv::for_test(test)?;
    let token = mint(&env, &GitlabClaims::new());
    Some(Fixture { env, token })
}

fn mint(env: &E2eEnv, claims: &GitlabClaims) -> String {
    env.minter()
        .mint(claims)
        .expect("mint a token")
        .expose_secret()
        .to_owned()
}

/// A `vault:` request as GitLab's server builds it.
#[allow(clippy::too_many_arguments)]
fn request(
    variable: &str,
    addr: &str,
    namespace: Option<&str>,
    auth_path: &str,
    role: Option<&str>,
    jwt: &str,
    engine: (&str, &str),
    path: &str,
    field: &str,
) -> SecretRequest {
    let mut data = json!({ "jwt": jwt });
    if let Some(role) = role {
        data["role"] = json!(role);
    }
    let secret: Secret = serde_json::from_value(json!({
        "vault": {
            "server": {"url": addr, "namespace": namespace,
                       "auth": {"name": "jwt", "path": auth_path, "data": data}},
            "engine": {"name": engine.0, "path": engine.1},
            "path": path,
            "field": field,
        },
        "file": false,
    }))
    .expect("a vault secret");
    SecretRequest {
        variable: variable.to_owned(),
        secret,
    }
}

impl Fixture {
    /// Role `ci` at `jwt/`, the default token.
    fn ci(&self, variable: &str, engine: (&str, &str), path: &str, field: &str) -> SecretRequest {
        request(
            variable,
            self.env.vault_addr(),
            None,
            "jwt",
            Some("ci"),
            &self.token,
            engine,
            path,
            field,
        )
    }
}

async fn resolve(requests: &[SecretRequest]) -> (Vec<Result<Resolved, Error>>, ResolveContext) {
    let ctx = ResolveContext {
        request_timeout: Duration::from_secs(10),
        ..ResolveContext::default()
    };
    let provider = VaultProviderBuilder::new().build().expect("provider");
    let results = provider.resolve(requests, &ctx).await;
    (results, ctx)
}

fn value(result: &Result<Resolved, Error>) -> &str {
    match result {
        Ok(r) => r.value.expose(),
        Err(e) => panic!("expected a value, got {e}"),
    }
}

fn error(result: &Result<Resolved, Error>) -> &Error {
    match result {
        Ok(_) => panic!("expected an error, got a value"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn kv_v2_on_secret_and_ops_with_one_login() {
    let Some(f) = fixture("kv_v2_on_secret_and_ops_with_one_login") else {
        return;
    };
    let kv2 = ("kv-v2", "secret");
    let requests = [
        f.ci("USERNAME", kv2, "ci/app", "username"),
        f.ci("PASSWORD", kv2, "ci/app", "password"),
        f.ci("PORT", kv2, "ci/app", "port"),
        f.ci("ENABLED", kv2, "ci/app", "enabled"),
        f.ci("NESTED", kv2, "ci/app", "nested"),
        f.ci("DB", ("kv-v2", "ops"), "production/db", "password"),
    ];
    let (results, ctx) = resolve(&requests).await;
    let want = [
        "app-user",
        "app-password-1234",
        "5432",
        "true",
        "map[a:1]",
        "this-is-a-password",
    ];
    for (r, want) in results.iter().zip(want) {
        assert_eq!(value(r), want);
    }
    assert_eq!(ctx.requests.get(provider_vault::requests::LOGIN), 1);
    assert_eq!(ctx.requests.get(provider_vault::requests::READ), 2);
    assert_eq!(ctx.requests.get(provider_vault::requests::REVOKE), 1);
}

#[tokio::test]
async fn kv_v1_and_generic_engines() {
    let Some(f) = fixture("kv_v1_and_generic_engines") else {
        return;
    };
    let requests = [
        f.ci("LEGACY", ("kv-v1", "kv1"), "ci/legacy", "api_key"),
        f.ci(
            "JFROG",
            ("generic", "artifactory"),
            "production/jfrog",
            "access_token",
        ),
        f.ci(
            "LEGACY_GENERIC",
            ("generic", "kv1/"),
            "/ci//legacy",
            "api_key",
        ),
        f.ci("TOTP", ("generic", "totp"), "code/ci", "code"),
    ];
    let (results, _) = resolve(&requests).await;
    assert_eq!(value(&results[0]), "legacy-api-key-5678");
    assert_eq!(value(&results[1]), "jfrog-token-abcdef12");
    assert_eq!(value(&results[2]), "legacy-api-key-5678");
    let code = value(&results[3]);
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "TOTP code shape"
    );
}

#[tokio::test]
async fn namespace_team1_and_a_second_auth_mount() {
    let Some(f) = fixture("namespace_team1_and_a_second_auth_mount") else {
        return;
    };
    let addr = f.env.vault_addr();
    let kv2 = ("kv-v2", "secret");
    let requests = [
        request(
            "TEAM1",
            addr,
            Some("team1"),
            "jwt",
            Some("ci"),
            &f.token,
            kv2,
            "ci/app",
            "password",
        ),
        request(
            "ALT",
            addr,
            None,
            "jwt-alt",
            Some("ci"),
            &f.token,
            kv2,
            "ci/app",
            "password",
        ),
        request(
            "ROOT_NS",
            addr,
            None,
            "jwt",
            Some("ci"),
            &f.token,
            kv2,
            "ci/app",
            "password",
        ),
    ];
    let (results, ctx) = resolve(&requests).await;
    assert_eq!(value(&results[0]), "team1-password");
    assert_eq!(value(&results[1]), "app-password-1234");
    assert_eq!(value(&results[2]), "app-password-1234");
    assert_eq!(
        ctx.requests.get(provider_vault::requests::LOGIN),
        3,
        "three identities"
    );
}

#[tokio::test]
async fn the_default_role_is_used_without_a_role() {
    let Some(f) = fixture("the_default_role_is_used_without_a_role") else {
        return;
    };
    let requests = [request(
        "DATABASE_PASSWORD",
        f.env.vault_addr(),
        None,
        "jwt",
        None,
        &f.token,
        ("kv-v2", "ops"),
        "production/db",
        "password",
    )];
    let (results, _) = resolve(&requests).await;
    assert_eq!(value(&results[0]), "this-is-a-password");
}

#[tokio::test]
async fn refused_logins_name_the_claims_to_check() {
    let Some(f) = fixture("refused_logins_name_the_claims_to_check") else {
        return;
    };
    let addr = f.env.vault_addr();
    let other_aud = mint(
        &f.env,
        &GitlabClaims::new().with_audience("https://other.example.com"),
    );
    let kv2 = ("kv-v2", "ops");
    let requests = [
        // The branch token does not match the production role's bound claims.
        request(
            "WRONG_CLAIMS",
            addr,
            None,
            "jwt",
            Some("myproject-production"),
            &f.token,
            kv2,
            "production/db",
            "password",
        ),
        // The audience is not the role's.
        request(
            "WRONG_AUD",
            addr,
            None,
            "jwt",
            Some("ci"),
            &other_aud,
            kv2,
            "production/db",
            "password",
        ),
        // No such role.
        request(
            "NO_ROLE",
            addr,
            None,
            "jwt",
            Some("no-such-role"),
            &f.token,
            kv2,
            "production/db",
            "password",
        ),
        // No such auth mount.
        request(
            "NO_MOUNT",
            addr,
            None,
            "no-such-jwt",
            Some("ci"),
            &f.token,
            kv2,
            "production/db",
            "password",
        ),
    ];
    let (results, ctx) = resolve(&requests).await;
    for r in &results[..2] {
        let err = error(r);
        assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err}");
        let text = err.to_string();
        assert!(text.contains("bound_claims"), "{text}");
        assert!(
            text.contains("sub project_path:mygroup/myproject"),
            "{text}"
        );
    }
    assert!(error(&results[0]).to_string().contains("ref_type branch"));
    let no_role = error(&results[2]);
    assert_eq!(no_role.kind(), ErrorKind::InvalidConfig, "{no_role}");
    assert!(no_role.to_string().contains("VAULT_AUTH_ROLE"), "{no_role}");
    assert!(
        error(&results[1])
            .to_string()
            .contains("aud https://other.example.com")
    );
    let no_mount = error(&results[3]);
    assert!(
        matches!(
            no_mount.kind(),
            ErrorKind::Unauthenticated | ErrorKind::InvalidConfig
        ),
        "{no_mount}"
    );
    assert!(no_mount.to_string().contains("no-such-jwt"), "{no_mount}");
    assert_eq!(ctx.requests.get(provider_vault::requests::READ), 0);
    for r in &results {
        assert!(!format!("{:?}", error(r)).contains(&f.token));
    }
}

#[tokio::test]
async fn denied_missing_and_deleted_secrets() {
    let Some(f) = fixture("denied_missing_and_deleted_secrets") else {
        return;
    };
    let kv2 = ("kv-v2", "secret");
    let requests = [
        f.ci("ADMIN", kv2, "admin/root", "password"),
        f.ci("NO_FIELD", kv2, "ci/app", "Password"),
        f.ci("NO_SECRET", kv2, "ci/does-not-exist", "password"),
        f.ci("DELETED", kv2, "ci/deleted", "password"),
        f.ci("NO_KV1", ("kv-v1", "kv1"), "ci/does-not-exist", "api_key"),
    ];
    let (results, _) = resolve(&requests).await;

    let admin = error(&results[0]);
    assert_eq!(admin.kind(), ErrorKind::PermissionDenied, "{admin}");
    assert!(
        admin
            .to_string()
            .contains("the role's policies do not grant read on secret/data/admin/root"),
        "{admin}"
    );
    assert!(
        admin.to_string().contains("status 403: permission denied)"),
        "{admin}"
    );
    assert!(!admin.to_string().contains("root-password"), "{admin}");

    let no_field = error(&results[1]);
    assert_eq!(no_field.kind(), ErrorKind::NotFound, "{no_field}");
    assert!(
        no_field
            .to_string()
            .contains("field \"Password\" is not in secret/data/ci/app")
    );
    assert!(no_field.fix().unwrap().contains("password"), "{no_field}");

    for r in &results[2..] {
        let err = error(r);
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(err.to_string().contains("secret not found"), "{err}");
    }
    assert!(
        error(&results[3]).to_string().contains("deleted"),
        "{}",
        error(&results[3])
    );
}

/// Every Vault example of seed 002 (GitLab's "Using external secrets in CI" page).
#[tokio::test]
async fn seed_002_examples() {
    let Some(f) = fixture("seed_002_examples") else {
        return;
    };
    let addr = f.env.vault_addr();
    // `vault: production/db/password@ops` with `VAULT_AUTH_ROLE` unset (default role).
    let database = request(
        "DATABASE_PASSWORD",
        addr,
        None,
        "jwt",
        None,
        &f.token,
        ("kv-v2", "ops"),
        "production/db",
        "password",
    );
    // The generic engine over Artifactory.
    let jfrog = request(
        "JFROG_TOKEN",
        addr,
        None,
        "jwt",
        None,
        &f.token,
        ("generic", "artifactory"),
        "production/jfrog",
        "access_token",
    );
    // The `myproject-production` role with a protected tag token `auto-deploy-1`.
    let tag = mint(
        &f.env,
        &GitlabClaims::new()
            .with_tag("auto-deploy-1")
            .with_protected(true),
    );
    let production = request(
        "PROD_DB",
        addr,
        None,
        "jwt",
        Some("myproject-production"),
        &tag,
        ("kv-v2", "ops"),
        "production/db",
        "password",
    );
    // That role's policy grants nothing under secret/.
    let outside = request(
        "OUTSIDE",
        addr,
        None,
        "jwt",
        Some("myproject-production"),
        &tag,
        ("kv-v2", "secret"),
        "ci/app",
        "password",
    );
    // An unprotected tag does not match `ref_protected: true`.
    let unprotected = mint(
        &f.env,
        &GitlabClaims::new()
            .with_tag("auto-deploy-1")
            .with_protected(false),
    );
    let refused = request(
        "UNPROTECTED",
        addr,
        None,
        "jwt",
        Some("myproject-production"),
        &unprotected,
        ("kv-v2", "ops"),
        "production/db",
        "password",
    );

    let (results, ctx) = resolve(&[database, jfrog, production, outside, refused]).await;
    assert_eq!(value(&results[0]), "this-is-a-password");
    assert_eq!(value(&results[1]), "jfrog-token-abcdef12");
    assert_eq!(value(&results[2]), "this-is-a-password");
    assert_eq!(error(&results[3]).kind(), ErrorKind::PermissionDenied);
    let refused = error(&results[4]);
    assert_eq!(refused.kind(), ErrorKind::Unauthenticated, "{refused}");
    assert!(refused.to_string().contains("bound_claims"), "{refused}");
    // Identities: default token (one login for two secrets), tag token, unprotected token.
    assert_eq!(ctx.requests.get(provider_vault::requests::LOGIN), 3);
}
