//! The fakes' entries in the end-to-end env file written by `cargo xtask services up`
//! (`docs/e2e-fixtures.md`), and a loader for tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The env file keys.
pub mod keys {
    /// Base URL of the fake Google STS (`<url>/v1/token`); for `CLOUDSDK_API_ENDPOINT_OVERRIDES_STS`.
    pub const GCP_STS_URL: &str = "CLOUD_FAKES_GCP_STS_URL";
    /// Base URL of the fake Secret Manager (`<url>/v1/<name>:access`); for
    /// `CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER`.
    pub const GCP_SECRETMANAGER_URL: &str = "CLOUD_FAKES_GCP_SECRETMANAGER_URL";
    /// Base URL of the fake IAM Credentials (`generateAccessToken`).
    pub const GCP_IAMCREDENTIALS_URL: &str = "CLOUD_FAKES_GCP_IAMCREDENTIALS_URL";
    /// The seeded project number.
    pub const GCP_PROJECT_NUMBER: &str = "CLOUD_FAKES_GCP_PROJECT_NUMBER";
    /// The seeded project id (an alias of the number).
    pub const GCP_PROJECT_ID: &str = "CLOUD_FAKES_GCP_PROJECT_ID";
    /// The workload identity pool id.
    pub const GCP_POOL: &str = "CLOUD_FAKES_GCP_POOL";
    /// The pool provider id the examples use.
    pub const GCP_PROVIDER: &str = "CLOUD_FAKES_GCP_PROVIDER";
    /// The service account the federated principal of project 42 may impersonate.
    pub const GCP_SERVICE_ACCOUNT: &str = "CLOUD_FAKES_GCP_SERVICE_ACCOUNT";
    /// `127.0.0.1:<port>` of the Azure TLS listener: resolve the Azure names to it.
    pub const AZURE_ADDR: &str = "CLOUD_FAKES_AZURE_ADDR";
    /// `http://127.0.0.1:<port>`: a `CONNECT` proxy tunnelling the Azure names to the Azure
    /// listener (for `HTTPS_PROXY`; with `SSL_CERT_FILE` at [`AZURE_CA`] an unmodified client
    /// reaches the fake).
    pub const AZURE_PROXY_URL: &str = "CLOUD_FAKES_AZURE_PROXY_URL";
    /// Path of the test CA (PEM) the Azure listener's certificate chains to.
    pub const AZURE_CA: &str = "CLOUD_FAKES_AZURE_CA";
    /// `https://login.microsoftonline.com` (for `AZURE_AUTHORITY_HOST`).
    pub const AZURE_AUTHORITY_HOST: &str = "CLOUD_FAKES_AZURE_AUTHORITY_HOST";
    /// The seeded tenant.
    pub const AZURE_TENANT_ID: &str = "CLOUD_FAKES_AZURE_TENANT_ID";
    /// The app with a federated credential for the default fixture token and a role on the vault.
    pub const AZURE_CLIENT_ID: &str = "CLOUD_FAKES_AZURE_CLIENT_ID";
    /// `https://ci-secrets-test.vault.azure.net` (for `AZURE_KEY_VAULT_SERVER_URL`).
    pub const AZURE_VAULT_URL: &str = "CLOUD_FAKES_AZURE_VAULT_URL";
    /// `http://127.0.0.1:<port>/_fake`: `GET …/requests`, `POST …/reset`.
    pub const ADMIN_URL: &str = "CLOUD_FAKES_ADMIN_URL";
    /// The fixture file served.
    pub const FIXTURE: &str = "CLOUD_FAKES_FIXTURE";
}

/// The default fixture's identifiers (checked against `fixtures/default.yaml` by a test).
pub mod defaults {
    /// Project number.
    pub const GCP_PROJECT_NUMBER: &str = "123456789012";
    /// Project id.
    pub const GCP_PROJECT_ID: &str = "ci-secrets-test";
    /// Pool.
    pub const GCP_POOL: &str = "gitlab-pool";
    /// Provider.
    pub const GCP_PROVIDER: &str = "gitlab-provider";
    /// Service account.
    pub const GCP_SERVICE_ACCOUNT: &str = "secret-reader@ci-secrets-test.iam.gserviceaccount.com";
    /// Tenant.
    pub const AZURE_TENANT_ID: &str = "11111111-2222-4333-8444-555555555555";
    /// Client.
    pub const AZURE_CLIENT_ID: &str = "aaaaaaaa-0000-4000-8000-000000000001";
    /// Vault name.
    pub const AZURE_VAULT: &str = "ci-secrets-test";
}

/// The env file entries for fakes serving the default fixture at `gcp_url` and `azure`, with
/// the `CONNECT` proxy at `azure_proxy_url`.
pub fn entries(
    gcp_url: &str,
    azure: SocketAddr,
    azure_proxy_url: &str,
    ca: &Path,
    fixture: &Path,
) -> Vec<(&'static str, String)> {
    vec![
        (keys::GCP_STS_URL, gcp_url.to_owned()),
        (keys::GCP_SECRETMANAGER_URL, gcp_url.to_owned()),
        (keys::GCP_IAMCREDENTIALS_URL, gcp_url.to_owned()),
        (
            keys::GCP_PROJECT_NUMBER,
            defaults::GCP_PROJECT_NUMBER.to_owned(),
        ),
        (keys::GCP_PROJECT_ID, defaults::GCP_PROJECT_ID.to_owned()),
        (keys::GCP_POOL, defaults::GCP_POOL.to_owned()),
        (keys::GCP_PROVIDER, defaults::GCP_PROVIDER.to_owned()),
        (
            keys::GCP_SERVICE_ACCOUNT,
            defaults::GCP_SERVICE_ACCOUNT.to_owned(),
        ),
        (keys::AZURE_ADDR, azure.to_string()),
        (keys::AZURE_PROXY_URL, azure_proxy_url.to_owned()),
        (keys::AZURE_CA, ca.display().to_string()),
        (
            keys::AZURE_AUTHORITY_HOST,
            format!("https://{}", crate::azure::LOGIN_HOST),
        ),
        (keys::AZURE_TENANT_ID, defaults::AZURE_TENANT_ID.to_owned()),
        (keys::AZURE_CLIENT_ID, defaults::AZURE_CLIENT_ID.to_owned()),
        (
            keys::AZURE_VAULT_URL,
            format!(
                "https://{}{}",
                defaults::AZURE_VAULT,
                crate::azure::VAULT_SUFFIX
            ),
        ),
        (keys::ADMIN_URL, format!("{gcp_url}/_fake")),
        (keys::FIXTURE, fixture.display().to_string()),
    ]
}

/// Why the env file's fake entries could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key is missing or bad.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong (names the key).
        reason: String,
    },
}

/// The running fakes, as the env file records them.
#[derive(Debug, Clone)]
pub struct FakesEnv {
    values: BTreeMap<String, String>,
    azure_addr: SocketAddr,
}

impl FakesEnv {
    /// Loads the env file named by `CI_SECRETS_E2E_ENV`; `None` when unset (tests then skip).
    ///
    /// # Panics
    ///
    /// When the variable is set but the file lacks the fakes' entries.
    pub fn from_env() -> Option<Self> {
        let path = std::env::var_os("CI_SECRETS_E2E_ENV").filter(|v| !v.is_empty())?;
        match Self::from_file(Path::new(&path)) {
            Ok(env) => Some(env),
            Err(err) => panic!("CI_SECRETS_E2E_ENV is set but has no usable cloud fakes: {err}"),
        }
    }

    /// Reads the fakes' entries from an env file (`KEY=VALUE` lines; other keys are ignored).
    pub fn from_file(path: &Path) -> Result<Self, EnvError> {
        let text = std::fs::read_to_string(path).map_err(|source| EnvError::Read {
            path: path.to_owned(),
            source,
        })?;
        let values: BTreeMap<String, String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let invalid = |reason: String| EnvError::Invalid {
            path: path.to_owned(),
            reason,
        };
        for key in [
            keys::GCP_STS_URL,
            keys::GCP_SECRETMANAGER_URL,
            keys::AZURE_ADDR,
            keys::AZURE_CA,
            keys::AZURE_TENANT_ID,
            keys::AZURE_CLIENT_ID,
            keys::AZURE_VAULT_URL,
        ] {
            if values.get(key).is_none_or(String::is_empty) {
                return Err(invalid(format!("{key} is missing or empty")));
            }
        }
        let azure_addr = values[keys::AZURE_ADDR]
            .parse()
            .map_err(|_| invalid(format!("{} is not an address", keys::AZURE_ADDR)))?;
        Ok(Self { values, azure_addr })
    }

    /// The value of `key` (one of [`keys`]), if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// [`keys::GCP_STS_URL`].
    pub fn gcp_sts_url(&self) -> &str {
        &self.values[keys::GCP_STS_URL]
    }

    /// [`keys::GCP_SECRETMANAGER_URL`].
    pub fn gcp_secretmanager_url(&self) -> &str {
        &self.values[keys::GCP_SECRETMANAGER_URL]
    }

    /// [`keys::AZURE_ADDR`].
    pub fn azure_addr(&self) -> SocketAddr {
        self.azure_addr
    }

    /// [`keys::AZURE_PROXY_URL`], when the env file has it.
    pub fn azure_proxy_url(&self) -> Option<&str> {
        self.get(keys::AZURE_PROXY_URL).filter(|v| !v.is_empty())
    }

    /// [`keys::AZURE_CA`].
    pub fn azure_ca(&self) -> &Path {
        Path::new(&self.values[keys::AZURE_CA])
    }

    /// The host names a test client must resolve to [`azure_addr`](Self::azure_addr): Entra's
    /// and every seeded vault's.
    pub fn azure_hosts() -> Vec<String> {
        vec![
            crate::azure::LOGIN_HOST.to_owned(),
            format!("{}{}", defaults::AZURE_VAULT, crate::azure::VAULT_SUFFIX),
            format!("other-tenant-vault{}", crate::azure::VAULT_SUFFIX),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_in_the_default_fixture() {
        let fixture =
            crate::Fixture::parse("default.yaml", crate::DEFAULT_FIXTURE, false, "http://x")
                .unwrap();
        let provider = &fixture.gcp.providers[0];
        assert_eq!(provider.project_number, defaults::GCP_PROJECT_NUMBER);
        assert_eq!(provider.pool, defaults::GCP_POOL);
        assert_eq!(provider.provider, defaults::GCP_PROVIDER);
        assert_eq!(
            fixture.gcp.project_ids[defaults::GCP_PROJECT_ID],
            defaults::GCP_PROJECT_NUMBER
        );
        assert_eq!(
            fixture.gcp.service_accounts[0].email,
            defaults::GCP_SERVICE_ACCOUNT
        );
        let tenant = &fixture.azure.tenants[0];
        assert_eq!(tenant.id, defaults::AZURE_TENANT_ID);
        assert_eq!(tenant.apps[0].client_id, defaults::AZURE_CLIENT_ID);
        assert_eq!(fixture.azure.vaults[0].name, defaults::AZURE_VAULT);
        for vault in &fixture.azure.vaults {
            let host = format!("{}{}", vault.name, crate::azure::VAULT_SUFFIX);
            assert!(FakesEnv::azure_hosts().contains(&host), "{host}");
        }
    }

    #[test]
    fn entries_round_trip_through_the_loader() {
        let dir = std::env::temp_dir().join(format!("cloud-fakes-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("services.env");
        let pairs = entries(
            "http://127.0.0.1:1",
            "127.0.0.1:2".parse().unwrap(),
            "http://127.0.0.1:3",
            Path::new("/tmp/ca.pem"),
            Path::new("/tmp/f.yaml"),
        );
        let text: String = pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(&path, format!("E2E_OTHER=1\n{text}")).unwrap();
        let env = FakesEnv::from_file(&path).unwrap();
        assert_eq!(env.gcp_sts_url(), "http://127.0.0.1:1");
        assert_eq!(env.azure_addr().port(), 2);
        assert_eq!(env.azure_ca(), Path::new("/tmp/ca.pem"));
        assert_eq!(env.azure_proxy_url(), Some("http://127.0.0.1:3"));
        assert_eq!(
            env.get(keys::AZURE_VAULT_URL),
            Some("https://ci-secrets-test.vault.azure.net")
        );
        std::fs::write(&path, "E2E_OTHER=1\n").unwrap();
        let err = FakesEnv::from_file(&path).unwrap_err();
        assert!(err.to_string().contains(keys::GCP_STS_URL), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
