//! The Go `%v` rendering of Vault field values (`provider_vault::format_go_value`): any text
//! is either rejected or rendered; a JSON string renders as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = provider_vault::format_go_value(text);
    let quoted = serde_json::to_string(text).expect("a string serialises");
    assert_eq!(
        provider_vault::format_go_value(&quoted).expect("a JSON string"),
        text
    );
});
