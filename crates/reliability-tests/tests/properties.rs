//! Property tests of the surfaces the fuzz targets cover (`fuzz/`), small enough for the
//! normal test run: the `.gitlab-ci.yml` parser and normaliser, the job payload parser, the
//! short forms, expansion and the Vault value formatting.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

use proptest::prelude::*;
use provider_aws_sm::{NumberFormat, extract_field};
use secrets_core::expand::{expand, expand_with, truncate_bytes};
use secrets_core::gitlab_ci::{CiConfig, parse_aws_short, parse_vault_short};
use secrets_core::{ErrorKind, JobPayload, JobVariable, Secret, Variables};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A path component: no `/`, `@` or `#`.
fn part() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,12}"
}

fn name() -> impl Strategy<Value = String> {
    "[A-Z_][A-Z0-9_]{0,10}"
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn vault_short_form_round_trips(dirs in prop::collection::vec(part(), 0..4), field in part(), mount in prop::option::of(part())) {
        let path = dirs.join("/");
        let secret = if path.is_empty() { field.clone() } else { format!("{path}/{field}") };
        let text = match &mount { Some(m) => format!("{secret}@{m}"), None => secret };
        let parsed = parse_vault_short(&text);
        prop_assert_eq!(&parsed.path, &path);
        prop_assert_eq!(&parsed.field, &field);
        prop_assert_eq!(parsed.engine.path, mount.unwrap_or_else(|| "kv-v2".to_owned()));
        prop_assert_eq!(parsed.engine.name, "kv-v2");
    }

    #[test]
    fn vault_short_form_never_panics(text in ".{0,64}") {
        let parsed = parse_vault_short(&text);
        prop_assert!(!parsed.field.contains('/'));
    }

    #[test]
    fn aws_short_form_round_trips(id in "[A-Za-z0-9/_+=.@-]{1,20}", field in prop::option::of(part())) {
        let text = match &field { Some(f) => format!("{id}#{f}"), None => id.clone() };
        prop_assert_eq!(parse_aws_short(&text), Some((Some(id), field)));
    }

    #[test]
    fn aws_short_form_refuses_several_hashes(text in ".{0,40}") {
        let hashes = text.matches('#').count();
        prop_assert_eq!(parse_aws_short(&text).is_none(), hashes > 1);
    }

    #[test]
    fn expansion_without_dollar_is_the_identity(text in "[^$]{0,64}") {
        prop_assert_eq!(expand_with(&text, |_| Some("X".into())), text);
    }

    #[test]
    fn expansion_is_single_pass(name in name(), value in ".{0,32}") {
        // A substituted value is never expanded again, whatever `$` it holds.
        let out = expand(&format!("<${{{name}}}>"), |_| value.clone());
        prop_assert_eq!(out, format!("<{value}>"));
    }

    #[test]
    fn unknown_names_never_lengthen_the_text(text in ".{0,64}") {
        prop_assert!(expand_with(&text, |_| None).len() <= text.len());
    }

    #[test]
    fn expansion_follows_go_for_names(prefix in "[a-z ]{0,8}", name in name(), value in "[a-z0-9]{0,8}", suffix in "[ .-][a-z]{0,8}") {
        let lookup = |n: &str| (n == name).then(|| value.clone());
        prop_assert_eq!(expand_with(&format!("{prefix}${name}{suffix}"), lookup), format!("{prefix}{value}{suffix}"));
        prop_assert_eq!(expand_with(&format!("{prefix}${{{name}}}{suffix}"), lookup), format!("{prefix}{value}{suffix}"));
        prop_assert_eq!(expand_with(&format!("{prefix}$${name}"), lookup), format!("{prefix}${name}"));
    }

    #[test]
    fn truncation_keeps_a_char_boundary_prefix(text in ".{0,40}", max in 0usize..80) {
        let mut cut = text.clone();
        truncate_bytes(&mut cut, max);
        prop_assert!(cut.len() <= max);
        prop_assert!(text.starts_with(&cut));
        prop_assert!(text.len() <= max || cut.len() + 4 > max);
    }

    #[test]
    fn yaml_parsing_never_panics_and_fails_as_invalid_spec(text in ".{0,200}") {
        match CiConfig::from_yaml(&text) {
            Ok(config) => {
                for job in config.job_names() {
                    if let Ok(job) = config.job(job) {
                        let _ = job.secrets_payload(&|_| None);
                    }
                }
            }
            Err(err) => prop_assert_eq!(err.kind(), ErrorKind::InvalidSpec),
        }
    }

    #[test]
    fn generated_jobs_normalise_like_gitlab(
        job in "[a-z][a-z0-9_-]{0,10}",
        entries in prop::collection::btree_map(name(), (prop::collection::vec(part(), 1..3), part(), prop::option::of(part()), any::<Option<bool>>()), 1..5),
    ) {
        let mut yaml = format!("{job}:\n  id_tokens:\n    VAULT_ID_TOKEN:\n      aud: https://vault.example.com\n  secrets:\n");
        for (variable, (dirs, field, mount, file)) in &entries {
            let mut short = format!("{}/{field}", dirs.join("/"));
            if let Some(m) = mount {
                short.push('@');
                short.push_str(m);
            }
            yaml.push_str(&format!("    {variable}:\n      vault: \"{short}\"\n"));
            if let Some(f) = file {
                yaml.push_str(&format!("      file: {f}\n"));
            }
        }
        yaml.push_str("  script: [\"true\"]\n");
        let config = CiConfig::from_yaml(&yaml).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(config.job_names(), vec![job.as_str()]);
        let setting = |n: &str| (n == "VAULT_SERVER_URL").then(|| "https://vault.example.com".to_owned());
        let secrets = config.job(&job).map_err(|e| TestCaseError::fail(e.to_string()))?
            .secrets_payload(&setting)
            .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(secrets.len(), entries.len());
        for (variable, (dirs, field, mount, file)) in &entries {
            let secret = &secrets[variable.as_str()];
            let vault = secret.vault.as_ref().expect("a vault secret");
            prop_assert_eq!(&vault.path, &dirs.join("/"));
            prop_assert_eq!(&vault.field, field);
            prop_assert_eq!(&vault.engine.path, mount.as_deref().unwrap_or("kv-v2"));
            prop_assert_eq!(&vault.server.url, "https://vault.example.com");
            prop_assert_eq!(secret.is_file(), file.unwrap_or(true));
        }
    }

    #[test]
    fn payload_parsing_never_panics(text in ".{0,200}") {
        let _ = JobPayload::from_json(&text);
    }

    #[test]
    fn payloads_round_trip(
        vars in prop::collection::vec((name(), ".{0,16}", any::<bool>(), any::<bool>()), 0..5),
        secrets in prop::collection::btree_map(name(), (part(), part(), part(), any::<Option<bool>>()), 0..5),
    ) {
        let payload = JobPayload {
            variables: vars.into_iter().map(|(key, value, masked, file)| JobVariable { key, value, masked, file, ..JobVariable::default() }).collect(),
            secrets: secrets.into_iter().map(|(variable, (mount, path, field, file))| {
                let secret: Secret = serde_json::from_value(serde_json::json!({
                    "vault": {"server": {"url": "https://v", "auth": {"name": "jwt", "path": "jwt", "data": {"jwt": "$T"}}},
                              "engine": {"name": "kv-v2", "path": mount}, "path": path, "field": field},
                    "file": file,
                })).expect("a secret");
                (variable, secret)
            }).collect(),
        };
        let json = serde_json::to_string(&payload).expect("serialises");
        let again = JobPayload::from_json(&json).expect("parses");
        prop_assert_eq!(again, payload);
    }

    #[test]
    fn payload_parse_errors_never_quote_a_value(value in "[A-Za-z0-9]{12,24}") {
        // serde's message may quote it; the CLI reports only the position (see leaks.rs).
        for doc in [format!(r#"{{"variables": "{value}"}}"#), format!(r#"{{"secrets": {{"X": "{value}"}}}}"#)] {
            let err = JobPayload::from_json(&doc).expect_err("invalid");
            prop_assert!(err.line() >= 1);
        }
    }

    #[test]
    fn last_definition_of_a_variable_wins(key in name(), first in ".{0,8}", last in ".{0,8}") {
        let vars = Variables::new(vec![JobVariable::new(key.clone(), first), JobVariable::new(key.clone(), last.clone())]);
        let got = vars.get(&key).map(|v| v.into_owned());
        prop_assert_eq!(got, Some(last));
    }

    #[test]
    fn vault_values_format_like_go(text in ".{0,40}", n in any::<i64>(), b in any::<bool>()) {
        let quoted = serde_json::to_string(&text).expect("json");
        prop_assert_eq!(provider_vault::format_go_value(&quoted).expect("string"), text);
        prop_assert_eq!(provider_vault::format_go_value(&n.to_string()).expect("number"), n.to_string());
        prop_assert_eq!(provider_vault::format_go_value(&b.to_string()).expect("bool"), b.to_string());
        let _ = provider_vault::format_go_value(&format!("[{quoted}, {n}, {{\"k\": {b}}}]"));
    }

    #[test]
    fn vault_value_formatting_never_panics(text in ".{0,80}") {
        let _ = provider_vault::format_go_value(&text);
    }

    #[test]
    fn aws_fields_extract_scalars(key in name(), text in ".{0,40}", n in any::<i64>(), b in any::<bool>()) {
        let object = serde_json::json!({ "s": text, "n": n, "b": b, "o": { "k": 1 } }).to_string();
        let literal = NumberFormat::JsonLiteral;
        let field = |name: &str| extract_field(&object, name, "id", literal).map(|v| v.expose().to_owned());
        prop_assert_eq!(field("s").expect("string"), text);
        prop_assert_eq!(field("n").expect("number"), n.to_string());
        prop_assert_eq!(field("b").expect("bool"), b.to_string());
        let nested = extract_field(&object, "o", "id", literal).expect_err("an object is not a scalar");
        prop_assert_eq!(nested.kind(), ErrorKind::InvalidSpec);
        let missing = extract_field(&object, &format!("{key}_"), "id", literal).expect_err("absent");
        prop_assert_eq!(missing.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn aws_field_errors_never_quote_the_text(canary in "[A-Za-z0-9]{12,24}", shape in 0usize..4) {
        let text = match shape {
            0 => canary.clone(),
            1 => format!("{{\"other\": \"{canary}\"}}"),
            2 => format!("[\"{canary}\"]"),
            _ => format!("{{\"f\": {{\"deep\": \"{canary}\"}}}}"),
        };
        for format in [NumberFormat::JsonLiteral, NumberFormat::RunnerFloat] {
            let err = extract_field(&text, "f", "id", format).expect_err("no scalar field f");
            let (shown, debug) = (err.to_string(), format!("{err:?}"));
            prop_assert!(!shown.contains(&canary) && !debug.contains(&canary));
        }
    }
}

/// Nesting depths from shallow to hostile. Each parser must reject or accept them, never
/// overflow the stack (which aborts the whole process: no error, no cleanup).
const DEPTHS: [usize; 5] = [1, 64, 127, 200, 10_000];

#[test]
fn deeply_nested_vault_values_are_rejected_or_rendered() {
    let depths: Vec<usize> = match std::env::var("NESTING_DEPTH") {
        Ok(d) => vec![d.parse().unwrap_or(1)],
        Err(_) => DEPTHS.to_vec(),
    };
    for depth in depths {
        let text = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let _ = provider_vault::format_go_value(&text);
    }
}

#[test]
fn deeply_nested_payloads_are_rejected_or_parsed() {
    for depth in DEPTHS {
        let payload = format!(
            r#"{{"secrets": {{"X": {{"vault": {{"server": {{"auth": {{"data": {}1{}}}}}}}}}}}}}"#,
            r#"{"a":"#.repeat(depth),
            "}".repeat(depth)
        );
        let _ = JobPayload::from_json(&payload);
    }
}

#[test]
fn deeply_nested_yaml_is_rejected_or_parsed() {
    for depth in DEPTHS {
        let yaml = format!(
            "job:\n  secrets: {}1{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let _ = CiConfig::from_yaml(&yaml);
    }
}
