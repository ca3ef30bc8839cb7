//! The Azure fakes over TLS under the real host names: discovery, the token endpoint's
//! AADSTS errors, the Key Vault challenge, versions and error bodies, and the counts.

mod common;

use auth_oidc::testing::{GitlabClaims, Minter};
use common::*;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

/// A Key Vault error case: host, path, status, code, inner code, message.
type ErrorCase<'a> = (&'a str, &'a str, u16, &'a str, Option<&'a str>, &'a str);

fn aadsts(body: &Value) -> (&str, u64, &str) {
    (
        body["error"].as_str().unwrap_or("<none>"),
        body["error_codes"][0].as_u64().unwrap_or_default(),
        body["error_description"].as_str().unwrap_or("<none>"),
    )
}

#[tokio::test]
async fn tls_under_the_real_names_with_the_test_ca() {
    let h = Harness::start().await;
    // A client that does not trust the test CA refuses the fake.
    let untrusting = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([])
        .resolve("login.microsoftonline.com", h.fakes.azure_addr())
        .build()
        .unwrap();
    let err = untrusting
        .get(format!(
            "https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    // The trusting one reaches it.
    let response = h
        .azure
        .get(format!(
            "https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn discovery_documents() {
    let h = Harness::start().await;
    let (status, doc) = status_json(
        h.azure
            .get(format!(
                "https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration"
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        doc["token_endpoint"],
        format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token")
    );
    assert_eq!(
        doc["authorization_endpoint"],
        format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/authorize")
    );
    assert_eq!(
        doc["issuer"],
        format!("https://login.microsoftonline.com/{TENANT}/v2.0")
    );
    assert_eq!(doc["cloud_instance_name"], "microsoftonline.com");

    let (status, body) = status_json(
        h.azure
            .get("https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0/.well-known/openid-configuration")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(aadsts(&body).0, "invalid_tenant");
    assert_eq!(aadsts(&body).1, 90002);

    let (status, body) = status_json(
        h.azure
            .get(format!(
                "https://login.microsoftonline.com/common/discovery/instance?api-version=1.1&authorization_endpoint=https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/authorize"
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["tenant_discovery_endpoint"],
        format!("https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration")
    );
    assert_eq!(
        body["metadata"][0]["preferred_network"],
        "login.microsoftonline.com"
    );
    let counts = h.counts().await;
    assert_eq!(counts["azure_discovery"], 2);
    assert_eq!(counts["azure_instance_discovery"], 1);
}

#[tokio::test]
async fn token_endpoint_issues_a_bearer_token_for_a_matching_federated_credential() {
    let h = Harness::start().await;
    let (status, body) = h.entra_token(TENANT, CLIENT, &h.azure_token()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().unwrap() > 3000);
    assert!(body["ext_expires_in"].as_u64().is_some());
    assert!(body["access_token"].as_str().unwrap().len() > 20);
    assert_eq!(h.counts().await["azure_token"], 1);
}

#[tokio::test]
async fn token_endpoint_aadsts_errors() {
    let h = Harness::start().await;
    let good = h.azure_token();
    let wrong_subject = h.mint(
        &GitlabClaims::new()
            .with_audience("api://AzureADTokenExchange")
            .with_branch("feature"),
    );
    let wrong_audience = h.mint(&GitlabClaims::new());
    let expired = h.mint(
        &GitlabClaims::new()
            .with_audience("api://AzureADTokenExchange")
            .expired(),
    );
    let other_issuer = Minter::new("https://gitlab.example.com", key())
        .mint(&GitlabClaims::new().with_audience("api://AzureADTokenExchange"))
        .unwrap()
        .expose_secret()
        .to_owned();
    let (head, _) = good.rsplit_once('.').unwrap();
    let bad_signature = format!("{head}.{}", "A".repeat(342));
    let cases: [(&str, &str, &str, &str, u64, &str); 9] = [
        (
            TENANT,
            CLIENT,
            &wrong_subject,
            "invalid_request",
            70021,
            "Assertion Subject: 'project_path:mygroup/myproject:ref_type:branch:ref:feature'",
        ),
        (
            TENANT,
            CLIENT,
            &wrong_audience,
            "invalid_request",
            70021,
            "Assertion Audience: 'https://vault.example.com'",
        ),
        (
            TENANT,
            CLIENT,
            &other_issuer,
            "invalid_request",
            70021,
            "Assertion Issuer: 'https://gitlab.example.com'",
        ),
        (
            TENANT,
            "cccccccc-0000-4000-8000-000000000000",
            &good,
            "unauthorized_client",
            700016,
            "Application with identifier 'cccccccc-0000-4000-8000-000000000000' was not found in the directory '11111111-2222-4333-8444-555555555555'",
        ),
        (
            OTHER_TENANT,
            CLIENT,
            &good,
            "unauthorized_client",
            700016,
            "was not found in the directory",
        ),
        (
            TENANT,
            CLIENT,
            &expired,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        ),
        (
            TENANT,
            CLIENT,
            "$AZURE_JWT",
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        ),
        (
            TENANT,
            CLIENT,
            &bad_signature,
            "invalid_client",
            50013,
            "Assertion failed signature validation.",
        ),
        (
            "00000000-0000-0000-0000-000000000000",
            CLIENT,
            &good,
            "invalid_tenant",
            90002,
            "Tenant '00000000-0000-0000-0000-000000000000' not found.",
        ),
    ];
    for (tenant, client, assertion, error, code, text) in cases {
        let (status, body) = h.entra_token(tenant, client, assertion).await;
        assert_eq!(status, 400, "{code}: {body}");
        let (got, got_code, description) = aadsts(&body);
        assert_eq!((got, got_code), (error, code), "{body}");
        assert!(
            description.starts_with(&format!("AADSTS{code}: ")),
            "{body}"
        );
        assert!(description.contains(text), "{body}");
        assert!(description.contains("\r\nTrace ID: "), "{body}");
        for field in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
            assert!(body[field].is_string(), "{field}: {body}");
        }
    }
}

#[tokio::test]
async fn token_endpoint_checks_the_form() {
    let h = Harness::start().await;
    let token = h.azure_token();
    let url = format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token");
    let full = [
        ("client_id", CLIENT),
        ("grant_type", "client_credentials"),
        ("client_assertion", token.as_str()),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("scope", "https://vault.azure.net/.default"),
    ];
    let cases: [(&str, &str, &str, u64); 5] = [
        ("grant_type", "password", "unsupported_grant_type", 70003),
        ("scope", "", "invalid_request", 900144),
        (
            "scope",
            "https://storage.azure.com/.default",
            "invalid_resource",
            500011,
        ),
        (
            "scope",
            "https://vault.azure.net/user_impersonation",
            "invalid_scope",
            1002012,
        ),
        ("client_assertion", "", "invalid_client", 7000218),
    ];
    for (field, value, error, code) in cases {
        let form: Vec<(&str, &str)> = full
            .iter()
            .map(|&(k, v)| if k == field { (k, value) } else { (k, v) })
            .collect();
        let response = h
            .azure
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_encode(&form))
            .send()
            .await
            .unwrap();
        let (status, body) = status_json(response).await;
        assert_eq!(status, 400, "{field}: {body}");
        assert_eq!(
            (aadsts(&body).0, aadsts(&body).1),
            (error, code),
            "{field}: {body}"
        );
    }
}

#[tokio::test]
async fn key_vault_challenges_an_unauthenticated_request() {
    let h = Harness::start().await;
    let response = h.kv_get(VAULT_HOST, "/secrets/db-password/", None).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        format!(
            "Bearer authorization=\"https://login.microsoftonline.com/{TENANT}\", resource=\"https://vault.azure.net\""
        )
        .as_str()
    );
    let (_, body) = status_json(response).await;
    assert_eq!(body["error"]["code"], "Unauthorized");
    let response = h.kv_get(OTHER_VAULT_HOST, "/secrets/api-key", None).await;
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(OTHER_TENANT)
    );
    let counts = h.counts().await;
    assert_eq!(
        (
            counts["azure_challenge"].as_u64(),
            counts["azure_get"].as_u64()
        ),
        (Some(2), Some(0))
    );
}

#[tokio::test]
async fn key_vault_serves_latest_and_pinned_versions() {
    let h = Harness::start().await;
    let token = h.kv_token().await;
    let cases = [
        (
            "/secrets/db-password",
            "fedcba9876543210fedcba9876543210",
            "azure-db-password-v2",
        ),
        (
            "/secrets/db-password/",
            "fedcba9876543210fedcba9876543210",
            "azure-db-password-v2",
        ),
        (
            "/secrets/db-password/0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef",
            "azure-db-password-v1",
        ),
        (
            "/secrets/old-disabled/",
            "00000000000000000000000000000e02",
            "azure-old-disabled-v2",
        ),
        (
            "/secrets/API-KEY/",
            "00000000000000000000000000000a01",
            "azure-api-key",
        ),
    ];
    for (path, version, value) in cases {
        let (status, body) = status_json(h.kv_get(VAULT_HOST, path, Some(&token)).await).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["value"], value);
        let name = if path.contains("API-KEY") {
            "api-key"
        } else {
            path.split('/').nth(2).unwrap()
        };
        assert_eq!(
            body["id"],
            format!("https://{VAULT_HOST}/secrets/{name}/{version}")
        );
        assert_eq!(body["attributes"]["enabled"], true);
        assert!(body["attributes"]["created"].as_u64().is_some());
    }
    let (_, body) = status_json(
        h.kv_get(VAULT_HOST, "/secrets/db-password", Some(&token))
            .await,
    )
    .await;
    assert_eq!(body["contentType"], "text/plain");
    assert_eq!(body["tags"], json!({"env": "test"}));
    let doc: Value = h
        .http
        .get(h.gcp("/_fake/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["api_versions"]["7.5"], 6);
    assert_eq!(doc["counts"]["azure_get"], 6);
}

#[tokio::test]
async fn key_vault_error_bodies() {
    let h = Harness::start().await;
    let token = h.kv_token().await;
    let cases: [ErrorCase<'_>; 7] = [
        (
            VAULT_HOST,
            "/secrets/nope",
            404,
            "SecretNotFound",
            None,
            "A secret with (name/id) nope was not found in this key vault.",
        ),
        (
            VAULT_HOST,
            "/secrets/db-password/99999999999999999999999999999999",
            404,
            "SecretNotFound",
            None,
            "(name/id) db-password/99999999999999999999999999999999 was not found",
        ),
        (
            VAULT_HOST,
            "/secrets/disabled-secret/",
            403,
            "Forbidden",
            Some("SecretDisabled"),
            "Operation get is not allowed on a disabled secret.",
        ),
        (
            VAULT_HOST,
            "/secrets/old-disabled/00000000000000000000000000000e01",
            403,
            "Forbidden",
            Some("SecretDisabled"),
            "disabled secret",
        ),
        (
            VAULT_HOST,
            "/secrets/restricted",
            403,
            "Forbidden",
            Some("ForbiddenByRbac"),
            "Caller is not authorized to perform action on resource.",
        ),
        (
            VAULT_HOST,
            "/secrets/bad_name",
            400,
            "BadParameter",
            None,
            "invalid name",
        ),
        (
            OTHER_VAULT_HOST,
            "/secrets/api-key",
            401,
            "Unauthorized",
            None,
            "AKV10032: Invalid issuer.",
        ),
    ];
    for (host, path, status, code, inner, message) in cases {
        let (got, body) = status_json(h.kv_get(host, path, Some(&token)).await).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
        assert_eq!(
            body["error"]["innererror"]["code"].as_str(),
            inner,
            "{path}: {body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains(message),
            "{path}: {body}"
        );
    }

    // An app without a role assignment on the vault.
    let (status, body) = h
        .entra_token(TENANT, CLIENT_NO_ROLE, &h.azure_token())
        .await;
    assert_eq!(status, 200, "{body}");
    let no_role = body["access_token"].as_str().unwrap();
    let (status, body) = status_json(
        h.kv_get(VAULT_HOST, "/secrets/api-key", Some(no_role))
            .await,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["innererror"]["code"], "ForbiddenByRbac");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("appid={CLIENT_NO_ROLE}"))
    );

    // A token the fake did not issue; no api-version.
    let response = h
        .kv_get(VAULT_HOST, "/secrets/api-key", Some("forged"))
        .await;
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let response = h
        .azure
        .get(format!("https://{VAULT_HOST}/secrets/api-key"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("BadParameter"))
    );
}

#[tokio::test]
async fn injected_faults_answer_in_entra_and_key_vault_shape() {
    let h = Harness::start().await;
    h.fault("azure_token", 503, 1).await;
    let (status, body) = h.entra_token(TENANT, CLIENT, &h.azure_token()).await;
    assert_eq!(status, 503);
    assert_eq!(
        (aadsts(&body).0, aadsts(&body).1),
        ("temporarily_unavailable", 90033)
    );
    let token = h.kv_token().await;

    h.fault("azure_get", 429, 1).await;
    let response = h.kv_get(VAULT_HOST, "/secrets/api-key", Some(&token)).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let (_, body) = status_json(response).await;
    assert_eq!(body["error"]["code"], "Throttled");
    let (status, body) =
        status_json(h.kv_get(VAULT_HOST, "/secrets/api-key", Some(&token)).await).await;
    assert_eq!(
        (status, body["value"].as_str()),
        (200, Some("azure-api-key"))
    );

    h.fault("azure_challenge", 500, 1).await;
    let (status, body) = status_json(h.kv_get(VAULT_HOST, "/secrets/api-key", None).await).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (500, Some("InternalServerError"))
    );
    let counts = h.counts().await;
    assert_eq!(counts["azure_token"], 2);
    assert_eq!(counts["azure_get"], 2);
}
