//! AWS Secrets Manager field extraction (`provider_aws_sm::extract_field`): any secret text
//! and field name give a value or a classified error whose size does not grow with the text
//! (so it cannot quote it); a string field of a flat object gives the string itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provider_aws_sm::{NumberFormat, extract_field};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line is the field name, the rest the secret text.
    let (field, secret) = text.split_once('\n').unwrap_or(("key", text));
    for format in [NumberFormat::JsonLiteral, NumberFormat::RunnerFloat] {
        if let Err(err) = extract_field(secret, field, "fuzz-secret", format) {
            // Errors name the field and the secret id; their length never grows with the
            // text, so they cannot quote it.
            let message = err.to_string();
            assert!(
                message.len() <= 400 + 4 * field.len(),
                "an error grew with the secret text"
            );
        }
    }
    let object = serde_json::json!({ field: secret }).to_string();
    let value = extract_field(&object, field, "fuzz-secret", NumberFormat::default())
        .expect("a string field of a flat object");
    assert_eq!(value.expose(), secret);
});
