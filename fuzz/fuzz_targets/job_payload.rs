//! The job payload: any JSON either fails or parses into secrets that expand, name their
//! providers and reference themselves without panicking; a parsed payload survives a
//! serialise-and-parse round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrets_core::{JobPayload, Variables};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(payload) = JobPayload::from_json(text) else {
        return;
    };
    let variables = Variables::new(payload.variables.clone());
    let lookup = |name: &str| variables.get(name).map(|v| v.into_owned());
    for (key, secret) in &payload.secrets {
        let _ = secret.reference();
        let _ = secret.providers();
        let _ = secret.is_file();
        let _ = secrets_core::materialise::is_safe_file_name(key);
        let mut expanded = secret.clone();
        expanded.expand_variables(&lookup);
        let _ = format!("{expanded:?}");
    }
    let json = serde_json::to_string(&payload).expect("a parsed payload serialises");
    let again = JobPayload::from_json(&json).expect("a serialised payload parses");
    assert_eq!(again.secrets.len(), payload.secrets.len());
    assert_eq!(again.variables.len(), payload.variables.len());
});
