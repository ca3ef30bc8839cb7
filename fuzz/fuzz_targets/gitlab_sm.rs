//! GitLab Secrets Manager (OpenBao with inline auth): the read answer
//! (`provider_gitlab_sm::take_field`) gives a value or a classified error whose size does not
//! grow with the body, and a string field gives itself; a failed answer
//! (`provider_gitlab_sm::read_failure`) never quotes the JWT, raw or as its header carries it;
//! an inline-auth parameter (`encode_parameter`) is unpadded base64url that decodes back to
//! `{"key", "value"}`.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use provider_gitlab_sm::{ReadContext, encode_parameter, read_failure, take_field};
use provider_http::Answer;
use provider_vault::EngineKind;
use reqwest::header::{HeaderMap, HeaderValue};

const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJl";

fuzz_target!(|data: &[u8]| {
    // Any body, any engine: a value or an error that cannot quote the body.
    for engine in [EngineKind::KvV2, EngineKind::KvV1, EngineKind::Generic] {
        if let Err(err) = take_field(data, engine, "value", "kv/data/p", "https://bao") {
            assert!(err.to_string().len() <= 400, "an error grew with the body");
        }
    }

    // Any body as a failed answer, with and without the inline-auth failure header: the
    // JWT never reaches the message, the fix or the code.
    let encoded = encode_parameter("jwt", JWT);
    for status in [400u16, 403, 404, 429, 500] {
        for failed in [false, true] {
            let mut headers = HeaderMap::new();
            if failed {
                headers.insert(
                    "x-vault-inline-auth-failed",
                    HeaderValue::from_static("true"),
                );
            }
            let answer = Answer {
                status,
                headers,
                body: data.to_vec().into(),
                retry_after: None,
            };
            let read = ReadContext {
                logical: "kv/data/p",
                auth_path: "ns/auth/pipeline_jwt/login",
                role: "all_pipelines",
                jwt: JWT,
            };
            let err = read_failure(&answer, "https://bao", &read);
            let shown = format!("{err} {:?}", err.code);
            assert!(!shown.contains(JWT), "the JWT was quoted");
            assert!(!shown.contains(encoded.as_str()), "the encoded JWT was quoted");
        }
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line is the key, the rest the value.
    let (key, value) = text.split_once('\n').unwrap_or(("jwt", text));

    // A string field of a kv-v2 answer gives the string itself.
    let body = serde_json::json!({"data": {"data": {key: value}, "metadata": {}}}).to_string();
    let got = take_field(body.as_bytes(), EngineKind::KvV2, key, "kv/data/p", "https://bao")
        .expect("a string field");
    assert_eq!(got.expose(), value);

    // The header encoding: unpadded base64url, a valid header value, decoding to the pair.
    let encoded = encode_parameter(key, value);
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "not unpadded base64url"
    );
    assert!(HeaderValue::from_str(&encoded).is_ok());
    let decoded = URL_SAFE_NO_PAD
        .decode(encoded.as_bytes())
        .expect("decodes");
    let json: serde_json::Value = serde_json::from_slice(&decoded).expect("JSON");
    assert_eq!(json, serde_json::json!({"key": key, "value": value}));
});
