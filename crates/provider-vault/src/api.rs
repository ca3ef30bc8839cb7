//! The Vault API calls: JWT login, secret reads and token revocation.

use crate::classify::{ClaimHints, Operation, Outcome, classify};
use crate::engine::login_path;
use crate::format::not_found_body_has_secret;
use crate::requests::{LOGIN, READ, REVOKE};
use crate::server::ServerClient;
use crate::server_messages::server_errors;
use auth_oidc::IdToken;
use provider_http::Failure;
use reqwest::Method;
use secrecy::{ExposeSecret as _, SecretString};
use secrets_core::ErrorKind;
use tracing::instrument;
use zeroize::Zeroizing;

#[derive(serde::Serialize)]
struct LoginBody<'a> {
    jwt: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
}

#[derive(serde::Deserialize)]
struct LoginAnswer {
    #[serde(default)]
    auth: Option<LoginAuth>,
}

#[derive(serde::Deserialize)]
struct LoginAuth {
    #[serde(default)]
    client_token: Option<String>,
}

impl ServerClient {
    /// `PUT auth/<path>/login` with `{"jwt", "role"}`; the Vault token from `auth.client_token`.
    #[instrument(skip_all, fields(server = %self.display, auth_path = %auth_path, role = role.unwrap_or("")))]
    pub(crate) async fn login(
        &self,
        namespace: Option<&str>,
        auth_path: &str,
        role: Option<&str>,
        token: &IdToken,
        hints: &ClaimHints,
    ) -> Result<SecretString, Failure> {
        let login = login_path(auth_path);
        let op = Operation::Login {
            login_path: &login,
            auth_path,
            role,
            claims: hints,
        };
        let url = self.url_for(&login).ok_or_else(|| {
            Failure::new(
                ErrorKind::InvalidConfig,
                format!(
                    "the auth path {auth_path:?} climbs out of /v1/ on {}",
                    self.display
                ),
            )
            .with_fix("set VAULT_AUTH_PATH to the JWT auth method's mount path, e.g. jwt")
        })?;
        let headers = Self::headers(namespace, None)?;
        let body = Zeroizing::new(
            serde_json::to_vec(&LoginBody {
                jwt: token.expose(),
                role,
            })
            .map_err(|_| Failure::new(ErrorKind::Unexpected, "cannot encode the login request"))?,
        );
        self.with_retry("login", || async {
            let answer = self
                .attempt(LOGIN, Method::PUT, &url, &headers, Some(&body))
                .await
                .map_err(|o| classify(&self.display, &op, &o))?;
            if !answer.is_success() {
                let errors = server_errors(&answer.body, &[token.expose()]);
                return Err(classify(
                    &self.display,
                    &op,
                    &Outcome::Status {
                        status: answer.status,
                        errors,
                    },
                )
                .with_retry_after(answer.retry_after));
            }
            let parsed: LoginAnswer = serde_json::from_slice(&answer.body).map_err(|_| {
                classify(
                    &self.display,
                    &op,
                    &Outcome::Malformed("the answer is not JSON"),
                )
            })?;
            parsed
                .auth
                .and_then(|a| a.client_token)
                .filter(|t| !t.is_empty())
                .map(SecretString::from)
                .ok_or_else(|| {
                    classify(
                        &self.display,
                        &op,
                        &Outcome::Malformed("it has no auth.client_token"),
                    )
                })
        })
        .await
    }

    /// `GET <logical>`: the answer's body on 2xx, or on a 404 that still carries data or
    /// warnings (the OpenBao client's rule); a `NotFound` error on any other 404.
    #[instrument(skip_all, fields(server = %self.display, path = %logical))]
    pub(crate) async fn read(
        &self,
        namespace: Option<&str>,
        vault_token: &SecretString,
        logical: &str,
        role: Option<&str>,
    ) -> Result<Zeroizing<String>, Failure> {
        let op = Operation::Read { logical, role };
        let url = self.url_for(logical).ok_or_else(|| {
            Failure::new(
                ErrorKind::InvalidSpec,
                format!(
                    "the secret path {logical:?} climbs out of /v1/ on {}",
                    self.display
                ),
            )
            .with_fix("remove the `..` segments from the engine path and the secret path")
        })?;
        let headers = Self::headers(namespace, Some(vault_token))?;
        self.with_retry("read", || async {
            let answer = self
                .attempt(READ, Method::GET, &url, &headers, None)
                .await
                .map_err(|o| classify(&self.display, &op, &o))?;
            let text = || {
                String::from_utf8(answer.body.to_vec())
                    .map(Zeroizing::new)
                    .map_err(|_| {
                        classify(
                            &self.display,
                            &op,
                            &Outcome::Malformed("the answer is not UTF-8"),
                        )
                    })
            };
            match answer.status {
                200..=299 => text(),
                404 => {
                    let body = text().unwrap_or_default();
                    if not_found_body_has_secret(&body) {
                        Ok(body)
                    } else {
                        let errors = server_errors(&answer.body, &[vault_token.expose_secret()]);
                        Err(classify(
                            &self.display,
                            &op,
                            &Outcome::Status {
                                status: 404,
                                errors,
                            },
                        ))
                    }
                }
                status => {
                    let errors = server_errors(&answer.body, &[vault_token.expose_secret()]);
                    Err(
                        classify(&self.display, &op, &Outcome::Status { status, errors })
                            .with_retry_after(answer.retry_after),
                    )
                }
            }
        })
        .await
    }

    /// `POST auth/token/revoke-self`. Not retried.
    #[instrument(skip_all, fields(server = %self.display))]
    pub(crate) async fn revoke(
        &self,
        namespace: Option<&str>,
        vault_token: &SecretString,
    ) -> Result<(), Failure> {
        let op = Operation::Revoke;
        let url = self
            .url_for("auth/token/revoke-self")
            .ok_or_else(|| Failure::new(ErrorKind::Unexpected, "no revoke URL"))?;
        let headers = Self::headers(namespace, Some(vault_token))?;
        let answer = self
            .attempt(REVOKE, Method::POST, &url, &headers, None)
            .await
            .map_err(|o| classify(&self.display, &op, &o))?;
        if answer.is_success() {
            Ok(())
        } else {
            let errors = server_errors(&answer.body, &[vault_token.expose_secret()]);
            Err(classify(
                &self.display,
                &op,
                &Outcome::Status {
                    status: answer.status,
                    errors,
                },
            ))
        }
    }
}
