//! The provider entries of a secret (`vault:`, `aws_secrets_manager:`, `gcp_secret_manager:`,
//! `azure_key_vault:`), short and hash forms, with GitLab's validation messages.

use crate::payload::{AwsSecret, AwsServer, VaultEngine, VaultSecret};
use serde_json::{Map, Value};

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

/// Rails' `blank?`: nil, an empty or whitespace string, an empty array or hash, false.
pub(super) fn is_blank(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    }
}

/// GitLab's `allowed_keys` validator: `<prefix>config contains unknown keys: a, b`.
pub(super) fn unknown_keys(
    map: &Map<String, Value>,
    allowed: &[&str],
    prefix: &str,
    problems: &mut Vec<String>,
) {
    let unknown: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if !unknown.is_empty() {
        problems.push(format!(
            "{prefix}config contains unknown keys: {}",
            unknown.join(", ")
        ));
    }
}

/// `validates :<key>, presence: true, type: String` (in that order; both may fail).
fn present_string(map: &Map<String, Value>, key: &str, prefix: &str, problems: &mut Vec<String>) {
    let value = map.get(key);
    if is_blank(value) {
        problems.push(format!("{prefix}{key} can't be blank"));
    }
    if !matches!(value, Some(Value::String(_))) {
        problems.push(format!("{prefix}{key} should be a string"));
    }
}

fn text_of(map: &Map<String, Value>, key: &str) -> String {
    map.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// `vault:` (`Entry::Vault::Secret`). GitLab's entry is a `Simplifiable` whose strategies never
/// learn their key, so their messages start with the strategy's name (`hash strategy path
/// can't be blank`), and the nested engine's with `engine`.
pub(super) fn parse_vault(body: &Value) -> Result<VaultSecret, Vec<String>> {
    match body {
        Value::String(text) => {
            if text.trim().is_empty() {
                return Err(vec!["string strategy config can't be blank".into()]);
            }
            Ok(parse_vault_short(text))
        }
        Value::Object(map) => {
            const HASH: &str = "hash strategy ";
            let mut problems = Vec::new();
            unknown_keys(map, &["engine", "path", "field"], HASH, &mut problems);
            present_string(map, "path", HASH, &mut problems);
            present_string(map, "field", HASH, &mut problems);
            let engine = map.get("engine");
            if is_blank(engine) {
                problems.push(format!("{HASH}engine can't be blank"));
            }
            if !matches!(engine, Some(Value::Object(_))) {
                problems.push(format!("{HASH}engine should be a hash"));
            }
            if !problems.is_empty() {
                // An invalid entry does not compose its children: the engine is not checked.
                return Err(problems);
            }
            let Some(Value::Object(engine)) = engine else {
                unreachable!("checked above")
            };
            parse_vault_engine(engine)?;
            Ok(VaultSecret {
                engine: VaultEngine {
                    name: text_of(engine, "name"),
                    path: text_of(engine, "path"),
                },
                path: text_of(map, "path"),
                field: text_of(map, "field"),
                ..VaultSecret::default()
            })
        }
        _ => Err(vec!["unknown strategy should be a hash or a string".into()]),
    }
}

/// `engine:` (`Entry::Vault::Engine`): exactly `name` and `path`, present strings. The name is
/// not checked against a list (the runner rejects unknown engines).
fn parse_vault_engine(engine: &Map<String, Value>) -> Result<(), Vec<String>> {
    const ENGINE: &str = "engine ";
    let mut problems = Vec::new();
    unknown_keys(engine, &["name", "path"], ENGINE, &mut problems);
    let missing: Vec<&str> = ["name", "path"]
        .into_iter()
        .filter(|k| !engine.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "{ENGINE}config missing required keys: {}",
            missing.join(", ")
        ));
    }
    present_string(engine, "name", ENGINE, &mut problems);
    present_string(engine, "path", ENGINE, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// `aws_secrets_manager:` (`Entry::AwsSecretsManager::Secret`); Rails drops `_id` from the
/// attribute names in its messages (`secret`, `version`).
pub(super) fn parse_aws(body: &Value) -> Result<AwsSecret, Vec<String>> {
    match body {
        Value::String(text) => {
            let mut problems = Vec::new();
            if text.trim().is_empty() {
                problems.push("string strategy config can't be blank".to_owned());
            }
            let parsed = parse_aws_short(text);
            if parsed.is_none() {
                problems.push("string strategy config must contain at most one '#'".to_owned());
            }
            match parsed {
                Some((secret_id, field)) if problems.is_empty() => Ok(AwsSecret {
                    secret_id: secret_id.unwrap_or_default(),
                    field,
                    ..AwsSecret::default()
                }),
                _ => Err(problems),
            }
        }
        Value::Object(map) => {
            const HASH: &str = "hash strategy ";
            let mut problems = Vec::new();
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
                HASH,
                &mut problems,
            );
            // `type: String, presence: true`: the type is checked first.
            if !matches!(map.get("secret_id"), Some(Value::String(_))) {
                problems.push(format!("{HASH}secret should be a string"));
            }
            if is_blank(map.get("secret_id")) {
                problems.push(format!("{HASH}secret can't be blank"));
            }
            let mut text = |key: &str, label: &str| match map.get(key) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    problems.push(format!("{HASH}{label} should be a string"));
                    None
                }
            };
            let secret = AwsSecret {
                secret_id: map
                    .get("secret_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                region: text("region", "region"),
                version_id: text("version_id", "version"),
                version_stage: text("version_stage", "version stage"),
                role_arn: text("role_arn", "role arn"),
                role_session_name: text("role_session_name", "role session name"),
                field: text("field", "field"),
                server: AwsServer::default(),
            };
            if problems.is_empty() {
                Ok(secret)
            } else {
                Err(problems)
            }
        }
        _ => Err(vec!["unknown strategy should be a hash or a string".into()]),
    }
}

/// GCP, Azure and GitLab Secrets Manager entries: a hash with `name` (a present string) and
/// the given other keys. These entries know their key, so their messages carry no prefix.
fn name_entry(body: &Value, allowed: &[&str], problems: &mut Vec<String>) -> Map<String, Value> {
    let empty = Map::new();
    let map = match body {
        Value::Object(map) => map,
        _ => {
            problems.push("config should be a hash".into());
            &empty
        }
    };
    unknown_keys(map, allowed, "", problems);
    present_string(map, "name", "", problems);
    map.clone()
}

/// `gcp_secret_manager:` (`Entry::GcpSecretManager::Secret`): `version` is a string or an
/// integer (GitLab's `alphanumeric`), `'latest'` when absent.
pub(super) fn parse_gcp(body: &Value) -> Result<(String, String), Vec<String>> {
    let mut problems = Vec::new();
    let map = name_entry(body, &["name", "version"], &mut problems);
    let version = match map.get("version") {
        None | Some(Value::Null) => "latest".to_owned(),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        Some(Value::String(v)) => v.clone(),
        Some(_) => {
            problems.push("version must be an alphanumeric string".into());
            String::new()
        }
    };
    if problems.is_empty() {
        Ok((text_of(&map, "name"), version))
    } else {
        Err(problems)
    }
}

/// `azure_key_vault:` (`Entry::AzureKeyVault::Secret`): `version` a string or absent.
pub(super) fn parse_azure(body: &Value) -> Result<(String, Option<String>), Vec<String>> {
    let mut problems = Vec::new();
    let map = name_entry(body, &["name", "version"], &mut problems);
    let version = match map.get("version") {
        None | Some(Value::Null) => None,
        Some(Value::String(v)) => Some(v.clone()),
        Some(_) => {
            problems.push("version should be a string".into());
            None
        }
    };
    if problems.is_empty() {
        Ok((text_of(&map, "name"), version))
    } else {
        Err(problems)
    }
}

/// `gitlab_secrets_manager:` (`Entry::GitlabSecretsManager::Secret`): `name`, and `source`
/// `project` or `group/<full path>`. Whether the group is reachable only GitLab knows.
pub(super) fn check_gitlab_secrets_manager(body: &Value) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let map = name_entry(body, &["name", "source"], &mut problems);
    match map.get("source") {
        None | Some(Value::Null) => {}
        Some(Value::String(source)) => {
            let group_ok = source.strip_prefix("group/").is_some_and(|path| {
                !path.is_empty()
                    && path
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
            });
            if source != "project" && !group_ok {
                problems.push(
                    "source must follow the format group/group_full_path or 'project'".into(),
                );
            }
        }
        Some(_) => problems.push("source should be a string".into()),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
