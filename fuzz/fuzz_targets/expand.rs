//! Go `os.Expand` compatible expansion: never panics, never re-expands a substituted value,
//! and byte truncation always lands on a character boundary.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secrets_core::expand::{expand_with, truncate_bytes};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // "template \0 value": every name expands to `value`.
    let (template, value) = text.split_once('\0').unwrap_or((text, "$X"));
    let out = expand_with(template, |_| Some(value.to_owned()));
    // Unknown names expand to nothing, so the result is never longer than the template.
    let empty = expand_with(template, |_| None);
    assert!(empty.len() <= template.len());
    // A template without `$` is unchanged.
    if !template.contains('$') {
        assert_eq!(out, template);
    }
    let mut cut = out.clone();
    truncate_bytes(&mut cut, value.len() % 70);
    assert!(out.starts_with(&cut));
});
