//! GCP Secret Manager `:access` answers (`provider_gcp_sm::parse_access_answer`): any body
//! gives a value or a classified error that never quotes the body; a well-formed answer with
//! the right CRC32C gives its data back, and any other checksum is "data corruption detected".
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use provider_gcp_sm::{AccessError, parse_access_answer};

fuzz_target!(|data: &[u8]| {
    if let Err(err) = parse_access_answer(data) {
        // Errors have a fixed shape (line/column, a length): they cannot quote the body.
        assert!(err.to_string().len() <= 80, "an error grew with the body");
    }
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let crc = crc32c::crc32c(value.as_bytes());
    let body = |crc: u32| {
        serde_json::json!({"payload": {
            "data": base64::engine::general_purpose::STANDARD.encode(value),
            "dataCrc32c": crc.to_string(),
        }})
        .to_string()
    };
    let accessed = parse_access_answer(body(crc).as_bytes()).expect("a well-formed answer");
    assert_eq!(accessed.value.expose(), value);
    assert_eq!(
        parse_access_answer(body(crc ^ 1).as_bytes()).unwrap_err(),
        AccessError::Corrupted
    );
});
