//! The end-to-end env file written by `cargo xtask services up`.

use super::{Minter, TestingError};
use secrecy::{ExposeSecret as _, SecretString};
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// The environment variable that names the env file; set by `cargo xtask e2e`.
pub const E2E_ENV_VAR: &str = "CI_SECRETS_E2E_ENV";

/// The keys of the env file (`docs/e2e-fixtures.md`).
pub mod keys {
    /// `http://127.0.0.1:<port>` of OpenBao.
    pub const VAULT_ADDR: &str = "E2E_VAULT_ADDR";
    /// The dev root token.
    pub const VAULT_ROOT_TOKEN: &str = "E2E_VAULT_ROOT_TOKEN";
    /// The issuer URL, also the tokens' `iss`.
    pub const OIDC_ISSUER: &str = "E2E_OIDC_ISSUER";
    /// Path of the issuer's RSA private key (PKCS#8 PEM).
    pub const OIDC_SIGNING_KEY: &str = "E2E_OIDC_SIGNING_KEY";
    /// The key id in the JWKS and in minted tokens' header.
    pub const OIDC_KID: &str = "E2E_OIDC_KID";
    /// `http://127.0.0.1:<port>` of LocalStack.
    pub const AWS_ENDPOINT: &str = "E2E_AWS_ENDPOINT";
    /// LocalStack's default account id.
    pub const AWS_ACCOUNT: &str = "E2E_AWS_ACCOUNT";
    /// The full ARN of the cross-account secret.
    pub const SHARED_SECRET_ARN: &str = "E2E_SHARED_SECRET_ARN";
    /// Pids started by `up`, space separated.
    pub const PIDS: &str = "E2E_PIDS";

    /// Every key, in file order.
    pub const ALL: [&str; 9] = [
        VAULT_ADDR,
        VAULT_ROOT_TOKEN,
        OIDC_ISSUER,
        OIDC_SIGNING_KEY,
        OIDC_KID,
        AWS_ENDPOINT,
        AWS_ACCOUNT,
        SHARED_SECRET_ARN,
        PIDS,
    ];
}

/// The running end-to-end services, as recorded in the env file.
///
/// `Debug` redacts the root token.
#[derive(Clone)]
pub struct E2eEnv {
    path: PathBuf,
    vault_addr: String,
    vault_root_token: SecretString,
    oidc_issuer: String,
    oidc_signing_key: PathBuf,
    oidc_kid: String,
    aws_endpoint: String,
    aws_account: String,
    shared_secret_arn: String,
    pids: Vec<u32>,
}

impl E2eEnv {
    /// Loads the env file named by `CI_SECRETS_E2E_ENV`; `None` when the variable is unset or
    /// empty (the tests then skip).
    ///
    /// # Panics
    ///
    /// When the variable is set but the file cannot be loaded: a test run that asked for the
    /// services must not silently skip.
    pub fn from_env() -> Option<Self> {
        #[allow(
            clippy::disallowed_methods,
            reason = "test support: where the e2e servers are comes from the test's environment"
        )]
        let path = std::env::var_os(E2E_ENV_VAR).filter(|v| !v.is_empty())?;
        match Self::from_file(Path::new(&path)) {
            Ok(env) => Some(env),
            Err(err) => panic!("{E2E_ENV_VAR} is set but unusable: {err}"),
        }
    }

    /// [`from_env`](Self::from_env), printing to stderr why `test` is skipped when `None`.
    pub fn for_test(test: &str) -> Option<Self> {
        let env = Self::from_env();
        if env.is_none() {
            #[allow(clippy::print_stderr, reason = "the skip reason is the output")]
            {
                eprintln!(
                    "skipping {test}: {E2E_ENV_VAR} is not set; run `cargo xtask e2e` \
                     (or `cargo xtask services up` and export {E2E_ENV_VAR})"
                );
            }
        }
        env
    }

    /// Reads and checks an env file.
    pub fn from_file(path: &Path) -> Result<Self, TestingError> {
        let text = fs::read_to_string(path).map_err(|source| TestingError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses env file text (`KEY=VALUE` lines; blank lines and `#` comments ignored).
    pub fn parse(path: &Path, text: &str) -> Result<Self, TestingError> {
        let err = |reason: String| TestingError::Env {
            path: path.to_owned(),
            reason,
        };
        let mut map = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| err(format!("line {} is not KEY=VALUE", n + 1)))?;
            map.insert(key.trim().to_owned(), value.trim().to_owned());
        }
        let mut take = |key: &str| {
            map.remove(key)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| err(format!("{key} is missing or empty")))
        };
        let vault_addr = take(keys::VAULT_ADDR)?;
        let vault_root_token = SecretString::from(take(keys::VAULT_ROOT_TOKEN)?);
        let oidc_issuer = take(keys::OIDC_ISSUER)?;
        let oidc_signing_key = PathBuf::from(take(keys::OIDC_SIGNING_KEY)?);
        let oidc_kid = take(keys::OIDC_KID)?;
        let aws_endpoint = take(keys::AWS_ENDPOINT)?;
        let aws_account = take(keys::AWS_ACCOUNT)?;
        let shared_secret_arn = take(keys::SHARED_SECRET_ARN)?;
        let pids = take(keys::PIDS)?
            .split_whitespace()
            .map(|p| {
                p.parse::<u32>()
                    .map_err(|_| err(format!("{} has a non-numeric pid", keys::PIDS)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (key, url) in [
            (keys::VAULT_ADDR, &vault_addr),
            (keys::OIDC_ISSUER, &oidc_issuer),
            (keys::AWS_ENDPOINT, &aws_endpoint),
        ] {
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(err(format!("{key} is not an http(s) URL")));
            }
        }
        Ok(Self {
            path: path.to_owned(),
            vault_addr,
            vault_root_token,
            oidc_issuer,
            oidc_signing_key,
            oidc_kid,
            aws_endpoint,
            aws_account,
            shared_secret_arn,
            pids,
        })
    }

    /// The env file this was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `E2E_VAULT_ADDR`: OpenBao's base URL, without `/v1`.
    pub fn vault_addr(&self) -> &str {
        &self.vault_addr
    }

    /// `E2E_VAULT_ROOT_TOKEN`: the dev root token (for seeding and inspection only).
    pub fn vault_root_token(&self) -> &SecretString {
        &self.vault_root_token
    }

    /// `E2E_OIDC_ISSUER`: the issuer URL, also the tokens' `iss`.
    pub fn oidc_issuer(&self) -> &str {
        &self.oidc_issuer
    }

    /// `E2E_OIDC_SIGNING_KEY`: the issuer's private key file.
    pub fn oidc_signing_key(&self) -> &Path {
        &self.oidc_signing_key
    }

    /// `E2E_OIDC_KID`: the key id.
    pub fn oidc_kid(&self) -> &str {
        &self.oidc_kid
    }

    /// `E2E_AWS_ENDPOINT`: LocalStack's base URL, for every AWS service.
    pub fn aws_endpoint(&self) -> &str {
        &self.aws_endpoint
    }

    /// `E2E_AWS_ACCOUNT`: LocalStack's default account (`000000000000`).
    pub fn aws_account(&self) -> &str {
        &self.aws_account
    }

    /// `E2E_SHARED_SECRET_ARN`: the cross-account secret's ARN (account `987654321098`).
    pub fn shared_secret_arn(&self) -> &str {
        &self.shared_secret_arn
    }

    /// `E2E_PIDS`: the processes `up` started.
    pub fn pids(&self) -> &[u32] {
        &self.pids
    }

    /// A [`Minter`] for the running issuer, with its signing key.
    ///
    /// # Panics
    ///
    /// When the key file cannot be read, or its key id is not `E2E_OIDC_KID`.
    pub fn minter(&self) -> Minter {
        let minter = Minter::from_pem_file(&self.oidc_issuer, &self.oidc_signing_key)
            .unwrap_or_else(|err| panic!("cannot load the e2e issuer key: {err}"));
        assert_eq!(
            minter.kid(),
            self.oidc_kid,
            "the key in {} does not match {}",
            self.oidc_signing_key.display(),
            keys::OIDC_KID
        );
        minter
    }

    /// Renders `pairs` as env file text (the writer's side of [`parse`](Self::parse)).
    pub fn render(pairs: &[(&str, String)]) -> String {
        let mut out =
            String::from("# written by `cargo xtask services up`; see docs/e2e-fixtures.md\n");
        for (key, value) in pairs {
            out.push_str(key);
            out.push('=');
            out.push_str(value);
            out.push('\n');
        }
        out
    }
}

impl fmt::Debug for E2eEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token = if self.vault_root_token.expose_secret().is_empty() {
            ""
        } else {
            "** redacted **"
        };
        f.debug_struct("E2eEnv")
            .field("path", &self.path)
            .field("vault_addr", &self.vault_addr)
            .field("vault_root_token", &token)
            .field("oidc_issuer", &self.oidc_issuer)
            .field("oidc_signing_key", &self.oidc_signing_key)
            .field("oidc_kid", &self.oidc_kid)
            .field("aws_endpoint", &self.aws_endpoint)
            .field("aws_account", &self.aws_account)
            .field("shared_secret_arn", &self.shared_secret_arn)
            .field("pids", &self.pids)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> String {
        E2eEnv::render(&[
            (keys::VAULT_ADDR, "http://127.0.0.1:8200".into()),
            (keys::VAULT_ROOT_TOKEN, "root-token-value".into()),
            (keys::OIDC_ISSUER, "http://127.0.0.1:8300".into()),
            (keys::OIDC_SIGNING_KEY, "/tmp/key.pem".into()),
            (keys::OIDC_KID, "kid-1".into()),
            (keys::AWS_ENDPOINT, "http://127.0.0.1:4566".into()),
            (keys::AWS_ACCOUNT, "000000000000".into()),
            (
                keys::SHARED_SECRET_ARN,
                "arn:aws:secretsmanager:us-east-1:987654321098:secret:shared-api-keys-AbCdEf"
                    .into(),
            ),
            (keys::PIDS, "10 11 12".into()),
        ])
    }

    #[test]
    fn render_and_parse_round_trip() {
        let env = E2eEnv::parse(Path::new("x.env"), &sample()).unwrap();
        assert_eq!(env.vault_addr(), "http://127.0.0.1:8200");
        assert_eq!(env.vault_root_token().expose_secret(), "root-token-value");
        assert_eq!(env.oidc_issuer(), "http://127.0.0.1:8300");
        assert_eq!(env.oidc_signing_key(), Path::new("/tmp/key.pem"));
        assert_eq!(env.oidc_kid(), "kid-1");
        assert_eq!(env.aws_endpoint(), "http://127.0.0.1:4566");
        assert_eq!(env.aws_account(), "000000000000");
        assert!(env.shared_secret_arn().contains(":987654321098:"));
        assert_eq!(env.pids(), &[10, 11, 12]);
    }

    #[test]
    fn debug_redacts_the_root_token() {
        let env = E2eEnv::parse(Path::new("x.env"), &sample()).unwrap();
        let debug = format!("{env:?}");
        assert!(!debug.contains("root-token-value"), "{debug}");
        assert!(debug.contains("** redacted **"), "{debug}");
    }

    #[test]
    fn a_missing_key_is_named() {
        let text = sample().replace("E2E_OIDC_KID=kid-1\n", "");
        let err = E2eEnv::parse(Path::new("x.env"), &text).unwrap_err();
        assert!(err.to_string().contains("E2E_OIDC_KID is missing"), "{err}");
    }

    #[test]
    fn a_bad_url_or_pid_is_refused() {
        let text = sample().replace("http://127.0.0.1:4566", "127.0.0.1:4566");
        let err = E2eEnv::parse(Path::new("x.env"), &text).unwrap_err();
        assert!(err.to_string().contains("E2E_AWS_ENDPOINT"), "{err}");
        let text = sample().replace("10 11 12", "10 x");
        let err = E2eEnv::parse(Path::new("x.env"), &text).unwrap_err();
        assert!(err.to_string().contains("non-numeric pid"), "{err}");
    }
}
