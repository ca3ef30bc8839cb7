//! Azure Key Vault: the secret answer (`parse_secret_answer`) gives `value` or a classified
//! error that cannot quote the body; failed Key Vault and Entra answers (`vault_failure`,
//! `entra_failure`) never quote the body's messages (only short codes); secret names are
//! accepted exactly when they are `^[0-9A-Za-z-]{1,127}$`; the `Bearer` challenge parser
//! (`parse_challenge`) gives back the parameters of a well-formed challenge, and a resource
//! matches a vault only when the vault's host is it or under it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provider_azure_kv::{
    ReadTarget, TokenFacts, TokenRequest, entra_failure, parse_challenge, parse_secret_answer,
    resource_matches, valid_secret_name, vault_failure,
};

/// A marker that no safe code contains (a space), so finding it means the body was quoted.
const CANARY: &str = "canary value";

fuzz_target!(|data: &[u8]| {
    if let Err(err) = parse_secret_answer(data, "name", "https://kv.vault.azure.net") {
        assert!(err.to_string().len() <= 200, "an error grew with the body");
    }

    // Failed answers: the body text itself never reaches a message, only short codes.
    let target = ReadTarget {
        vault: "https://kv.vault.azure.net",
        name: "name",
        version: "",
        client: "app",
    };
    let facts = TokenFacts::default();
    let request = TokenRequest {
        authority: "https://login.microsoftonline.com",
        tenant: "t",
        client: "app",
        facts: &facts,
    };
    let mut body = data.to_vec();
    body.extend_from_slice(CANARY.as_bytes());
    for status in [400u16, 401, 403, 404, 409, 429, 500] {
        for err in [
            vault_failure(&target, status, data, None),
            entra_failure(&request, status, data, None),
        ] {
            let shown = format!("{err} {:?}", err.code);
            assert!(shown.len() <= 800, "a failure grew with the body");
        }
        let vault_json = serde_json::json!({
            "error": {"code": CANARY, "message": CANARY, "innererror": {"code": CANARY}},
        })
        .to_string();
        let entra_json = serde_json::json!({
            "error": CANARY,
            "error_description": format!("AADSTS70021: {CANARY}"),
            "error_codes": [70021],
        })
        .to_string();
        for body in [&body[..], vault_json.as_bytes(), entra_json.as_bytes()] {
            let v = vault_failure(&target, status, body, None);
            let e = entra_failure(&request, status, body, None);
            for err in [v, e] {
                let shown = format!("{err} {:?}", err.code);
                assert!(!shown.contains(CANARY), "the body was quoted: {shown}");
            }
        }
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    // Names: exactly Key Vault's pattern.
    let expected = (1..=127).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    assert_eq!(valid_secret_name(text), expected);

    // Any header parses; a matched resource is the vault's host or a parent domain of it.
    let (_, resource) = parse_challenge(text);
    if let Some(resource) = resource {
        let host = resource.to_ascii_lowercase();
        for vault in ["kv.vault.azure.net", "KV.Vault.Example"] {
            if resource_matches(vault, &resource) {
                let vault = vault.to_ascii_lowercase();
                assert!(vault == host || vault.ends_with(&format!(".{host}")));
            }
        }
    }

    // A well-formed challenge with values from the input (no quote or comma) gives them back.
    let (authorization, resource) = text.split_once('\n').unwrap_or((text, "https://vault"));
    let plain = |s: &str| {
        !s.is_empty() && !s.contains(['"', ',']) && s.trim() == s && !s.starts_with('"')
    };
    if plain(authorization) && plain(resource) {
        let header = format!(r#"Bearer authorization="{authorization}", resource="{resource}""#);
        let (a, r) = parse_challenge(&header);
        assert_eq!(a.as_deref(), Some(authorization));
        assert_eq!(r.as_deref(), Some(resource));
    }
});
