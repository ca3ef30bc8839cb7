//! A field's JSON value as the text GitLab Runner gives the job (Go `%v`, runner-semantics
//! §4.5), and the extraction of `data` / `data.data` from a read's answer.
//!
//! The OpenBao client decodes with `UseNumber`, so numbers keep their JSON literal text: this
//! module never goes through `f64` and keeps the literal exactly (`1e3`, `0.10`, 20-digit
//! integers). Objects print as Go maps (`map[a:1 b:2]`, keys sorted by bytes), arrays as
//! `[a b]`, nested values recursively, `null` inside them as `<nil>`.

use serde_json::value::RawValue;
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// A JSON value that keeps number literals, with string leaves zeroized on drop.
#[derive(PartialEq)]
pub(crate) enum GoValue {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number's literal text.
    Number(String),
    /// A string.
    String(Zeroizing<String>),
    /// An array.
    Array(Vec<GoValue>),
    /// An object; Go's `%v` prints map keys sorted.
    Object(BTreeMap<String, GoValue>),
}

/// How deeply objects and arrays may nest in a field's value. Real secrets nest a few levels;
/// the limit bounds the recursion (and the re-parsing of each level) on hostile input.
pub(crate) const MAX_DEPTH: usize = 64;

impl GoValue {
    /// Reads one JSON value, keeping number literals.
    pub(crate) fn from_raw(raw: &RawValue) -> Result<Self, serde_json::Error> {
        Self::from_raw_at(raw, 0)
    }

    fn from_raw_at(raw: &RawValue, depth: usize) -> Result<Self, serde_json::Error> {
        let text = raw.get().trim();
        if depth > MAX_DEPTH && matches!(text.as_bytes().first(), Some(b'{' | b'[')) {
            return Err(<serde_json::Error as serde::de::Error>::custom(format!(
                "the value nests deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(match text.as_bytes().first() {
            Some(b'{') => {
                let map: BTreeMap<String, &RawValue> = serde_json::from_str(text)?;
                let mut out = BTreeMap::new();
                for (k, v) in map {
                    out.insert(k, Self::from_raw_at(v, depth + 1)?);
                }
                Self::Object(out)
            }
            Some(b'[') => {
                let items: Vec<&RawValue> = serde_json::from_str(text)?;
                Self::Array(
                    items
                        .into_iter()
                        .map(|v| Self::from_raw_at(v, depth + 1))
                        .collect::<Result<_, _>>()?,
                )
            }
            Some(b'"') => Self::String(Zeroizing::new(serde_json::from_str::<String>(text)?)),
            Some(b't' | b'f') => Self::Bool(serde_json::from_str(text)?),
            Some(b'n') => Self::Null,
            _ => Self::Number(text.to_owned()),
        })
    }

    /// Go `fmt.Sprintf("%v", v)`.
    pub(crate) fn go_format(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        self.write_go(&mut out);
        out
    }

    fn write_go(&self, out: &mut String) {
        match self {
            Self::Null => out.push_str("<nil>"),
            Self::Bool(true) => out.push_str("true"),
            Self::Bool(false) => out.push_str("false"),
            Self::Number(n) => out.push_str(n),
            Self::String(s) => out.push_str(s),
            Self::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    item.write_go(out);
                }
                out.push(']');
            }
            Self::Object(map) => {
                out.push_str("map[");
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_go(out);
                }
                out.push(']');
            }
        }
    }
}

/// Formats one JSON value (given as JSON text) the way the runner does.
///
/// Public for documentation tests and the resolver's reports; the provider uses it for every
/// field it returns.
///
/// ```
/// use provider_vault::format_go_value;
///
/// assert_eq!(format_go_value(r#""text""#).unwrap(), "text");
/// assert_eq!(format_go_value("1e3").unwrap(), "1e3");
/// assert_eq!(format_go_value(r#"{"b":[1,"x"],"a":null}"#).unwrap(), "map[a:<nil> b:[1 x]]");
/// ```
pub fn format_go_value(json: &str) -> Result<String, serde_json::Error> {
    let raw: &RawValue = serde_json::from_str(json)?;
    let value = GoValue::from_raw(raw)?;
    Ok(value.go_format().to_string())
}

/// Why a field could not be taken from a read's answer. Never holds a value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Extract {
    /// No `data` (null or missing).
    NoData,
    /// kv-v2 `data.data` missing or null: the version is deleted or destroyed.
    Deleted {
        /// `data.metadata.deletion_time`, when set.
        deletion_time: Option<String>,
        /// `data.metadata.destroyed`.
        destroyed: bool,
    },
    /// kv-v2 `data.data` is not an object.
    NotAMap,
    /// The field is missing; the secret's field names (not values) for the message.
    FieldMissing(Vec<String>),
    /// The field is JSON null.
    FieldNull,
    /// The answer is not JSON of the expected shape.
    Malformed(&'static str),
}

#[derive(serde::Deserialize)]
struct Body<'a> {
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(serde::Deserialize, Default)]
struct KvMetadata {
    #[serde(default)]
    deletion_time: Option<String>,
    #[serde(default)]
    destroyed: Option<bool>,
}

/// Takes `field` from a read's answer: `data.data` for kv-v2, `data` otherwise.
pub(crate) fn extract_field(
    body: &str,
    kv_v2: bool,
    field: &str,
) -> Result<Zeroizing<String>, Extract> {
    let body: Body<'_> = serde_json::from_str(body)
        .map_err(|_| Extract::Malformed("the answer is not a JSON object"))?;
    let data = body.data.ok_or(Extract::NoData)?;
    let data: BTreeMap<String, &RawValue> = serde_json::from_str(data.get())
        .map_err(|_| Extract::Malformed("`data` is not a JSON object"))?;
    let secret = if kv_v2 {
        let inner = data.get("data").filter(|raw| raw.get().trim() != "null");
        let Some(inner) = inner else {
            let meta = data
                .get("metadata")
                .and_then(|m| serde_json::from_str::<KvMetadata>(m.get()).ok())
                .unwrap_or_default();
            return Err(Extract::Deleted {
                deletion_time: meta.deletion_time.filter(|t| !t.is_empty()),
                destroyed: meta.destroyed.unwrap_or(false),
            });
        };
        serde_json::from_str::<BTreeMap<String, &RawValue>>(inner.get())
            .map_err(|_| Extract::NotAMap)?
    } else {
        data
    };
    let Some(raw) = secret.get(field) else {
        return Err(Extract::FieldMissing(secret.keys().cloned().collect()));
    };
    let value =
        GoValue::from_raw(raw).map_err(|_| Extract::Malformed("a field is not valid JSON"))?;
    match value {
        GoValue::Null => Err(Extract::FieldNull),
        GoValue::String(s) => Ok(s),
        other => Ok(other.go_format()),
    }
}

/// Whether a 404 answer still carries a secret: the OpenBao client returns it when it has
/// data or warnings (runner-semantics §4.5), and "not found" otherwise.
pub(crate) fn not_found_body_has_secret(body: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(borrow, default)]
        data: Option<&'a RawValue>,
        #[serde(default)]
        warnings: Option<Vec<String>>,
    }
    let Ok(probe) = serde_json::from_str::<Probe<'_>>(body) else {
        return false;
    };
    let has_data = probe.data.is_some_and(|d| {
        serde_json::from_str::<BTreeMap<String, &RawValue>>(d.get()).is_ok_and(|m| !m.is_empty())
    });
    has_data || probe.warnings.is_some_and(|w| !w.is_empty())
}

#[cfg(test)]
mod tests {

    #[test]
    fn nesting_is_bounded() {
        let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(format_go_value(&nested(3)).unwrap(), "[[[1]]]");
        assert!(format_go_value(&nested(MAX_DEPTH + 1)).is_ok());
        let err = format_go_value(&nested(MAX_DEPTH + 2)).unwrap_err();
        assert!(err.to_string().contains("deeper than 64 levels"), "{err}");
        assert!(
            format_go_value(&nested(100_000)).is_err(),
            "no stack overflow"
        );
    }

    use super::*;

    #[test]
    fn formats_like_go_percent_v() {
        let cases = [
            (r#""verbatim $x \"q\"""#, r#"verbatim $x "q""#),
            (r#""""#, ""),
            ("42", "42"),
            ("-0", "-0"),
            ("1e3", "1e3"),
            ("1E+3", "1E+3"),
            ("0.10", "0.10"),
            ("1.5", "1.5"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
            ("true", "true"),
            ("false", "false"),
            ("null", "<nil>"),
            ("[]", "[]"),
            ("{}", "map[]"),
            (r#"["a","b"]"#, "[a b]"),
            (r#"[1, 2.50, true, null]"#, "[1 2.50 true <nil>]"),
            (r#"{"b":2,"a":1}"#, "map[a:1 b:2]"),
            (r#"{"B":1,"a":2,"_":3}"#, "map[B:1 _:3 a:2]"),
            (
                r#"{"a":{"z":[1,{"y":"x y"}],"b":null}}"#,
                "map[a:map[b:<nil> z:[1 map[y:x y]]]]",
            ),
            (r#"{"a":1,"a":2}"#, "map[a:2]"),
            (r#"  { "k" : [ "v" ] }  "#, "map[k:[v]]"),
            (r#""\u00e9\n""#, "é\n"),
        ];
        for (json, want) in cases {
            assert_eq!(format_go_value(json).unwrap(), want, "{json}");
        }
    }

    #[test]
    fn extracts_kv_v2_and_kv_v1() {
        let v2 = r#"{"data":{"data":{"password":"pw","port":5432,"nested":{"a":1}},"metadata":{"version":3}}}"#;
        assert_eq!(*extract_field(v2, true, "password").unwrap(), "pw");
        assert_eq!(*extract_field(v2, true, "port").unwrap(), "5432");
        assert_eq!(*extract_field(v2, true, "nested").unwrap(), "map[a:1]");
        assert_eq!(
            extract_field(v2, true, "Password").unwrap_err(),
            Extract::FieldMissing(vec!["nested".into(), "password".into(), "port".into()])
        );
        let v1 = r#"{"data":{"api_key":"k","n":null}}"#;
        assert_eq!(*extract_field(v1, false, "api_key").unwrap(), "k");
        assert_eq!(
            extract_field(v1, false, "n").unwrap_err(),
            Extract::FieldNull
        );
        // kv-v1 reads `data` itself, so a kv-v2 answer's `data` has only data/metadata.
        assert!(matches!(
            extract_field(v2, false, "password").unwrap_err(),
            Extract::FieldMissing(_)
        ));
    }

    #[test]
    fn not_found_shapes() {
        assert_eq!(extract_field("{}", true, "f").unwrap_err(), Extract::NoData);
        assert_eq!(
            extract_field(r#"{"data":null}"#, false, "f").unwrap_err(),
            Extract::NoData
        );
        assert_eq!(
            extract_field(r#"{"data":{}}"#, true, "f").unwrap_err(),
            Extract::Deleted {
                deletion_time: None,
                destroyed: false
            }
        );
        assert_eq!(
            extract_field(
                r#"{"data":{"data":null,"metadata":{"deletion_time":"2026-01-01T00:00:00Z","destroyed":false}}}"#,
                true,
                "f"
            )
            .unwrap_err(),
            Extract::Deleted { deletion_time: Some("2026-01-01T00:00:00Z".into()), destroyed: false }
        );
        assert_eq!(
            extract_field(r#"{"data":{"data":"text"}}"#, true, "f").unwrap_err(),
            Extract::NotAMap
        );
        assert!(matches!(
            extract_field("not json", true, "f").unwrap_err(),
            Extract::Malformed(_)
        ));
        assert!(matches!(
            extract_field(r#"{"data":[1]}"#, false, "f").unwrap_err(),
            Extract::Malformed(_)
        ));
    }

    #[test]
    fn not_found_with_data_still_counts() {
        assert!(!not_found_body_has_secret(""));
        assert!(!not_found_body_has_secret(r#"{"errors":[]}"#));
        assert!(!not_found_body_has_secret(r#"{"data":{}}"#));
        assert!(not_found_body_has_secret(
            r#"{"data":{"data":null,"metadata":{}}}"#
        ));
        assert!(not_found_body_has_secret(r#"{"warnings":["w"]}"#));
    }
}
