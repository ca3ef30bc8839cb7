//! `.gitlab-ci.yml`: a job's `secrets:`, `id_tokens:` and `variables:`, normalised and
//! validated the way GitLab's server does it (runner-semantics §7), producing the `secrets`
//! object GitLab would send to a runner, `server` blocks included.
//!
//! Supported on top of plain jobs: global `variables:`, `default:id_tokens`, `extends:`
//! (deep merge, as GitLab does), `inherit:default` and `inherit:variables`, YAML anchors
//! and merge keys, and local `include:` files ([`CiConfig::load`]; remote, project,
//! template and component includes are reported, not followed).

use crate::error::{Error, ErrorKind};
use crate::payload::{
    AwsSecret, AwsServer, AzureSecret, AzureServer, GcpSecret, GcpServer, Secret, Secrets,
    VaultAuth, VaultEngine, VaultSecret, VaultServer,
};
use indexmap::IndexMap;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

mod include;
pub use include::{Include, LoadedConfig, MAX_INCLUDED_FILES};

/// Top-level keys that are not jobs.
const RESERVED: &[&str] = &[
    "default",
    "include",
    "stages",
    "variables",
    "workflow",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
    "types",
    "spec",
];

/// The provider keys GitLab accepts on a secret, in the order its error message lists them.
const PROVIDER_KEYS: &[&str] = &[
    "vault",
    "azure_key_vault",
    "gcp_secret_manager",
    "akeyless",
    "gitlab_secrets_manager",
    "aws_secrets_manager",
];

/// Job keywords people put under `secrets:` by mistake (GitLab's own docs once did).
const JOB_KEYWORDS_OFTEN_NESTED: &[&str] = &["id_tokens", "variables"];

const SECRET_KEYS: &[&str] = &[
    "vault",
    "file",
    "azure_key_vault",
    "gcp_secret_manager",
    "akeyless",
    "gitlab_secrets_manager",
    "token",
    "aws_secrets_manager",
];

/// A parsed `.gitlab-ci.yml`.
#[derive(Debug, Clone)]
pub struct CiConfig {
    root: Map<String, Value>,
}

/// One `variables:` entry of a `.gitlab-ci.yml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiVariable {
    /// The name.
    pub key: String,
    /// The value as written (numbers as their literal).
    pub value: String,
    /// `expand: false` makes the variable raw.
    pub expand: bool,
}

/// One `id_tokens:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdTokenSpec {
    /// The variable that will hold the token.
    pub name: String,
    /// The audiences asked for.
    pub aud: Vec<String>,
}

/// A job of a `.gitlab-ci.yml` with `extends:` and `default:` applied.
#[derive(Debug, Clone)]
pub struct CiJob {
    name: String,
    secrets: Option<Value>,
    id_tokens: Vec<IdTokenSpec>,
    variables: Vec<CiVariable>,
}

impl CiConfig {
    /// Parses YAML text.
    pub fn from_yaml(text: &str) -> Result<Self, Error> {
        // Strict booleans: a field or path such as `n` or `on` stays a string. Duplicate keys:
        // the last wins, as in Ruby's YAML parser.
        let options = serde_saphyr::options! {
            duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::LastWins,
            strict_booleans: true,
        };
        let value: Value = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
            let first = e.to_string();
            let first = first.lines().next().unwrap_or("syntax error").to_owned();
            Error::new(
                ErrorKind::InvalidSpec,
                format!("the YAML is malformed: {first}"),
            )
            .with_reference(".gitlab-ci.yml")
        })?;
        match value {
            Value::Object(root) => Ok(Self { root }),
            Value::Null => Ok(Self { root: Map::new() }),
            _ => Err(Error::new(
                ErrorKind::InvalidSpec,
                "the top level must be a mapping of job names to jobs",
            )
            .with_reference(".gitlab-ci.yml")),
        }
    }

    /// The names of the jobs (not hidden `.jobs`, not global keywords), in file order.
    pub fn job_names(&self) -> Vec<&str> {
        self.root
            .iter()
            .filter(|(k, v)| {
                !k.starts_with('.') && !RESERVED.contains(&k.as_str()) && v.is_object()
            })
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// The job named `name`, with `extends:`, `default:` and global variables applied.
    pub fn job(&self, name: &str) -> Result<CiJob, Error> {
        if RESERVED.contains(&name) {
            return Err(job_error(
                name,
                format!("`{name}` is a global keyword, not a job"),
            ));
        }
        let Some(Value::Object(_)) = self.root.get(name) else {
            let jobs = self.job_names().join(", ");
            return Err(job_error(name, "no such job in the file".to_owned())
                .with_fix(format!("the jobs are: {jobs}")));
        };
        let job = self.resolve_extends(name, &mut Vec::new())?;
        let inherit = Inherit::of(&job);

        let mut id_tokens = Map::new();
        if inherit.default
            && let Some(Value::Object(default)) = self.root.get("default")
            && let Some(Value::Object(tokens)) = default.get("id_tokens")
        {
            id_tokens = tokens.clone();
        }
        if let Some(tokens) = job.get("id_tokens") {
            match tokens {
                Value::Object(tokens) => id_tokens = tokens.clone(),
                _ => return Err(job_error(name, "id_tokens config should be a hash".into())),
            }
        }
        let id_tokens = id_tokens
            .into_iter()
            .map(|(token, spec)| parse_id_token(name, token, &spec))
            .collect::<Result<_, _>>()?;

        let mut variables = Vec::new();
        if let Some(globals) = self.root.get("variables") {
            for var in parse_variables(name, "variables", globals)? {
                if inherit.variable(&var.key) {
                    variables.push(var);
                }
            }
        }
        if let Some(own) = job.get("variables") {
            variables.extend(parse_variables(
                name,
                &format!("jobs:{name}:variables"),
                own,
            )?);
        }

        Ok(CiJob {
            name: name.to_owned(),
            secrets: job.get("secrets").cloned(),
            id_tokens,
            variables,
        })
    }

    /// Applies `extends:` recursively (GitLab allows 11 levels; so do we).
    fn resolve_extends(
        &self,
        name: &str,
        chain: &mut Vec<String>,
    ) -> Result<Map<String, Value>, Error> {
        if chain.iter().any(|n| n == name) || chain.len() > 10 {
            return Err(job_error(
                chain.first().map_or(name, String::as_str),
                format!("extends chain is circular or too deep at `{name}`"),
            ));
        }
        let Some(Value::Object(job)) = self.root.get(name) else {
            return Err(job_error(
                chain.first().map_or(name, String::as_str),
                format!("extends names `{name}`, which is not defined in this file"),
            ));
        };
        chain.push(name.to_owned());
        let parents = match job.get("extends") {
            None => Vec::new(),
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) => many
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    job_error(
                        name,
                        "extends should be a string or an array of strings".into(),
                    )
                })?,
            Some(_) => {
                return Err(job_error(
                    name,
                    "extends should be a string or an array of strings".into(),
                ));
            }
        };
        let mut merged = Map::new();
        for parent in parents {
            let parent = self.resolve_extends(&parent, chain)?;
            deep_merge(&mut merged, parent);
        }
        let mut own = job.clone();
        own.remove("extends");
        deep_merge(&mut merged, own);
        chain.pop();
        Ok(merged)
    }
}

/// GitLab's `extends` merge: hashes merge key by key, anything else is replaced.
fn deep_merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Object(existing)), Value::Object(incoming)) => {
                deep_merge(existing, incoming)
            }
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

struct Inherit {
    default: bool,
    variables: Option<Vec<String>>,
    all_variables: bool,
}

impl Inherit {
    fn of(job: &Map<String, Value>) -> Self {
        let mut out = Self {
            default: true,
            variables: None,
            all_variables: true,
        };
        if let Some(Value::Object(inherit)) = job.get("inherit") {
            match inherit.get("default") {
                Some(Value::Bool(b)) => out.default = *b,
                Some(Value::Array(keys)) => out.default = keys.iter().any(|k| k == "id_tokens"),
                _ => {}
            }
            match inherit.get("variables") {
                Some(Value::Bool(b)) => out.all_variables = *b,
                Some(Value::Array(keys)) => {
                    out.variables = Some(
                        keys.iter()
                            .filter_map(|k| k.as_str().map(str::to_owned))
                            .collect(),
                    );
                }
                _ => {}
            }
        }
        out
    }

    fn variable(&self, key: &str) -> bool {
        match &self.variables {
            Some(list) => list.iter().any(|k| k == key),
            None => self.all_variables,
        }
    }
}

fn job_error(job: &str, message: String) -> Error {
    Error::new(ErrorKind::InvalidSpec, message).with_reference(format!("jobs:{job}"))
}

fn parse_id_token(job: &str, name: String, spec: &Value) -> Result<IdTokenSpec, Error> {
    let location = format!("jobs:{job}:id_tokens:{name}");
    let err =
        |m: &str| Error::new(ErrorKind::InvalidSpec, m.to_owned()).with_reference(location.clone());
    let Value::Object(spec) = spec else {
        return Err(err("config should be a hash"));
    };
    let aud = match spec.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|a| a.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| err("aud should be a string or an array of strings"))?,
        None => return Err(err("aud can't be blank")),
        Some(_) => return Err(err("aud should be a string or an array of strings")),
    };
    Ok(IdTokenSpec { name, aud })
}

fn parse_variables(job: &str, location: &str, value: &Value) -> Result<Vec<CiVariable>, Error> {
    let Value::Object(map) = value else {
        return Err(job_error(
            job,
            format!("{location} config should be a hash of key value pairs"),
        ));
    };
    map.iter()
        .map(|(key, value)| {
            let (value, expand) = match value {
                Value::Object(full) => (
                    full.get("value")
                        .map(scalar_text)
                        .unwrap_or(Some(String::new())),
                    full.get("expand").and_then(Value::as_bool).unwrap_or(true),
                ),
                other => (scalar_text(other), true),
            };
            let value = value.ok_or_else(|| {
                job_error(
                    job,
                    format!("{location}:{key} should be a string or a number"),
                )
            })?;
            Ok(CiVariable {
                key: key.clone(),
                value,
                expand,
            })
        })
        .collect()
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

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

const GCP_GATE: &[&str] = &[
    "GCP_PROJECT_NUMBER",
    "GCP_WORKLOAD_IDENTITY_FEDERATION_POOL_ID",
    "GCP_WORKLOAD_IDENTITY_FEDERATION_PROVIDER_ID",
];
const AZURE_GATE: &[&str] = &[
    "AZURE_KEY_VAULT_SERVER_URL",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
];

/// A provider's gate variable: missing means GitLab drops the job with
/// `secrets_provider_not_found`.
fn gate(
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

fn aws_server(
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

/// Splits the Vault short form `path/to/secret/field@mount` (§7.2).
pub fn parse_vault_short(text: &str) -> VaultSecret {
    let (secret, mount) = match text.rfind('@') {
        Some(at) if at > 0 => (&text[..at], &text[at + 1..]),
        _ => (text, "kv-v2"),
    };
    let (path, field) = match secret.rfind('/') {
        Some(slash) => (&secret[..slash], &secret[slash + 1..]),
        None => ("", secret),
    };
    VaultSecret {
        engine: VaultEngine {
            name: "kv-v2".to_owned(),
            path: mount.to_owned(),
        },
        path: path.to_owned(),
        field: field.to_owned(),
        ..VaultSecret::default()
    }
}

/// Splits the AWS short form `secret_id#field` (§7.3) into the id and field, dropping
/// trailing empty parts as Ruby's `String#split` does. `None` when there is more than one `#`.
pub fn parse_aws_short(text: &str) -> Option<(Option<String>, Option<String>)> {
    let mut parts: Vec<&str> = text.split('#').collect();
    if parts.len() > 2 {
        return None;
    }
    while parts.last() == Some(&"") {
        parts.pop();
    }
    Some((
        parts.first().map(|s| (*s).to_owned()),
        parts.get(1).map(|s| (*s).to_owned()),
    ))
}

fn is_blank(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        _ => false,
    }
}

fn unknown_keys(map: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    let unknown: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "hash strategy config contains unknown keys: {}",
            unknown.join(", ")
        ))
    }
}

fn parse_vault(body: &Value) -> Result<VaultSecret, String> {
    match body {
        Value::String(text) => {
            if text.trim().is_empty() {
                return Err("string strategy config can't be blank".into());
            }
            Ok(parse_vault_short(text))
        }
        Value::Object(map) => {
            unknown_keys(map, &["engine", "path", "field"])?;
            let mut problems = Vec::new();
            for key in ["path", "field"] {
                if is_blank(map.get(key)) {
                    problems.push(format!("hash strategy {key} can't be blank"));
                } else if !map[key].is_string() {
                    problems.push(format!("hash strategy {key} should be a string"));
                }
            }
            let engine = match map.get("engine") {
                Some(Value::Object(engine)) => {
                    let unknown: Vec<&str> = engine
                        .keys()
                        .map(String::as_str)
                        .filter(|k| !["name", "path"].contains(k))
                        .collect();
                    if !unknown.is_empty() {
                        problems.push(format!(
                            "engine config contains unknown keys: {}",
                            unknown.join(", ")
                        ));
                    }
                    for key in ["name", "path"] {
                        if is_blank(engine.get(key)) {
                            problems.push(format!("engine {key} can't be blank"));
                        } else if !engine[key].is_string() {
                            problems.push(format!("engine {key} should be a string"));
                        }
                    }
                    VaultEngine {
                        name: engine
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        path: engine
                            .get("path")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    }
                }
                _ => {
                    problems.push("hash strategy engine should be a hash".into());
                    VaultEngine::default()
                }
            };
            if !problems.is_empty() {
                return Err(problems.join(", "));
            }
            Ok(VaultSecret {
                engine,
                path: map["path"].as_str().unwrap_or_default().to_owned(),
                field: map["field"].as_str().unwrap_or_default().to_owned(),
                ..VaultSecret::default()
            })
        }
        _ => Err("should be a hash or a string".into()),
    }
}

fn parse_aws(body: &Value) -> Result<AwsSecret, String> {
    match body {
        Value::String(text) => {
            if text.trim().is_empty() {
                return Err("string strategy config can't be blank".into());
            }
            let (secret_id, field) = parse_aws_short(text)
                .ok_or_else(|| "string strategy config must contain at most one '#'".to_owned())?;
            Ok(AwsSecret {
                secret_id: secret_id.unwrap_or_default(),
                field,
                ..AwsSecret::default()
            })
        }
        Value::Object(map) => {
            unknown_keys(
                map,
                &[
                    "secret_id",
                    "region",
                    "version_id",
                    "version_stage",
                    "role_arn",
                    "role_session_name",
                    "field",
                ],
            )?;
            let mut problems = Vec::new();
            if is_blank(map.get("secret_id")) {
                problems.push("hash strategy secret can't be blank".to_owned());
            }
            let mut text = |key: &str, label: &str| match map.get(key) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    problems.push(format!("hash strategy {label} should be a string"));
                    None
                }
            };
            let secret = AwsSecret {
                secret_id: text("secret_id", "secret").unwrap_or_default(),
                field: text("field", "field"),
                version_id: text("version_id", "version"),
                version_stage: text("version_stage", "version stage"),
                region: text("region", "region"),
                role_arn: text("role_arn", "role arn"),
                role_session_name: text("role_session_name", "role session name"),
                server: AwsServer::default(),
            };
            if problems.is_empty() {
                Ok(secret)
            } else {
                Err(problems.join(", "))
            }
        }
        _ => Err("should be a hash or a string".into()),
    }
}

/// GCP and Azure entries: only `name` and `version`, and `name` a present string.
fn name_and_version_keys(map: &Map<String, Value>) -> Result<String, String> {
    unknown_keys(map, &["name", "version"]).map_err(|m| m.replace("hash strategy ", ""))?;
    match map.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => Ok(n.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => Err("name can't be blank".into()),
        Some(_) => Err("name should be a string".into()),
    }
}

fn parse_gcp(body: &Value) -> Result<(String, String), String> {
    let Value::Object(map) = body else {
        return Err("config should be a hash".into());
    };
    let name = name_and_version_keys(map)?;
    let version = match map.get("version") {
        None | Some(Value::Null) => "latest".to_owned(),
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        Some(Value::String(v)) if !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric()) => {
            v.clone()
        }
        Some(_) => return Err("version must be alphanumeric".into()),
    };
    Ok((name, version))
}

fn parse_azure(body: &Value) -> Result<(String, Option<String>), String> {
    let Value::Object(map) = body else {
        return Err("config should be a hash".into());
    };
    let name = name_and_version_keys(map)?;
    let version = match map.get("version") {
        None | Some(Value::Null) => None,
        Some(Value::String(v)) => Some(v.clone()),
        Some(_) => return Err("version should be a string".into()),
    };
    Ok((name, version))
}

#[cfg(test)]
mod tests;
