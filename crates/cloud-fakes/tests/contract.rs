//! The fakes proven faithful by the vendors' own clients: runs `contract/*.py` with the Python
//! of the venv `cargo xtask` caches (google-auth, google-cloud-secret-manager, azure-identity,
//! azure-keyvault-secrets) against in-process fakes, and fails if a client rejects the fake,
//! raises the wrong exception type or reads a different value.
//!
//! Skips (with the reason printed) unless `CLOUD_FAKES_PYTHON` names that interpreter;
//! `cargo xtask test` and `cargo xtask contract` set it.

mod common;

use auth_oidc::testing::GitlabClaims;
use common::*;
use serde_json::{Value, json};
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

const PYTHON_VAR: &str = "CLOUD_FAKES_PYTHON";

fn python(test: &str) -> Option<PathBuf> {
    let python = std::env::var_os(PYTHON_VAR).filter(|v| !v.is_empty());
    if python.is_none() {
        #[allow(clippy::print_stderr, reason = "the skip reason is the output")]
        {
            eprintln!(
                "skipping {test}: {PYTHON_VAR} is not set; run `cargo xtask contract` (it \
                 installs the vendor clients into a cached venv and sets it)"
            );
        }
    }
    python.map(PathBuf::from)
}

/// A 0700 directory for the config and token files, removed on drop.
struct Private(PathBuf);

impl Private {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("cloud-fakes-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
        path
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `script` with `config`; returns its JSON line, failing with its stderr otherwise.
async fn run(python: PathBuf, script: &str, config: PathBuf, ca: Option<PathBuf>) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contract")
        .join(script);
    let output = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(python);
        command
            .arg(&script)
            .arg(&config)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("NO_PROXY", "*")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("AZURE_AUTHORITY_HOST")
            .env_remove("GOOGLE_APPLICATION_CREDENTIALS");
        if let Some(ca) = ca {
            command
                .env("SSL_CERT_FILE", &ca)
                .env("REQUESTS_CA_BUNDLE", &ca);
        }
        command.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the vendor client rejected the fake ({}):\n{stderr}\n{stdout}",
        output.status
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("no JSON result ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_clients_accept_the_gcp_fakes() {
    let Some(python) = python("google_clients_accept_the_gcp_fakes") else {
        return;
    };
    let h = Harness::start().await;
    let dir = Private::new("gcp");
    let audience = format!("https:{PROVIDER_AUDIENCE}");
    let token = h.mint(&GitlabClaims::new().with_audience(audience.clone()));
    let long = h.mint(
        &GitlabClaims::new()
            .with_audience(audience.clone())
            .with_ref("b".repeat(120)),
    );
    let expired = h.mint(&GitlabClaims::new().with_audience(audience).expired());
    let config = json!({
        "gcp_url": h.fakes.gcp_url(),
        "project": PROJECT,
        "project_id": "ci-secrets-test",
        "audience": PROVIDER_AUDIENCE,
        "missing_audience": PROVIDER_AUDIENCE.replace("gitlab-provider", "no-such-provider"),
        "service_account": SA_EMAIL,
        "token_file": dir.write("token", &token),
        "long_subject_token_file": dir.write("long", &long),
        "expired_token_file": dir.write("expired", &expired),
    });
    let config = dir.write("config.json", &config.to_string());
    let result = run(python, "gcp_contract.py", config, None).await;

    let values = &result["values"];
    let expect = |key: &str, name: &str, value: &str| {
        assert_eq!(values[key]["name"], name, "{key}: {result}");
        assert_eq!(values[key]["value"], value, "{key}: {result}");
    };
    expect(
        "latest",
        "projects/123456789012/secrets/api-key/versions/2",
        "gcp-api-key-v2",
    );
    expect(
        "pinned",
        "projects/123456789012/secrets/api-key/versions/1",
        "gcp-api-key-v1",
    );
    expect(
        "by_project_id",
        "projects/123456789012/secrets/db-password/versions/1",
        "gcp-db-password",
    );
    expect(
        "regional",
        "projects/123456789012/locations/us-east1/secrets/regional-key/versions/2",
        "gcp-regional-v2",
    );
    expect(
        "regional_pinned",
        "projects/123456789012/locations/us-east1/secrets/regional-key/versions/1",
        "gcp-regional-v1",
    );
    expect(
        "multi_latest",
        "projects/123456789012/secrets/multi/versions/4",
        "gcp-multi-v4",
    );
    expect(
        "impersonated",
        "projects/123456789012/secrets/sa-only/versions/1",
        "gcp-sa-only",
    );
    // The client parsed the decimal string into the int64 field.
    assert_eq!(
        values["latest"]["crc32c"],
        u64::from(crc32c::crc32c(b"gcp-api-key-v2")),
        "{result}"
    );
    assert_eq!(
        result["errors"],
        json!({
            "not_found": "NotFound",
            "disabled": "BadRequest/FAILED_PRECONDITION",
            "destroyed": "BadRequest/FAILED_PRECONDITION",
            "permission_denied": "Forbidden/PERMISSION_DENIED",
            "subject_too_long": "OAuthError",
            "invalid_target": "OAuthError",
            "expired": "OAuthError",
            "federated_not_sa": "Forbidden/PERMISSION_DENIED",
        })
    );

    let doc: Value = h
        .http
        .get(h.gcp("/_fake/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // google-auth sends the form body; every exchange reached the fake.
    assert!(doc["sts_encodings"]["form"].as_u64().unwrap() >= 5, "{doc}");
    assert!(doc["sts_encodings"].get("json").is_none(), "{doc}");
    assert!(doc["counts"]["gcp_access"].as_u64().unwrap() >= 11, "{doc}");
    assert!(
        doc["counts"]["gcp_generate_access_token"].as_u64().unwrap() >= 1,
        "{doc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_clients_accept_the_azure_fakes() {
    let Some(python) = python("azure_clients_accept_the_azure_fakes") else {
        return;
    };
    let h = Harness::start().await;
    let dir = Private::new("azure");
    let ca = dir.write("ca.pem", h.fakes.ca_pem());
    let wrong_subject = h.mint(
        &GitlabClaims::new()
            .with_audience("api://AzureADTokenExchange")
            .with_branch("feature"),
    );
    let expired = h.mint(
        &GitlabClaims::new()
            .with_audience("api://AzureADTokenExchange")
            .expired(),
    );
    let config = json!({
        "azure_port": h.fakes.azure_addr().port(),
        "tenant": TENANT,
        "client_id": CLIENT,
        "unknown_client_id": "cccccccc-0000-4000-8000-000000000000",
        "vault_url": format!("https://{VAULT_HOST}"),
        "pinned_version": "0123456789abcdef0123456789abcdef",
        "token": h.azure_token(),
        "wrong_subject_token": wrong_subject,
        "expired_token": expired,
    });
    let config = dir.write("config.json", &config.to_string());
    let result = run(python, "azure_contract.py", config, Some(ca)).await;

    assert_eq!(
        result["values"],
        json!({
            "latest": {
                "value": "azure-db-password-v2",
                "version": "fedcba9876543210fedcba9876543210",
                "content_type": "text/plain",
            },
            "pinned": {"value": "azure-db-password-v1", "version": "0123456789abcdef0123456789abcdef"},
            "api_key": {"value": "azure-api-key", "version": "00000000000000000000000000000a01"},
            "msal_token": {"token_type": "Bearer", "has_expiry": true},
        }),
        "{result}"
    );
    assert_eq!(
        result["errors"],
        json!({
            "not_found": "ResourceNotFoundError",
            "disabled": "HttpResponseError",
            "rbac": "HttpResponseError",
            "no_federated_credential": "ClientAuthenticationError",
            "expired_assertion": "ClientAuthenticationError",
            "unknown_app": "ClientAuthenticationError",
            "malformed": "ClientAuthenticationError",
            "msal_no_federated_credential": {"error": "invalid_request", "error_codes": [70021]},
        })
    );

    let doc: Value = h
        .http
        .get(h.gcp("/_fake/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let counts = &doc["counts"];
    // The SDK's flow: an unauthenticated GET answered with the challenge, the token request,
    // then the GET with the bearer token; azure-identity's ClientAssertionCredential posts to
    // the token endpoint directly, so the two tenant discoveries are MSAL's own (one per
    // application); MSAL 1.39 also asks instance discovery once per process (for the
    // authority aliases of its cache), which proves that endpoint too.
    for kind in ["azure_challenge", "azure_token", "azure_get"] {
        assert!(counts[kind].as_u64().unwrap() >= 1, "{kind}: {doc}");
    }
    assert_eq!(counts["azure_discovery"], 2, "{doc}");
    assert_eq!(counts["azure_instance_discovery"], 1, "{doc}");
    assert!(
        !doc["api_versions"].as_object().unwrap().is_empty(),
        "{doc}"
    );
}
