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

pub(super) fn is_blank(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        _ => false,
    }
}

pub(super) fn unknown_keys(map: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
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

pub(super) fn parse_vault(body: &Value) -> Result<VaultSecret, String> {
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

pub(super) fn parse_aws(body: &Value) -> Result<AwsSecret, String> {
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
pub(super) fn name_and_version_keys(map: &Map<String, Value>) -> Result<String, String> {
    unknown_keys(map, &["name", "version"]).map_err(|m| m.replace("hash strategy ", ""))?;
    match map.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => Ok(n.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => Err("name can't be blank".into()),
        Some(_) => Err("name should be a string".into()),
    }
}

pub(super) fn parse_gcp(body: &Value) -> Result<(String, String), String> {
    let Value::Object(map) = body else {
        return Err("config should be a hash".into());
    };
    let name = name_and_version_keys(map)?;
    // GitLab's `AlphanumericValidator` checks the type only (String, Symbol or Integer), and
    // the entry emits `version&.to_s || 'latest'` (gitlabhq `lib/gitlab/config/entry/
    // validators.rb`, `ee/lib/gitlab/ci/config/entry/gcp_secret_manager/secret.rb`).
    let version = match map.get("version") {
        None | Some(Value::Null) => "latest".to_owned(),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        Some(Value::String(v)) => v.clone(),
        Some(_) => return Err("version must be an alphanumeric string".into()),
    };
    Ok((name, version))
}

pub(super) fn parse_azure(body: &Value) -> Result<(String, Option<String>), String> {
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
