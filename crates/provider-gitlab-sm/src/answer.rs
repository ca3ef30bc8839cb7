//! The field of a kv read's answer: `data.data[field]` for kv-v2 (`data[field]` for the
//! other engines), which must be a JSON string (`""` allowed), as GitLab Runner requires.

use provider_http::Failure;
use provider_vault::EngineKind;
use secrets_core::{ErrorKind, SecretValue};
use serde_json::Value;
use zeroize::Zeroizing;

/// The field `field` of the answer `body` to a read of `logical` at `server` (kv-v2:
/// `data.data[field]`, other engines `data[field]`), which must be a JSON string; or why there
/// is none. Never quotes a value; the parsed answer's strings are zeroized.
pub fn take_field(
    body: &[u8],
    engine: EngineKind,
    field: &str,
    logical: &str,
    server: &str,
) -> Result<SecretValue, Failure> {
    let mut parsed: Value = serde_json::from_slice(body).map_err(|_| {
        Failure::new(
            ErrorKind::Unexpected,
            format!("the answer to GET {logical} at {server} is not JSON"),
        )
    })?;
    let data = match engine {
        EngineKind::KvV2 => parsed.get_mut("data").and_then(|d| d.get_mut("data")),
        _ => parsed.get_mut("data"),
    };
    let not_found = || {
        Failure::new(
            ErrorKind::NotFound,
            format!("secret not found: GET {logical} at {server} returned no data"),
        )
        .with_fix(
            "create the secret in the project's or group's secrets (Secure > Secrets manager), \
             or check its name and `source:`",
        )
    };
    let Some(Value::Object(map)) = data else {
        // Null data (a deleted version) or no data at all.
        return Err(not_found());
    };
    let result = match map.get_mut(field) {
        None => Err(Failure::new(
            ErrorKind::NotFound,
            format!("secret not found: field {field:?} is not in {logical} at {server}"),
        )
        .with_fix("GitLab stores the value under field `value`; the secret has another shape")),
        Some(Value::String(s)) => Ok(SecretValue::new(std::mem::take(s))),
        Some(other) => Err(Failure::new(
            ErrorKind::InvalidSpec,
            format!(
                "field {field:?} of {logical} at {server} has invalid type {} (expected string)",
                json_type(other)
            ),
        )
        .with_fix("store the secret's value as a string")),
    };
    zeroize_json(parsed);
    result
}

/// The JSON type of a value, for messages.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Overwrites the strings of a parsed answer before it is dropped.
fn zeroize_json(value: Value) {
    match value {
        Value::String(s) => drop(Zeroizing::new(s)),
        Value::Array(items) => items.into_iter().for_each(zeroize_json),
        Value::Object(map) => map.into_iter().for_each(|(k, v)| {
            drop(Zeroizing::new(k));
            zeroize_json(v);
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(body: &str) -> Result<SecretValue, Failure> {
        take_field(body.as_bytes(), EngineKind::KvV2, "value", "p", "https://b")
    }

    #[test]
    fn a_string_field_including_empty() {
        let v = take(r#"{"data":{"data":{"value":"s3cr3t"},"metadata":{}}}"#).unwrap();
        assert_eq!(v.expose(), "s3cr3t");
        assert_eq!(
            take(r#"{"data":{"data":{"value":""}}}"#).unwrap().expose(),
            ""
        );
    }

    #[test]
    fn other_shapes_fail_without_quoting_the_value() {
        let e = take(r#"{"data":{"data":{"value":12345}}}"#).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidSpec);
        assert!(e.message.contains("number") && !e.message.contains("12345"));
        assert_eq!(
            take(r#"{"data":{"data":null}}"#).unwrap_err().kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            take(r#"{"data":{"data":{"other":"x"}}}"#).unwrap_err().kind,
            ErrorKind::NotFound
        );
        assert_eq!(take("<html>").unwrap_err().kind, ErrorKind::Unexpected);
    }
}
