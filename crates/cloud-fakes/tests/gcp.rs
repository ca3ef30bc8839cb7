//! The Google fakes over HTTP: STS validation rules, Secret Manager versions and errors, the
//! checksum switches, impersonation and the request counts.

mod common;

use auth_oidc::testing::{GitlabClaims, Minter};
use base64::Engine as _;
use common::*;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

const STRICT_AUDIENCE: &str = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/gitlab-pool/providers/gitlab-strict";
const CUSTOM_AUDIENCE: &str = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/gitlab-pool/providers/gitlab-custom-aud";
const DISABLED_AUDIENCE: &str = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/gitlab-pool/providers/gitlab-disabled";

fn oauth_error(body: &Value) -> (&str, &str) {
    (
        body["error"].as_str().unwrap_or("<none>"),
        body["error_description"].as_str().unwrap_or("<none>"),
    )
}

#[tokio::test]
async fn sts_answers_the_runner_json_body_with_google_field_names() {
    let h = Harness::start().await;
    let (status, body) = h.sts_json(PROVIDER_AUDIENCE, &h.gcp_token()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].as_str().unwrap().starts_with("ya29."));
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().unwrap() > 3000);
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 4, "{body}");
    let counts = h.counts().await;
    assert_eq!(counts["gcp_sts_exchange"], 1);
}

#[tokio::test]
async fn sts_accepts_the_form_body_and_snake_case_json() {
    let h = Harness::start().await;
    let token = h.gcp_token();
    let form = form_encode(&[
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("audience", PROVIDER_AUDIENCE),
        ("scope", "https://www.googleapis.com/auth/cloud-platform"),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        ("subject_token", &token),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
    ]);
    let response = h
        .http
        .post(h.gcp("/v1/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!(status, 200, "{body}");

    let snake = json!({
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "audience": PROVIDER_AUDIENCE,
        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "subject_token": token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
    });
    let response = h
        .http
        .post(h.gcp("/v1/token"))
        .json(&snake)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!(status, 200, "{body}");

    let doc: Value = h
        .http
        .get(h.gcp("/_fake/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["sts_encodings"], json!({"form": 1, "json": 1}));
}

#[tokio::test]
async fn sts_checks_request_parameters() {
    let h = Harness::start().await;
    let token = h.gcp_token();
    let base = json!({
        "audience": PROVIDER_AUDIENCE,
        "grantType": "urn:ietf:params:oauth:grant-type:token-exchange",
        "requestedTokenType": "urn:ietf:params:oauth:token-type:access_token",
        "subjectToken": token,
        "subjectTokenType": "urn:ietf:params:oauth:token-type:id_token",
    });
    let cases = [
        (
            "grantType",
            "client_credentials",
            "invalid_request",
            "grant_type",
        ),
        (
            "requestedTokenType",
            "urn:x",
            "invalid_request",
            "requested_token_type",
        ),
        (
            "subjectTokenType",
            "urn:ietf:params:oauth:token-type:saml2",
            "invalid_request",
            "subject_token_type",
        ),
        (
            "audience",
            "https://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/gitlab-pool/providers/gitlab-provider",
            "invalid_request",
            "Invalid value for \"audience\". This value should be the full resource name of the Identity Provider.",
        ),
        (
            "audience",
            "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/gitlab-pool/providers/nope",
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid.",
        ),
        (
            "audience",
            DISABLED_AUDIENCE,
            "invalid_target",
            "disabled or deleted",
        ),
        ("subjectToken", "", "invalid_request", "subject_token"),
        (
            "subjectToken",
            "not-a-jwt",
            "invalid_grant",
            "Unable to parse the ID Token.",
        ),
    ];
    for (field, value, error, text) in cases {
        let mut body = base.clone();
        body[field] = json!(value);
        let response = h
            .http
            .post(h.gcp("/v1/token"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["content-type"],
            "application/json; charset=utf-8"
        );
        let (status, body) = status_json(response).await;
        assert_eq!(status, 400, "{field}={value}: {body}");
        let (got, description) = oauth_error(&body);
        assert_eq!(got, error, "{field}={value}: {body}");
        assert!(description.contains(text), "{field}={value}: {body}");
    }
}

#[tokio::test]
async fn sts_verifies_the_subject_token() {
    let h = Harness::start().await;
    let audience = format!("https:{PROVIDER_AUDIENCE}");

    // Both default audience forms are allowed.
    for aud in [audience.clone(), PROVIDER_AUDIENCE.to_owned()] {
        let token = h.mint(&GitlabClaims::new().with_audience(aud.clone()));
        let (status, body) = h.sts_json(PROVIDER_AUDIENCE, &token).await;
        assert_eq!(status, 200, "{aud}: {body}");
    }

    let wrong_aud = h.mint(&GitlabClaims::new().with_audience("https://vault.example.com"));
    let expired = h.mint(
        &GitlabClaims::new()
            .with_audience(audience.clone())
            .expired(),
    );
    let other_issuer = Minter::new("https://gitlab.example.com", key())
        .mint(&GitlabClaims::new().with_audience(audience.clone()))
        .unwrap()
        .expose_secret()
        .to_owned();
    let good = h.gcp_token();
    let (head, _) = good.rsplit_once('.').unwrap();
    let bad_signature = format!("{head}.{}", "A".repeat(342));
    let cases = [
        (
            wrong_aud,
            "invalid_grant",
            "does not match the expected audience",
        ),
        (expired, "invalid_grant", "expired"),
        (
            other_issuer,
            "invalid_grant",
            "does not match the expected ISSUER",
        ),
        (bad_signature, "invalid_grant", "signature"),
    ];
    for (token, error, text) in cases {
        let (status, body) = h.sts_json(PROVIDER_AUDIENCE, &token).await;
        assert_eq!(status, 400, "{body}");
        let (got, description) = oauth_error(&body);
        assert_eq!(got, error, "{body}");
        assert!(description.contains(text), "{body}");
    }
}

#[tokio::test]
async fn sts_applies_the_127_byte_subject_limit() {
    let h = Harness::start().await;
    let audience = format!("https:{PROVIDER_AUDIENCE}");
    let base = GitlabClaims::new().with_ref("").subject().len();
    let at_limit = "b".repeat(127 - base);
    let over = "b".repeat(128 - base);
    let claims = GitlabClaims::new()
        .with_audience(audience.clone())
        .with_ref(at_limit);
    assert_eq!(claims.subject().len(), 127);
    let (status, body) = h.sts_json(PROVIDER_AUDIENCE, &h.mint(&claims)).await;
    assert_eq!(status, 200, "{body}");

    let claims = GitlabClaims::new().with_audience(audience).with_ref(over);
    let (status, body) = h.sts_json(PROVIDER_AUDIENCE, &h.mint(&claims)).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({
            "error": "invalid_request",
            "error_description": "The size of mapped attribute google.subject exceeds the 127 bytes limit. Either modify your attribute mapping or the incoming assertion to produce a mapped attribute that is less than 127 bytes."
        })
    );
}

#[tokio::test]
async fn sts_applies_the_attribute_condition_and_allowed_audiences() {
    let h = Harness::start().await;
    let strict = format!("https:{STRICT_AUDIENCE}");
    let (status, body) = h
        .sts_json(
            STRICT_AUDIENCE,
            &h.mint(&GitlabClaims::new().with_audience(strict.clone())),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(oauth_error(&body).0, "unauthorized_client", "{body}");
    assert!(oauth_error(&body).1.contains("attribute condition"));
    let admitted = GitlabClaims::new()
        .with_audience(strict)
        .with_project("othergroup/app", 77);
    let (status, body) = h.sts_json(STRICT_AUDIENCE, &h.mint(&admitted)).await;
    assert_eq!(status, 200, "{body}");

    let custom = h.mint(&GitlabClaims::new().with_audience("https://gcp.example.com"));
    let (status, body) = h.sts_json(CUSTOM_AUDIENCE, &custom).await;
    assert_eq!(status, 200, "{body}");
    let default_aud =
        h.mint(&GitlabClaims::new().with_audience(format!("https:{CUSTOM_AUDIENCE}")));
    let (status, body) = h.sts_json(CUSTOM_AUDIENCE, &default_aud).await;
    assert_eq!(status, 400);
    assert_eq!(oauth_error(&body).0, "invalid_grant", "{body}");
}

fn decode(body: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(body["payload"]["data"].as_str().unwrap())
        .unwrap()
}

fn google_error(body: &Value) -> (u64, &str, &str) {
    (
        body["error"]["code"].as_u64().unwrap_or_default(),
        body["error"]["status"].as_str().unwrap_or("<none>"),
        body["error"]["message"].as_str().unwrap_or("<none>"),
    )
}

#[tokio::test]
async fn secret_manager_serves_versions_with_a_decimal_crc32c() {
    let h = Harness::start().await;
    let token = h.gcp_access_token().await;
    let cases = [
        (
            "projects/123456789012/secrets/api-key/versions/latest",
            "projects/123456789012/secrets/api-key/versions/2",
            "gcp-api-key-v2",
        ),
        (
            "projects/123456789012/secrets/api-key/versions/1",
            "projects/123456789012/secrets/api-key/versions/1",
            "gcp-api-key-v1",
        ),
        (
            "projects/ci-secrets-test/secrets/db-password/versions/latest",
            "projects/123456789012/secrets/db-password/versions/1",
            "gcp-db-password",
        ),
        (
            "projects/123456789012/secrets/multi/versions/latest",
            "projects/123456789012/secrets/multi/versions/4",
            "gcp-multi-v4",
        ),
        (
            "projects/123456789012/locations/us-east1/secrets/regional-key/versions/latest",
            "projects/123456789012/locations/us-east1/secrets/regional-key/versions/2",
            "gcp-regional-v2",
        ),
        (
            "projects/123456789012/locations/us-east1/secrets/regional-key/versions/1",
            "projects/123456789012/locations/us-east1/secrets/regional-key/versions/1",
            "gcp-regional-v1",
        ),
        (
            "projects/123456789012/secrets/project-42-only/versions/1",
            "projects/123456789012/secrets/project-42-only/versions/1",
            "gcp-project-42",
        ),
    ];
    for (name, resolved, value) in cases {
        let (status, body) = h.access(name, Some(&token)).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["name"], resolved);
        let data = decode(&body);
        assert_eq!(data, value.as_bytes());
        let crc = body["payload"]["dataCrc32c"]
            .as_str()
            .expect("a decimal string");
        assert_eq!(crc, crc32c::crc32c(&data).to_string());
    }
    let (_, body) = h
        .access(
            "projects/123456789012/secrets/binary/versions/1",
            Some(&token),
        )
        .await;
    assert_eq!(decode(&body), [0u8, 1, 2, 0xff]);
    assert_eq!(h.counts().await["gcp_access"], 8);
}

#[tokio::test]
async fn secret_manager_checksum_switches() {
    let h = Harness::start().await;
    let token = h.gcp_access_token().await;
    let (status, body) = h
        .access(
            "projects/123456789012/secrets/no-crc/versions/latest",
            Some(&token),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(decode(&body), b"gcp-no-crc-value");
    assert!(body["payload"].get("dataCrc32c").is_none(), "{body}");

    let (status, body) = h
        .access(
            "projects/123456789012/secrets/bad-crc/versions/latest",
            Some(&token),
        )
        .await;
    assert_eq!(status, 200);
    let data = decode(&body);
    assert_eq!(data, b"gcp-bad-crc-value");
    let crc: u32 = body["payload"]["dataCrc32c"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(crc, crc32c::crc32c(&data));
}

#[tokio::test]
async fn secret_manager_error_bodies() {
    let h = Harness::start().await;
    let token = h.gcp_access_token().await;
    let cases: [(&str, u64, &str, &str); 9] = [
        (
            "projects/123456789012/secrets/nope/versions/latest",
            404,
            "NOT_FOUND",
            "Secret [projects/123456789012/secrets/nope] not found or has no versions.",
        ),
        (
            "projects/123456789012/secrets/api-key/versions/9",
            404,
            "NOT_FOUND",
            "Secret Version [projects/123456789012/secrets/api-key/versions/9] not found.",
        ),
        (
            "projects/123456789012/secrets/multi/versions/2",
            400,
            "FAILED_PRECONDITION",
            "Secret Version [projects/123456789012/secrets/multi/versions/2] is in DISABLED state.",
        ),
        (
            "projects/123456789012/secrets/multi/versions/3",
            400,
            "FAILED_PRECONDITION",
            "Secret Version [projects/123456789012/secrets/multi/versions/3] is in DESTROYED state.",
        ),
        (
            "projects/123456789012/secrets/latest-disabled/versions/latest",
            400,
            "FAILED_PRECONDITION",
            "Secret Version [projects/123456789012/secrets/latest-disabled/versions/2] is in DISABLED state.",
        ),
        (
            "projects/123456789012/secrets/restricted/versions/1",
            403,
            "PERMISSION_DENIED",
            "Permission 'secretmanager.versions.access' denied for resource 'projects/123456789012/secrets/restricted/versions/1' (or it may not exist).",
        ),
        (
            "projects/123456789012/secrets/sa-only/versions/1",
            403,
            "PERMISSION_DENIED",
            "denied",
        ),
        (
            "projects/123456789012/secrets/regional-key/versions/1",
            404,
            "NOT_FOUND",
            "Secret [projects/123456789012/secrets/regional-key] not found or has no versions.",
        ),
        (
            "projects/123456789012/secrets/api-key/versions/",
            400,
            "INVALID_ARGUMENT",
            "Invalid resource field value",
        ),
    ];
    for (name, code, status_name, message) in cases {
        let response = h
            .http
            .get(h.gcp(&format!("/v1/{name}:access")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["content-type"],
            "application/json; charset=UTF-8"
        );
        let (status, body) = status_json(response).await;
        assert_eq!(u64::from(status), code, "{name}: {body}");
        let (got_code, got_status, got_message) = google_error(&body);
        assert_eq!(
            (got_code, got_status),
            (code, status_name),
            "{name}: {body}"
        );
        assert!(got_message.contains(message), "{name}: {body}");
        assert_eq!(body["error"].as_object().unwrap().len(), 3, "{body}");
    }

    // Another project's token reads the shared secrets but not project 42's.
    let other = h.mint(
        &GitlabClaims::new()
            .with_audience(format!("https:{PROVIDER_AUDIENCE}"))
            .with_project("mygroup/other", 43),
    );
    let (_, sts) = h.sts_json(PROVIDER_AUDIENCE, &other).await;
    let other_token = sts["access_token"].as_str().unwrap();
    let (status, _) = h
        .access(
            "projects/123456789012/secrets/api-key/versions/1",
            Some(other_token),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = h
        .access(
            "projects/123456789012/secrets/project-42-only/versions/1",
            Some(other_token),
        )
        .await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn secret_manager_requires_an_sts_token() {
    let h = Harness::start().await;
    let name = "projects/123456789012/secrets/api-key/versions/latest";
    let response = h
        .http
        .get(h.gcp(&format!("/v1/{name}:access")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer realm=\"https://accounts.google.com/\"")
    );
    let (_, body) = status_json(response).await;
    assert_eq!(google_error(&body).1, "UNAUTHENTICATED");
    assert!(
        google_error(&body)
            .2
            .contains("missing required authentication credential")
    );

    // An ID token is not an access token.
    let (status, body) = h.access(name, Some(&h.gcp_token())).await;
    assert_eq!(status, 401);
    assert!(
        google_error(&body)
            .2
            .contains("invalid authentication credentials"),
        "{body}"
    );
}

#[tokio::test]
async fn iam_credentials_impersonation() {
    let h = Harness::start().await;
    let federated = h.gcp_access_token().await;
    let url = h.gcp(&format!(
        "/v1/projects/-/serviceAccounts/{SA_EMAIL}:generateAccessToken"
    ));
    let request = json!({
        "scope": ["https://www.googleapis.com/auth/cloud-platform"],
        "lifetime": "600s",
    });
    let response = h
        .http
        .post(&url)
        .bearer_auth(&federated)
        .json(&request)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(response).await;
    assert_eq!(status, 200, "{body}");
    let sa_token = body["accessToken"].as_str().unwrap().to_owned();
    let expire = body["expireTime"].as_str().unwrap();
    assert!(expire.ends_with('Z') && expire.len() == 20, "{expire}");

    let name = "projects/123456789012/secrets/sa-only/versions/latest";
    let (status, body) = h.access(name, Some(&sa_token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(decode(&body), b"gcp-sa-only");
    let (status, _) = h.access(name, Some(&federated)).await;
    assert_eq!(status, 403);

    // No scope; an unknown account; a principal outside the members; no token.
    let no_scope = h
        .http
        .post(&url)
        .bearer_auth(&federated)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(no_scope).await;
    assert_eq!((status, google_error(&body).1), (400, "INVALID_ARGUMENT"));
    let unknown = h
        .http
        .post(h.gcp(
            "/v1/projects/-/serviceAccounts/nobody@x.iam.gserviceaccount.com:generateAccessToken",
        ))
        .bearer_auth(&federated)
        .json(&request)
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(unknown).await;
    assert_eq!((status, google_error(&body).1), (403, "PERMISSION_DENIED"));
    let outsider = h.mint(
        &GitlabClaims::new()
            .with_audience(format!("https:{PROVIDER_AUDIENCE}"))
            .with_project("mygroup/other", 43),
    );
    let (_, sts) = h.sts_json(PROVIDER_AUDIENCE, &outsider).await;
    let response = h
        .http
        .post(&url)
        .bearer_auth(sts["access_token"].as_str().unwrap())
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = h.http.post(&url).json(&request).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(h.counts().await["gcp_generate_access_token"], 5);
}

#[tokio::test]
async fn counts_reset() {
    let h = Harness::start().await;
    let token = h.gcp_access_token().await;
    h.access(
        "projects/123456789012/secrets/api-key/versions/1",
        Some(&token),
    )
    .await;
    let counts = h.counts().await;
    assert_eq!(
        (
            counts["gcp_sts_exchange"].as_u64(),
            counts["gcp_access"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let reset: Value = h
        .http
        .post(h.gcp("/_fake/reset"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reset["counts"]["gcp_access"], 0);
    assert_eq!(h.counts().await["gcp_sts_exchange"], 0);
}

#[tokio::test]
async fn injected_faults_answer_in_google_shape_then_clear() {
    let h = Harness::start().await;
    let doc = h.fault("gcp_sts_exchange", 503, 1).await;
    assert_eq!(
        doc["faults"]["gcp_sts_exchange"],
        json!({"status": 503, "remaining": 1})
    );
    let response = h
        .http
        .post(h.gcp("/v1/token"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    let (status, body) = status_json(response).await;
    assert_eq!((status, google_error(&body).1), (503, "UNAVAILABLE"));
    let token = h.gcp_access_token().await;

    h.fault("gcp_access", 429, 2).await;
    let name = "projects/123456789012/secrets/api-key/versions/1";
    for _ in 0..2 {
        let (status, body) = h.access(name, Some(&token)).await;
        assert_eq!((status, google_error(&body).1), (429, "RESOURCE_EXHAUSTED"));
    }
    let (status, _) = h.access(name, Some(&token)).await;
    assert_eq!(status, 200);
    let counts = h.counts().await;
    assert_eq!(
        (
            counts["gcp_sts_exchange"].as_u64(),
            counts["gcp_access"].as_u64()
        ),
        (Some(2), Some(3))
    );

    let bad = h
        .http
        .post(h.gcp("/_fake/faults"))
        .json(&json!({"kind": "gcp_access", "status": 404}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}
