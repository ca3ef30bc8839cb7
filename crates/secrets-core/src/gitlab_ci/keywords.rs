//! Job keywords other than `secrets:`: `id_tokens:` and `variables:`.

use super::{CiVariable, IdTokenSpec};
use crate::error::{Error, ErrorKind};
use serde_json::Value;

pub(super) fn job_error(job: &str, message: String) -> Error {
    Error::new(ErrorKind::InvalidSpec, message).with_reference(format!("jobs:{job}"))
}

pub(super) fn parse_id_token(job: &str, name: String, spec: &Value) -> Result<IdTokenSpec, Error> {
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

pub(super) fn parse_variables(
    job: &str,
    location: &str,
    value: &Value,
) -> Result<Vec<CiVariable>, Error> {
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

pub(super) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}
