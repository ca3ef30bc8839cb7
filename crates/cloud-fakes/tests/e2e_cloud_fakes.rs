//! The fakes `cargo xtask services up` started, reached as the provider tests will reach
//! them: from the env file, with tokens of the running issuer, the Azure names resolved to
//! the fake and its CA trusted. Skips unless `CI_SECRETS_E2E_ENV` is set (`cargo xtask e2e`).

use auth_oidc::testing::{E2eEnv, GitlabClaims};
use base64::Engine as _;
use cloud_fakes::env::{FakesEnv, defaults, keys};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

fn envs(test: &str) -> Option<(E2eEnv, FakesEnv)> {
    let e2e = E2eEnv::for_test(test)?;
    let fakes = FakesEnv::from_env()?;
    Some((e2e, fakes))
}

async fn counts(http: &reqwest::Client, fakes: &FakesEnv) -> Value {
    let admin = fakes.get(keys::ADMIN_URL).unwrap();
    let doc: Value = http
        .get(format!("{admin}/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    doc["counts"].clone()
}

#[tokio::test]
async fn gcp_sts_exchange_then_access() {
    let Some((e2e, fakes)) = envs("gcp_sts_exchange_then_access") else {
        return;
    };
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let audience = format!(
        "//iam.googleapis.com/projects/{}/locations/global/workloadIdentityPools/{}/providers/{}",
        defaults::GCP_PROJECT_NUMBER,
        defaults::GCP_POOL,
        defaults::GCP_PROVIDER
    );
    let id_token = e2e
        .minter()
        .mint(&GitlabClaims::new().with_audience(format!("https:{audience}")))
        .unwrap();
    let before = counts(&http, &fakes).await;
    let sts: Value = http
        .post(format!("{}/v1/token", fakes.gcp_sts_url()))
        .json(&json!({
            "audience": audience,
            "grantType": "urn:ietf:params:oauth:grant-type:token-exchange",
            "requestedTokenType": "urn:ietf:params:oauth:token-type:access_token",
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "subjectToken": id_token.expose_secret(),
            "subjectTokenType": "urn:ietf:params:oauth:token-type:id_token",
        }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = sts["access_token"].as_str().unwrap();
    let body: Value = http
        .get(format!(
            "{}/v1/projects/{}/secrets/api-key/versions/latest:access",
            fakes.gcp_secretmanager_url(),
            defaults::GCP_PROJECT_NUMBER
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let data = base64::engine::general_purpose::STANDARD
        .decode(body["payload"]["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(data, b"gcp-api-key-v2");
    let after = counts(&http, &fakes).await;
    let delta = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
    // Other tests may share the running fakes: at least ours.
    assert!(
        delta("gcp_sts_exchange") >= 1 && delta("gcp_access") >= 1,
        "{after}"
    );
}

#[tokio::test]
async fn azure_token_then_get_over_tls_under_the_real_names() {
    let Some((e2e, fakes)) = envs("azure_token_then_get_over_tls_under_the_real_names") else {
        return;
    };
    let ca = std::fs::read(fakes.azure_ca()).unwrap();
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()]);
    for host in FakesEnv::azure_hosts() {
        builder = builder.resolve(&host, fakes.azure_addr());
    }
    let client = builder.build().unwrap();
    let authority = fakes.get(keys::AZURE_AUTHORITY_HOST).unwrap();
    let tenant = fakes.get(keys::AZURE_TENANT_ID).unwrap();
    let assertion = e2e
        .minter()
        .mint(&GitlabClaims::new().with_audience("api://AzureADTokenExchange"))
        .unwrap();
    let form = [
        ("client_id", fakes.get(keys::AZURE_CLIENT_ID).unwrap()),
        ("grant_type", "client_credentials"),
        ("client_assertion", assertion.expose_secret()),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("scope", "https://vault.azure.net/.default"),
    ];
    let body: String = form
        .iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&");
    let token: Value = client
        .post(format!("{authority}/{tenant}/oauth2/v2.0/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let vault = fakes.get(keys::AZURE_VAULT_URL).unwrap();
    let challenge = client
        .get(format!("{vault}/secrets/db-password/?api-version=7.5"))
        .send()
        .await
        .unwrap();
    assert_eq!(challenge.status(), 401);
    assert!(
        challenge.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(tenant)
    );
    let secret: Value = client
        .get(format!("{vault}/secrets/db-password/?api-version=7.5"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(secret["value"], "azure-db-password-v2");
}
