//! The short forms `path/field@mount` (Vault) and `secret_id#field` (AWS).
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrets_core::gitlab_ci::{parse_aws_short, parse_vault_short};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let vault = parse_vault_short(text);
    // The parts come from the text: nothing is invented but the default mount.
    assert!(vault.field.len() <= text.len());
    assert!(!vault.field.contains('/'));
    if !text.contains('@') {
        assert_eq!(vault.engine.path, "kv-v2");
    }
    match parse_aws_short(text) {
        None => assert!(text.matches('#').count() > 1),
        Some((id, field)) => {
            assert!(text.matches('#').count() <= 1);
            let id = id.unwrap_or_default();
            assert!(text.starts_with(&id));
            if let Some(field) = field {
                assert_eq!(format!("{id}#{field}"), text.trim_end_matches('#'));
            }
        }
    }
});
