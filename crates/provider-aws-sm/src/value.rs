//! From a `GetSecretValue` answer to the variable's value (runner-semantics §5.4).
//!
//! - `SecretString` as is; `SecretBinary` as standard base64 with padding; neither is the
//!   runner's `secret contains no value`.
//! - Without `field`, the whole value. With `field`, the value must be a flat JSON object and
//!   the field a string, number or boolean. Numbers keep their JSON literal by default
//!   ([`NumberFormat::JsonLiteral`]); [`NumberFormat::RunnerFloat`] reproduces the runner's
//!   Go `%v` float64 rendering (`1000000` gives `1e+06`).
//!
//! No message here quotes the value or a parser message that could: a JSON syntax error is
//! reported by line and column only.

use crate::config::NumberFormat;
use crate::error::{Failure, Result};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use secrets_core::{ErrorKind, SecretValue};
use serde_json::value::RawValue;
use std::collections::HashMap;

/// The text of a fetched secret: `SecretString`, or `SecretBinary` as base64.
pub(crate) fn raw_text(
    string: Option<&str>,
    binary: Option<&[u8]>,
    secret_id: &str,
) -> Result<SecretString> {
    if let Some(s) = string {
        return Ok(SecretString::from(s.to_owned()));
    }
    if let Some(bytes) = binary {
        return Ok(SecretString::from(
            base64::engine::general_purpose::STANDARD.encode(bytes),
        ));
    }
    Err(
        Failure::new(ErrorKind::Unexpected, "secret contains no value").with_fix(format!(
            "AWS answered without SecretString or SecretBinary for secret '{secret_id}'; \
         check that its current version has a value"
        )),
    )
}

/// One top-level field of a secret's text, extracted as the provider does for `field:`
/// (runner-semantics §5.4): the text must be a flat JSON object and the field a string,
/// number or boolean. Errors name `secret_id` and never quote the text.
///
/// ```
/// use provider_aws_sm::{NumberFormat, extract_field};
///
/// let text = r#"{"user":"app","port":5432,"ratio":1000000}"#;
/// let value = extract_field(text, "port", "db", NumberFormat::JsonLiteral).unwrap();
/// assert_eq!(value.expose(), "5432");
/// let value = extract_field(text, "ratio", "db", NumberFormat::RunnerFloat).unwrap();
/// assert_eq!(value.expose(), "1e+06");
/// let missing = extract_field(text, "password", "db", NumberFormat::default()).unwrap_err();
/// assert!(missing.to_string().contains("key 'password' not found"));
/// ```
pub fn extract_field(
    secret_text: &str,
    field: &str,
    secret_id: &str,
    format: NumberFormat,
) -> std::result::Result<SecretValue, secrets_core::Error> {
    extract(
        &SecretString::from(secret_text.to_owned()),
        Some(field),
        secret_id,
        format,
    )
    .map_err(|failure| failure.into_reference_error(secret_id))
}

/// The variable's value: the whole text, or one top-level field of a JSON object.
pub(crate) fn extract(
    raw: &SecretString,
    field: Option<&str>,
    secret_id: &str,
    format: NumberFormat,
) -> Result<SecretValue> {
    let text = raw.expose_secret();
    let Some(field) = field else {
        return Ok(SecretValue::new(text));
    };
    let object: HashMap<String, Box<RawValue>> = serde_json::from_str(text).map_err(|err| {
        let why = match err.classify() {
            serde_json::error::Category::Data => {
                "the value is JSON but not an object (field access needs a flat JSON object)"
                    .to_owned()
            }
            serde_json::error::Category::Eof => {
                "the value ends before the JSON is complete".to_owned()
            }
            _ => format!(
                "the value is not JSON (error at line {} column {})",
                err.line(),
                err.column()
            ),
        };
        Failure::new(
            ErrorKind::InvalidSpec,
            format!("failed to parse JSON for secret '{secret_id}': {why}"),
        )
        .with_fix(format!(
            "remove `field: {field}` to get the whole value, or store the secret as a JSON object"
        ))
    })?;
    let Some(value) = object.get(field) else {
        return Err(Failure::new(
            ErrorKind::NotFound,
            format!(
                "key '{field}' not found in AWS Secrets Manager response for secret '{secret_id}'"
            ),
        )
        .with_fix(
            "check the field name (only top-level keys are searched, names are case-sensitive)",
        ));
    };
    let literal = value.get();
    let not_scalar = || {
        Failure::new(
            ErrorKind::InvalidSpec,
            format!(
                "key '{field}' in aws secrets manager response for secret '{secret_id}' is not \
                 a string, number or boolean"
            ),
        )
        .with_fix("store the field as a string, number or boolean, or remove `field` to get the whole JSON")
    };
    match literal.as_bytes().first() {
        Some(b'"') => {
            let s: String = serde_json::from_str(literal).map_err(|_| not_scalar())?;
            Ok(SecretValue::new(s))
        }
        Some(b't' | b'f') => Ok(SecretValue::new(literal)),
        Some(b'-' | b'0'..=b'9') => match format {
            NumberFormat::JsonLiteral => Ok(SecretValue::new(literal)),
            NumberFormat::RunnerFloat => go_float(literal).map(SecretValue::new).ok_or_else(|| {
                Failure::new(
                    ErrorKind::InvalidSpec,
                    format!(
                        "failed to parse JSON for secret '{secret_id}': the number in key \
                         '{field}' does not fit a float64"
                    ),
                )
            }),
        },
        _ => Err(not_scalar()),
    }
}

/// A JSON number as GitLab Runner prints it: parsed as a float64, then Go's
/// `fmt.Sprint`, that is `strconv.FormatFloat(f, 'g', -1, 64)`. `None` when the number does
/// not fit a float64 (Go's decoder fails on those).
pub(crate) fn go_float(literal: &str) -> Option<String> {
    let f: f64 = literal.parse().ok()?;
    f.is_finite().then(|| go_g_shortest(f))
}

/// Go's `%v` for a float64: the shortest digits that round-trip; the exponent form
/// (`1e+06`, `1.234567e+06`, `1e-05`) when the decimal exponent is below -4 or at least 6
/// (strconv: "if precision was the shortest possible, use precision 6 for this decision"),
/// the plain form otherwise (`100000`, `0.0001`, `1.5`).
fn go_g_shortest(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits: `d[.ddd]e<exp>`.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let nd = digits.len();
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        // %e with nd-1 fraction digits and an exponent of at least two digits.
        let mut out = String::from(sign);
        out.push_str(&digits[..1]);
        if nd > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
        out
    } else {
        // %f with nd - (exp + 1) fraction digits.
        let mut out = String::from(sign);
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(exp.unsigned_abs() - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let int_len = exp.unsigned_abs() as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(json: &str, field: Option<&str>) -> Result<String> {
        extract(
            &SecretString::from(json.to_owned()),
            field,
            "test",
            NumberFormat::JsonLiteral,
        )
        .map(|v| v.expose().to_owned())
    }

    #[test]
    fn string_binary_and_no_value() {
        let s = raw_text(Some("plain"), Some(b"x"), "id").unwrap();
        assert_eq!(s.expose_secret(), "plain", "SecretString wins");
        let b = raw_text(None, Some(b"hello world"), "id").unwrap();
        assert_eq!(b.expose_secret(), "aGVsbG8gd29ybGQ=");
        let b = raw_text(None, Some(&[0x00, 0xff, 0x10, 0x20, 0x7f]), "id").unwrap();
        assert_eq!(b.expose_secret(), "AP8QIH8=");
        let err = raw_text(None, None, "id").unwrap_err();
        assert_eq!(err.message, "secret contains no value");
    }

    #[test]
    fn whole_value_without_field() {
        assert_eq!(get("plain text", None).unwrap(), "plain text");
        assert_eq!(
            get("\"ok\"", None).unwrap(),
            "\"ok\"",
            "JSON string keeps its quotes"
        );
    }

    #[test]
    fn fields_of_each_type() {
        let json = r#"{"Date":"2020-08-24","n":42,"three":3,"f":false,"t":true,"big":1000000,
            "float":1.5,"exp":1e6,"huge":123456789012345678901234567890,"esc":"a\"b\u00e9",
            "nullv":null,"obj":{"a":1},"arr":[1,2]}"#;
        assert_eq!(get(json, Some("Date")).unwrap(), "2020-08-24");
        assert_eq!(get(json, Some("n")).unwrap(), "42");
        assert_eq!(get(json, Some("three")).unwrap(), "3");
        assert_eq!(get(json, Some("f")).unwrap(), "false");
        assert_eq!(get(json, Some("t")).unwrap(), "true");
        assert_eq!(get(json, Some("big")).unwrap(), "1000000", "literal kept");
        assert_eq!(get(json, Some("float")).unwrap(), "1.5");
        assert_eq!(get(json, Some("exp")).unwrap(), "1e6");
        assert_eq!(
            get(json, Some("huge")).unwrap(),
            "123456789012345678901234567890"
        );
        assert_eq!(get(json, Some("esc")).unwrap(), "a\"b\u{e9}");
        for field in ["nullv", "obj", "arr"] {
            let err = get(json, Some(field)).unwrap_err();
            assert_eq!(
                err.message,
                format!(
                    "key '{field}' in aws secrets manager response for secret 'test' is not a \
                     string, number or boolean"
                )
            );
            assert_eq!(err.kind, ErrorKind::InvalidSpec);
        }
    }

    #[test]
    fn missing_key_is_not_found() {
        let err = get(r#"{"a":"b"}"#, Some("Date")).unwrap_err();
        assert_eq!(
            err.message,
            "key 'Date' not found in AWS Secrets Manager response for secret 'test'"
        );
        assert_eq!(err.kind, ErrorKind::NotFound);
        let err = get(r#"{"outer":{"Date":"x"}}"#, Some("Date")).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound, "no nested search");
    }

    #[test]
    fn non_json_never_echoes_the_value() {
        for text in [
            "canary-7f3a9c",
            "[1,2]",
            "\"canary-7f3a9c\"",
            "{\"a\": canary-7f3a9c}",
            "{\"a\":",
            "AP8QIH8=",
        ] {
            let err = get(text, Some("a")).unwrap_err();
            assert!(
                err.message
                    .starts_with("failed to parse JSON for secret 'test'"),
                "{}",
                err.message
            );
            let shown = format!("{err:?}");
            assert!(!shown.contains("canary"), "{shown}");
            assert!(!shown.contains("AP8QIH8"), "{shown}");
        }
    }

    #[test]
    fn runner_float_formatting() {
        for (literal, want) in [
            ("42", "42"),
            ("3", "3"),
            ("0", "0"),
            ("-0", "-0"),
            ("1.5", "1.5"),
            ("100000", "100000"),
            ("999999", "999999"),
            ("1000000", "1e+06"),
            ("1234567", "1.234567e+06"),
            ("-1234567", "-1.234567e+06"),
            ("0.0001", "0.0001"),
            ("0.00001", "1e-05"),
            ("0.000012", "1.2e-05"),
            ("123.456", "123.456"),
            ("1e21", "1e+21"),
            ("1e100", "1e+100"),
            ("9007199254740993", "9.007199254740992e+15"),
            ("12345.678", "12345.678"),
        ] {
            assert_eq!(go_float(literal).as_deref(), Some(want), "{literal}");
        }
        assert_eq!(go_float("1e400"), None);
        let v = extract(
            &SecretString::from(r#"{"big":1000000}"#.to_owned()),
            Some("big"),
            "test",
            NumberFormat::RunnerFloat,
        )
        .unwrap();
        assert_eq!(v.expose(), "1e+06");
    }
}
