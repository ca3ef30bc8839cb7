//! A job's `secrets:` normalised as GitLab's server does it: entry keys, token choice, the
//! `server` blocks built from CI/CD variables, and the gate variables (runner-semantics §7).

use super::entries::{parse_aws, parse_azure, parse_gcp, parse_vault};
use super::keywords::job_error;
use super::{CiJob, CiVariable, IdTokenSpec};
use crate::error::{Error, ErrorKind};
use crate::payload::{
    AwsServer, AzureSecret, AzureServer, GcpSecret, GcpServer, Secret, Secrets, VaultAuth,
    VaultServer,
};
use indexmap::IndexMap;
use serde::de::IgnoredAny;
use serde_json::Value;

/// The provider keys GitLab accepts on a secret, in the order its error message lists them.
pub(super) const PROVIDER_KEYS: &[&str] = &[
    "vault",
    "azure_key_vault",
    "gcp_secret_manager",
    "akeyless",
    "gitlab_secrets_manager",
    "aws_secrets_manager",
];

/// Job keywords people put under `secrets:` by mistake (GitLab's own docs once did).
pub(super) const JOB_KEYWORDS_OFTEN_NESTED: &[&str] = &["id_tokens", "variables"];

pub(super) const SECRET_KEYS: &[&str] = &[
    "vault",
    "file",
    "azure_key_vault",
    "gcp_secret_manager",
    "akeyless",
    "gitlab_secrets_manager",
    "token",
    "aws_secrets_manager",
];

impl CiJob {
    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Global and job variables, in the order GitLab applies them (later wins).
    pub fn variables(&self) -> &[CiVariable] {
        &self.variables
    }

    /// The job's `id_tokens:`, in file order.
    pub fn id_tokens(&self) -> &[IdTokenSpec] {
        &self.id_tokens
    }

    /// Whether the job has a `secrets:` keyword.
    pub fn has_secrets(&self) -> bool {
        self.secrets.is_some()
    }

    /// The `secrets` object GitLab would send to a runner for this job.
    ///
    /// `setting` answers the CI/CD variables GitLab's server reads (`VAULT_SERVER_URL`,
    /// `AWS_REGION`, ...): project, group and instance variables and the file's `variables:`.
    /// Every secret is checked; all problems are returned together.
    pub fn secrets_payload(
        &self,
        setting: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secrets, Vec<Error>> {
        let mut out = Secrets::new();
        let Some(secrets) = &self.secrets else {
            return Ok(out);
        };
        let Value::Object(secrets) = secrets else {
            return Err(vec![job_error(
                &self.name,
                "secrets config should be a hash".into(),
            )]);
        };
        let setting = |name: &str| setting(name).filter(|v| !v.trim().is_empty());
        let mut errors = Vec::new();
        for (variable, entry) in secrets {
            match self.normalise_secret(variable, entry, &setting) {
                Ok(secret) => {
                    out.insert(variable.clone(), secret);
                }
                Err(err) => errors.push(err.or_variable(variable)),
            }
        }
        // GitLab memoizes the Azure server block (`@azure_key_vault_server ||=`, see
        // providers-next §1.2): every Azure secret of a job carries the first one's block,
        // so the first Azure secret's token wins.
        let first_azure = out
            .values()
            .find_map(|s| s.azure_key_vault.as_ref().map(|a| a.server.clone()));
        if let Some(server) = first_azure {
            for a in out.values_mut().filter_map(|s| s.azure_key_vault.as_mut()) {
                a.server.clone_from(&server);
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    fn normalise_secret(
        &self,
        variable: &str,
        entry: &Value,
        setting: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secret, Error> {
        let location = format!("jobs:{}:secrets:{variable}", self.name);
        let spec_err = |at: &str, m: String| {
            Error::new(ErrorKind::InvalidSpec, m)
                .with_variable(variable)
                .with_reference(at.to_owned())
        };
        let Value::Object(entry) = entry else {
            return Err(spec_err(&location, "config should be a hash".into()));
        };
        if JOB_KEYWORDS_OFTEN_NESTED.contains(&variable) {
            return Err(spec_err(
                &location,
                format!("`{variable}` is a job keyword, not a secret"),
            )
            .with_fix(format!(
                "move `{variable}:` out of `secrets:` to the job level, next to `secrets:`"
            )));
        }
        let unknown: Vec<&str> = entry
            .keys()
            .map(String::as_str)
            .filter(|k| !SECRET_KEYS.contains(k))
            .collect();
        if !unknown.is_empty() {
            return Err(spec_err(
                &location,
                format!("config contains unknown keys: {}", unknown.join(", ")),
            ));
        }
        let providers: Vec<&str> = PROVIDER_KEYS
            .iter()
            .copied()
            .filter(|k| entry.contains_key(*k))
            .collect();
        if providers.len() != 1 {
            return Err(spec_err(
                &location,
                format!(
                    "must use exactly one of these keys: {}",
                    PROVIDER_KEYS.join(", ")
                ),
            ));
        }
        let token = match entry.get("token") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(t.clone()),
            Some(_) => return Err(spec_err(&location, "token should be a string".into())),
        };
        let file = match entry.get("file") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(spec_err(&location, "file should be a boolean value".into())),
        };
        let provider = providers[0];
        let at = format!("{location}:{provider}");
        self.normalise_provider(
            provider,
            &entry[provider],
            token,
            file,
            setting,
            &location,
            &at,
        )
        .map_err(|e| e.or_variable(variable).or_reference(&at))
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one call site, all parts of one entry"
    )]
    fn normalise_provider(
        &self,
        provider: &str,
        body: &Value,
        token: Option<String>,
        file: Option<bool>,
        setting: &dyn Fn(&str) -> Option<String>,
        location: &str,
        at: &str,
    ) -> Result<Secret, Error> {
        let spec_err = |at: &str, m: String| {
            Error::new(ErrorKind::InvalidSpec, m).with_reference(at.to_owned())
        };
        let mut secret = Secret {
            file,
            token: token.clone(),
            ..Secret::default()
        };
        match provider {
            "vault" => {
                let mut vault = parse_vault(body).map_err(|m| spec_err(at, m))?;
                vault.server = self.vault_server(token.as_deref(), setting)?;
                secret.vault = Some(vault);
            }
            "aws_secrets_manager" => {
                let mut aws = parse_aws(body).map_err(|m| spec_err(at, m))?;
                aws.server = aws_server(token.as_deref(), setting)?;
                secret.aws_secrets_manager = Some(aws);
            }
            "gcp_secret_manager" => {
                let Some(token) = token.clone() else {
                    return Err(spec_err(
                        location,
                        "token is required with gcp secrets manager".into(),
                    ));
                };
                let (name, version) = parse_gcp(body).map_err(|m| spec_err(at, m))?;
                let server = GcpServer {
                    project_number: gate(setting, "GCP_PROJECT_NUMBER", GCP_GATE)?,
                    workload_identity_federation_pool_id: gate(
                        setting,
                        "GCP_WORKLOAD_IDENTITY_FEDERATION_POOL_ID",
                        GCP_GATE,
                    )?,
                    workload_identity_federation_provider_id: gate(
                        setting,
                        "GCP_WORKLOAD_IDENTITY_FEDERATION_PROVIDER_ID",
                        GCP_GATE,
                    )?,
                    jwt: token,
                };
                secret.gcp_secret_manager = Some(GcpSecret {
                    name,
                    version,
                    server,
                });
            }
            "azure_key_vault" => {
                let (name, version) = parse_azure(body).map_err(|m| spec_err(at, m))?;
                let server = AzureServer {
                    url: gate(setting, "AZURE_KEY_VAULT_SERVER_URL", AZURE_GATE)?,
                    client_id: gate(setting, "AZURE_CLIENT_ID", AZURE_GATE)?,
                    tenant_id: gate(setting, "AZURE_TENANT_ID", AZURE_GATE)?,
                    jwt: self.first_token_or(token.as_deref(), "${CI_JOB_JWT_V2}"),
                };
                secret.azure_key_vault = Some(AzureSecret {
                    name,
                    version,
                    server,
                });
            }
            "akeyless" => {
                if !body.is_object() {
                    return Err(spec_err(at, "config should be a hash".into()));
                }
                gate(setting, "AKEYLESS_ACCESS_ID", &["AKEYLESS_ACCESS_ID"])?;
                // Current runners have no Akeyless resolver: the secret reaches them with no
                // provider they know, and they skip it with a warning.
                secret.unknown.insert("akeyless".to_owned(), IgnoredAny);
            }
            "gitlab_secrets_manager" => {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    "gitlab_secrets_manager secrets are built by GitLab itself (it mints the OpenBao login)",
                )
                .with_reference(at)
                .with_fix("resolve the job payload GitLab sends (`ci-secrets resolve --job-payload`) instead"));
            }
            _ => unreachable!("PROVIDER_KEYS is exhaustive"),
        }
        Ok(secret)
    }

    /// GitLab's token choice for Vault (§4.2): with `id_tokens`, the secret's `token` or the
    /// first ID token; without, `${CI_JOB_JWT}`.
    fn vault_server(
        &self,
        token: Option<&str>,
        setting: &dyn Fn(&str) -> Option<String>,
    ) -> Result<VaultServer, Error> {
        let url = gate(setting, "VAULT_SERVER_URL", &["VAULT_SERVER_URL"])?;
        let mut data = IndexMap::new();
        data.insert(
            "jwt".to_owned(),
            Value::String(self.first_token_or(token, "${CI_JOB_JWT}")),
        );
        if let Some(role) = setting("VAULT_AUTH_ROLE") {
            data.insert("role".to_owned(), Value::String(role));
        }
        Ok(VaultServer {
            url,
            namespace: setting("VAULT_NAMESPACE"),
            auth: VaultAuth {
                name: "jwt".to_owned(),
                path: setting("VAULT_AUTH_PATH").unwrap_or_else(|| "jwt".to_owned()),
                data,
            },
        })
    }

    fn first_token_or(&self, token: Option<&str>, legacy: &str) -> String {
        match (self.id_tokens.first(), token) {
            (None, _) => legacy.to_owned(),
            (Some(_), Some(token)) => token.to_owned(),
            (Some(first), None) => format!("${}", first.name),
        }
    }
}

pub(super) const GCP_GATE: &[&str] = &[
    "GCP_PROJECT_NUMBER",
    "GCP_WORKLOAD_IDENTITY_FEDERATION_POOL_ID",
    "GCP_WORKLOAD_IDENTITY_FEDERATION_PROVIDER_ID",
];
pub(super) const AZURE_GATE: &[&str] = &[
    "AZURE_KEY_VAULT_SERVER_URL",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
];

/// A provider's gate variable: missing means GitLab drops the job with
/// `secrets_provider_not_found`.
pub(super) fn gate(
    setting: &dyn Fn(&str) -> Option<String>,
    name: &str,
    all: &[&str],
) -> Result<String, Error> {
    setting(name).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "the secrets provider can not be found (secrets_provider_not_found): {name} is not set"
            ),
        )
        .with_fix(format!(
            "define {} as CI/CD variables (or in the environment for ci-secrets); GitLab reads them when the job is created, so they cannot come from dotenv artifacts",
            all.join(", ")
        ))
    })
}

pub(super) fn aws_server(
    token: Option<&str>,
    setting: &dyn Fn(&str) -> Option<String>,
) -> Result<AwsServer, Error> {
    Ok(AwsServer {
        region: gate(setting, "AWS_REGION", &["AWS_REGION"])?,
        jwt: token.unwrap_or("$AWS_ID_TOKEN").to_owned(),
        role_arn: setting("AWS_ROLE_ARN"),
        role_session_name: setting("AWS_ROLE_SESSION_NAME"),
    })
}
