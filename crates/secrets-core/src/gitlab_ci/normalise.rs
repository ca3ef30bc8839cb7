//! A job's `secrets:` normalised as GitLab's server does it: entry keys, token choice, the
//! `server` blocks built from CI/CD variables, and the gate variables (runner-semantics §7).

use super::entries::{
    check_gitlab_secrets_manager, parse_aws, parse_azure, parse_gcp, parse_vault,
};
use super::gitlab_sm::{gitlab_sm_secret, parse_gitlab_sm};
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
        self.secrets_payload_with_warnings(setting)
            .map(|(secrets, _)| secrets)
    }

    /// [`Self::secrets_payload`], with warnings about what GitLab does that the job's author
    /// may not expect: GitLab builds each provider's `server` block once per job (its
    /// presenter memoizes it), from the job's **first** secret of that provider, so a later
    /// secret's own `token:` is ignored. The payload reproduces that; each warning names both
    /// variables and both tokens.
    pub fn secrets_payload_with_warnings(
        &self,
        setting: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Secrets, Vec<String>), Vec<Error>> {
        let mut out = Secrets::new();
        let Some(secrets) = &self.secrets else {
            return Ok((out, Vec::new()));
        };
        let Value::Object(secrets) = secrets else {
            return Err(vec![job_error(
                &self.name,
                "secrets config should be a hash".into(),
            )]);
        };
        let setting = |name: &str| setting(name).filter(|v| !v.trim().is_empty());
        let mut errors = Vec::new();
        let mut memo = Memo::default();
        for (variable, entry) in secrets {
            match self.normalise_secret(variable, entry, &setting) {
                Ok(mut secret) => {
                    memo.apply(variable, &mut secret);
                    out.insert(variable.clone(), secret);
                }
                Err(errs) => errors.extend(errs.into_iter().map(|e| e.or_variable(variable))),
            }
        }
        // GitLab memoizes the Azure server block (`@azure_key_vault_server ||=`, see
        // providers-next §1.2): every Azure secret of a job carries the first one's block,
        // so the first Azure secret's token wins.
        let first_azure = out
            .values()
            .find_map(|s| s.azure_key_vault.as_deref().map(|a| a.server.clone()));
        if let Some(server) = first_azure {
            for a in out.values_mut().filter_map(|s| s.azure_key_vault.as_mut()) {
                a.server.clone_from(&server);
            }
        }
        if errors.is_empty() {
            Ok((out, memo.warnings))
        } else {
            Err(errors)
        }
    }

    fn normalise_secret(
        &self,
        variable: &str,
        entry: &Value,
        setting: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secret, Vec<Error>> {
        let location = format!("jobs:{}:secrets:{variable}", self.name);
        let spec_err = |at: &str, m: String| {
            Error::new(ErrorKind::InvalidSpec, m)
                .with_variable(variable)
                .with_reference(at.to_owned())
        };
        if JOB_KEYWORDS_OFTEN_NESTED.contains(&variable) {
            return Err(vec![
                spec_err(
                    &location,
                    format!("`{variable}` is a job keyword, not a secret"),
                )
                .with_fix(format!(
                    "move `{variable}:` out of `secrets:` to the job level, next to `secrets:`"
                )),
            ]);
        }
        // `Entry::Secret`'s own validations, all reported together; its children (the
        // provider entry, `file`) are only checked when these pass.
        let empty = serde_json::Map::new();
        let mut problems = Vec::new();
        let entry = match entry {
            Value::Object(entry) => entry,
            _ => {
                problems.push("config should be a hash".to_owned());
                &empty
            }
        };
        let unknown: Vec<&str> = entry
            .keys()
            .map(String::as_str)
            .filter(|k| !SECRET_KEYS.contains(k))
            .collect();
        if !unknown.is_empty() {
            problems.push(format!(
                "config contains unknown keys: {}",
                unknown.join(", ")
            ));
        }
        let providers: Vec<&str> = PROVIDER_KEYS
            .iter()
            .copied()
            .filter(|k| entry.contains_key(*k))
            .collect();
        if providers.len() != 1 {
            problems.push(format!(
                "config must use exactly one of these keys: {}",
                PROVIDER_KEYS.join(", ")
            ));
        }
        let token = match entry.get("token") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(t.clone()),
            Some(_) => {
                problems.push("token should be a string".into());
                None
            }
        };
        if !super::entries::is_blank(entry.get("gcp_secret_manager"))
            && token.as_deref().is_none_or(|t| t.trim().is_empty())
        {
            problems.push("token is required with gcp secrets manager".into());
        }
        if !problems.is_empty() {
            return Err(problems
                .into_iter()
                .map(|m| spec_err(&location, m))
                .collect());
        }
        let provider = providers[0];
        let at = format!("{location}:{provider}");
        let file = match entry.get("file") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(spec_err(
                &format!("{location}:file"),
                "config should be a boolean value".into(),
            )),
        };
        let secret = self
            .normalise_provider(
                provider,
                &entry[provider],
                token,
                *file.as_ref().unwrap_or(&None),
                setting,
                &at,
            )
            .map_err(|errs| {
                errs.into_iter()
                    .map(|e| e.or_variable(variable).or_reference(&at))
                    .collect::<Vec<_>>()
            });
        match (secret, file) {
            (Ok(secret), Ok(_)) => Ok(secret),
            (Ok(_), Err(file)) => Err(vec![file]),
            (Err(errs), Ok(_)) => Err(errs),
            (Err(mut errs), Err(file)) => {
                errs.push(file);
                Err(errs)
            }
        }
    }

    fn normalise_provider(
        &self,
        provider: &str,
        body: &Value,
        token: Option<String>,
        file: Option<bool>,
        setting: &dyn Fn(&str) -> Option<String>,
        at: &str,
    ) -> Result<Secret, Vec<Error>> {
        let spec_errs = |problems: Vec<String>| {
            problems
                .into_iter()
                .map(|m| Error::new(ErrorKind::InvalidSpec, m).with_reference(at.to_owned()))
                .collect::<Vec<_>>()
        };
        let mut secret = Secret {
            file,
            token: token.clone(),
            ..Secret::default()
        };
        match provider {
            "vault" => {
                let mut vault = parse_vault(body).map_err(spec_errs)?;
                vault.server = self
                    .vault_server(token.as_deref(), setting)
                    .map_err(|e| vec![e])?;
                secret.vault = Some(Box::new(vault));
            }
            "aws_secrets_manager" => {
                let mut aws = parse_aws(body).map_err(spec_errs)?;
                aws.server = aws_server(token.as_deref(), setting).map_err(|e| vec![e])?;
                secret.aws_secrets_manager = Some(Box::new(aws));
            }
            "gcp_secret_manager" => {
                let (name, version) = parse_gcp(body).map_err(spec_errs)?;
                let gate = |name: &str| gate(setting, name, GCP_GATE).map_err(|e| vec![e]);
                let server = GcpServer {
                    project_number: gate("GCP_PROJECT_NUMBER")?,
                    workload_identity_federation_pool_id: gate(
                        "GCP_WORKLOAD_IDENTITY_FEDERATION_POOL_ID",
                    )?,
                    workload_identity_federation_provider_id: gate(
                        "GCP_WORKLOAD_IDENTITY_FEDERATION_PROVIDER_ID",
                    )?,
                    jwt: token.unwrap_or_default().into(),
                    // Extension: opt-in impersonation, gcloud's variable.
                    impersonate_service_account: setting(
                        "CLOUDSDK_AUTH_IMPERSONATE_SERVICE_ACCOUNT",
                    )
                    .unwrap_or_default(),
                };
                secret.gcp_secret_manager = Some(Box::new(GcpSecret {
                    name,
                    version,
                    server,
                }));
            }
            "azure_key_vault" => {
                let (name, version) = parse_azure(body).map_err(spec_errs)?;
                let gate = |name: &str| gate(setting, name, AZURE_GATE).map_err(|e| vec![e]);
                let server = AzureServer {
                    url: gate("AZURE_KEY_VAULT_SERVER_URL")?,
                    client_id: gate("AZURE_CLIENT_ID")?,
                    tenant_id: gate("AZURE_TENANT_ID")?,
                    jwt: self
                        .first_token_or(token.as_deref(), "${CI_JOB_JWT_V2}")
                        .into(),
                };
                secret.azure_key_vault = Some(Box::new(AzureSecret {
                    name,
                    version,
                    server,
                }));
            }
            "akeyless" => {
                if !body.is_object() {
                    return Err(spec_errs(vec!["config should be a hash".into()]));
                }
                gate(setting, "AKEYLESS_ACCESS_ID", &["AKEYLESS_ACCESS_ID"])
                    .map_err(|e| vec![e])?;
                // Current runners have no Akeyless resolver: the secret reaches them with no
                // provider they know, and they skip it with a warning.
                secret.unknown.insert("akeyless".to_owned(), IgnoredAny);
            }
            "gitlab_secrets_manager" => {
                check_gitlab_secrets_manager(body).map_err(spec_errs)?;
                let (name, source) = parse_gitlab_sm(body).map_err(|m| spec_errs(vec![m]))?;
                let first = self.id_tokens.first().map(|t| t.name.as_str());
                secret.gitlab_secrets_manager = Some(Box::new(
                    gitlab_sm_secret(&name, source.as_deref(), first, setting)
                        .map_err(|e| vec![e.or_reference(at)])?,
                ));
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
        jwt: token.unwrap_or("$AWS_ID_TOKEN").into(),
        role_arn: setting("AWS_ROLE_ARN"),
        role_session_name: setting("AWS_ROLE_SESSION_NAME"),
    })
}

/// GitLab's presenter builds each provider's `server` block once per job
/// (`@vault_server ||= ...`, and the same for AWS, GCP and Azure): the first secret of a
/// provider, in file order, decides the token every later one gets.
#[derive(Default)]
struct Memo {
    vault: Option<(String, VaultServer)>,
    aws: Option<(String, AwsServer)>,
    gcp: Option<(String, GcpServer)>,
    azure: Option<(String, AzureServer)>,
    warnings: Vec<String>,
}

impl Memo {
    fn apply(&mut self, variable: &str, secret: &mut Secret) {
        let token = secret.token.clone();
        let warnings = &mut self.warnings;
        if let Some(v) = &mut secret.vault {
            let own = v.server.auth.data_str("jwt").unwrap_or_default();
            let first = reuse(&mut self.vault, variable, &mut v.server, |s| {
                s.auth.data_str("jwt").unwrap_or_default()
            });
            warn_ignored(warnings, "Vault", variable, token.as_deref(), &own, first);
        }
        if let Some(a) = &mut secret.aws_secrets_manager {
            let own = a.server.jwt.expose().to_owned();
            let first = reuse(&mut self.aws, variable, &mut a.server, |s| {
                s.jwt.expose().to_owned()
            });
            warn_ignored(warnings, "AWS", variable, token.as_deref(), &own, first);
        }
        if let Some(g) = &mut secret.gcp_secret_manager {
            let own = g.server.jwt.expose().to_owned();
            let first = reuse(&mut self.gcp, variable, &mut g.server, |s| {
                s.jwt.expose().to_owned()
            });
            warn_ignored(warnings, "GCP", variable, token.as_deref(), &own, first);
        }
        if let Some(z) = &mut secret.azure_key_vault {
            let own = z.server.jwt.expose().to_owned();
            let first = reuse(&mut self.azure, variable, &mut z.server, |s| {
                s.jwt.expose().to_owned()
            });
            warn_ignored(warnings, "Azure", variable, token.as_deref(), &own, first);
        }
    }
}

/// Replaces `server` by the memoized block, or memoizes it. Returns the first secret's
/// variable and token when they differ from this secret's own.
fn reuse<S: Clone>(
    memo: &mut Option<(String, S)>,
    variable: &str,
    server: &mut S,
    jwt: impl Fn(&S) -> String,
) -> Option<(String, String)> {
    match memo {
        None => {
            *memo = Some((variable.to_owned(), server.clone()));
            None
        }
        Some((first, kept)) => {
            let differs = jwt(kept) != jwt(server);
            *server = kept.clone();
            differs.then(|| (first.clone(), jwt(kept)))
        }
    }
}

fn warn_ignored(
    warnings: &mut Vec<String>,
    provider: &str,
    variable: &str,
    token: Option<&str>,
    own: &str,
    first: Option<(String, String)>,
) {
    let Some((first, kept)) = first else { return };
    let own = crate::payload::token_reference(own);
    let kept = crate::payload::token_reference(&kept);
    let what = match token {
        Some(_) => format!("its `token: {own}` is ignored"),
        None => format!("it does not log in with {own}"),
    };
    warnings.push(format!(
        "{variable}: {what}: GitLab builds one {provider} server block per job, from the first {provider} secret {first}, so {variable} logs in with {first}'s token {kept}; put secrets that need another token in another job"
    ));
}
