//! The answer to `:access`: `{"name", "payload": {"data": <base64>, "dataCrc32c": "<int64>"}}`,
//! checked as GitLab Runner checks it, without its crash on an absent checksum.
//!
//! Values: the runner turns the payload's bytes into a Go string without checking UTF-8.
//! Values here are text (`SecretValue` holds a `String`), so a payload that is not UTF-8 is
//! refused with [`AccessError::NotUtf8`], naming only its length: changing the bytes (lossy
//! decoding) would hand the job a different secret than the one stored.

use base64::Engine as _;
use secrets_core::SecretValue;
use serde::Deserialize;
use std::fmt;
use zeroize::Zeroizing;

/// Why an `:access` answer was refused. Never holds a byte of the value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccessError {
    /// Not the JSON Secret Manager sends (line and column only).
    Malformed(String),
    /// No `payload`: GitLab Runner's "secret not found".
    NoPayload,
    /// `payload.data` is not base64.
    NotBase64,
    /// `payload.dataCrc32c` is absent (GitLab Runner crashes here).
    NoChecksum,
    /// `payload.dataCrc32c` is not an int64.
    BadChecksum,
    /// The CRC32C of the data is not `dataCrc32c`.
    Corrupted,
    /// The value is not UTF-8 text; its length in bytes.
    NotUtf8(usize),
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(at) => write!(f, "the answer is not Secret Manager's JSON ({at})"),
            Self::NoPayload => f.write_str("the answer has no payload"),
            Self::NotBase64 => f.write_str("payload.data is not base64"),
            Self::NoChecksum => f.write_str("the answer has no payload.dataCrc32c checksum"),
            Self::BadChecksum => f.write_str("payload.dataCrc32c is not an int64"),
            Self::Corrupted => f.write_str("data corruption detected"),
            Self::NotUtf8(len) => write!(f, "the value ({len} bytes) is not UTF-8 text"),
        }
    }
}

impl std::error::Error for AccessError {}

/// A value read from Secret Manager.
#[derive(Debug)]
pub struct Accessed {
    /// The value.
    pub value: SecretValue,
    /// The version's name as Secret Manager answers it (`latest` resolved to its number).
    pub name: Option<String>,
}

fn zeroizing_string<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Zeroizing<String>>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(Zeroizing::new))
}

#[derive(Deserialize)]
struct AnswerJson {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    payload: Option<PayloadJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PayloadJson {
    #[serde(default, deserialize_with = "zeroizing_string")]
    data: Option<Zeroizing<String>>,
    #[serde(default, alias = "data_crc32c")]
    data_crc32c: Option<serde_json::Value>,
}

/// Proto3 JSON writes an int64 as a decimal string; a number is accepted too.
fn checksum(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// Parses and checks an `:access` answer body: payload present, checksum present and equal
/// to the CRC32C (Castagnoli) of the data, data UTF-8.
pub fn parse_access_answer(body: &[u8]) -> Result<Accessed, AccessError> {
    let answer: AnswerJson = serde_json::from_slice(body)
        .map_err(|e| AccessError::Malformed(format!("line {} column {}", e.line(), e.column())))?;
    let payload = answer.payload.ok_or(AccessError::NoPayload)?;
    // Proto3 JSON leaves out empty bytes: no `data` is an empty value.
    let data = match &payload.data {
        Some(text) => Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|_| AccessError::NotBase64)?,
        ),
        None => Zeroizing::new(Vec::new()),
    };
    let expected = payload
        .data_crc32c
        .as_ref()
        .ok_or(AccessError::NoChecksum)?;
    let expected = checksum(expected).ok_or(AccessError::BadChecksum)?;
    if i64::from(crc32c::crc32c(&data)) != expected {
        return Err(AccessError::Corrupted);
    }
    let mut data = data;
    let bytes = std::mem::take(&mut *data);
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Accessed {
            value: SecretValue::new(text),
            name: answer.name,
        }),
        Err(e) => {
            let bytes = Zeroizing::new(e.into_bytes());
            Err(AccessError::NotUtf8(bytes.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(data: &[u8], crc: Option<serde_json::Value>) -> Vec<u8> {
        let mut payload = serde_json::json!({
            "data": base64::engine::general_purpose::STANDARD.encode(data)
        });
        if let Some(crc) = crc {
            payload["dataCrc32c"] = crc;
        }
        serde_json::json!({"name": "projects/1/secrets/s/versions/2", "payload": payload})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn checks_the_checksum_and_reads_text() {
        let crc = crc32c::crc32c(b"canary-value").to_string();
        let ok = parse_access_answer(&body(b"canary-value", Some(crc.clone().into()))).unwrap();
        assert_eq!(ok.value.expose(), "canary-value");
        assert_eq!(ok.name.as_deref(), Some("projects/1/secrets/s/versions/2"));
        let as_number: i64 = crc.parse().unwrap();
        assert!(parse_access_answer(&body(b"canary-value", Some(as_number.into()))).is_ok());

        let cases: [(Vec<u8>, AccessError); 7] = [
            (
                body(b"canary-value", Some("1".into())),
                AccessError::Corrupted,
            ),
            (body(b"canary-value", None), AccessError::NoChecksum),
            (
                body(b"canary-value", Some("x".into())),
                AccessError::BadChecksum,
            ),
            (br#"{"name": "n"}"#.to_vec(), AccessError::NoPayload),
            (
                br#"{"payload": {"data": "***", "dataCrc32c": "0"}}"#.to_vec(),
                AccessError::NotBase64,
            ),
            (
                body(
                    &[0, 1, 2, 0xff],
                    Some(crc32c::crc32c(&[0, 1, 2, 0xff]).to_string().into()),
                ),
                AccessError::NotUtf8(4),
            ),
            (
                b"canary-value".to_vec(),
                AccessError::Malformed("line 1 column 1".into()),
            ),
        ];
        for (input, expected) in cases {
            let err = parse_access_answer(&input).unwrap_err();
            assert_eq!(err, expected);
            assert!(!err.to_string().contains("canary"), "{err}");
        }
    }

    #[test]
    fn an_empty_value_has_no_data_member() {
        let ok = parse_access_answer(br#"{"payload": {"dataCrc32c": "0"}}"#).unwrap();
        assert!(ok.value.is_empty());
    }
}
