//! Property tests of the surfaces the fuzz targets cover (`fuzz/`), small enough for the
//! normal test run: the `.gitlab-ci.yml` parser and normaliser, the job payload parser, the
//! short forms, expansion, the Vault value formatting, the AWS field extraction, and the
//! GitLab Secrets Manager and Azure Key Vault answer parsers.
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
            let vault = secret.vault.as_deref().expect("a vault secret");
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

const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJl";

fn gitlab_read() -> provider_gitlab_sm::ReadContext<'static> {
    provider_gitlab_sm::ReadContext {
        logical: "kv/data/p",
        auth_path: "ns/auth/pipeline_jwt/login",
        role: "all_pipelines",
        jwt: JWT,
    }
}

fn answer(status: u16, inline_failed: bool, body: &[u8]) -> provider_http::Answer {
    let mut headers = reqwest::header::HeaderMap::new();
    if inline_failed {
        headers.insert(
            "x-vault-inline-auth-failed",
            reqwest::header::HeaderValue::from_static("true"),
        );
    }
    provider_http::Answer {
        status,
        headers,
        body: body.to_vec().into(),
        retry_after: None,
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn gitlab_sm_fields_are_strings_and_errors_never_quote_them(key in "[a-z_]{1,8}", value in ".{0,40}", n in any::<i64>(), canary in "[A-Za-z0-9]{12,24}") {
        use provider_gitlab_sm::take_field;
        use provider_vault::EngineKind::{KvV1, KvV2};
        let v2 = serde_json::json!({"data": {"data": {key.as_str(): value}, "metadata": {}}}).to_string();
        let got = take_field(v2.as_bytes(), KvV2, &key, "kv/data/p", "https://b").expect("a string");
        prop_assert_eq!(got.expose(), value.as_str());
        let v1 = serde_json::json!({"data": {key.as_str(): value}}).to_string();
        let got = take_field(v1.as_bytes(), KvV1, &key, "kv/p", "https://b").expect("a string");
        prop_assert_eq!(got.expose(), value.as_str());
        for body in [
            serde_json::json!({"data": {"data": {key.as_str(): n, "other": canary}}}).to_string(),
            serde_json::json!({"data": {"data": {key.as_str(): [canary.as_str()]}}}).to_string(),
            serde_json::json!({"data": {"data": {"other": canary}}}).to_string(),
            format!("<html>{canary}</html>"),
        ] {
            let err = take_field(body.as_bytes(), KvV2, &key, "kv/data/p", "https://b").expect_err("no string field");
            let shown = format!("{err} {err:?}");
            prop_assert!(!shown.contains(&canary), "{}", shown);
            if n.unsigned_abs() >= 100_000 {
                prop_assert!(!shown.contains(&n.to_string()), "{}", shown);
            }
        }
    }

    #[test]
    fn gitlab_sm_parameters_round_trip_as_unpadded_base64url(key in ".{0,12}", value in ".{0,80}") {
        use base64::Engine as _;
        let encoded = provider_gitlab_sm::encode_parameter(&key, &value);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded.as_bytes()).expect("base64url");
        let json: serde_json::Value = serde_json::from_slice(&decoded).expect("JSON");
        prop_assert_eq!(json, serde_json::json!({"key": key, "value": value}));
    }

    #[test]
    fn gitlab_sm_failures_never_quote_the_jwt(status in prop::sample::select(vec![400u16, 403, 404, 429, 500, 503]), failed in any::<bool>(), prefix in "[a-z :]{0,20}", encoded in any::<bool>()) {
        let echoed = if encoded {
            provider_gitlab_sm::encode_parameter("jwt", JWT).to_string()
        } else {
            JWT.to_owned()
        };
        let body = serde_json::json!({"errors": [format!("{prefix}{echoed} is invalid"), "permission denied"]}).to_string();
        let err = provider_gitlab_sm::read_failure(&answer(status, failed, body.as_bytes()), "https://b", &gitlab_read());
        let shown = format!("{err} {err:?}");
        prop_assert!(!shown.contains(&echoed), "{}", shown);
        prop_assert!(shown.contains("<redacted>"), "{}", shown);
        if failed {
            prop_assert_eq!(err.kind, ErrorKind::Unauthenticated);
        }
    }

    #[test]
    fn azure_secret_answers_give_their_value(value in ".{0,60}", canary in "[A-Za-z0-9]{12,24}") {
        let body = serde_json::json!({"value": value, "id": "https://kv.vault.azure.net/secrets/n/v", "tags": {"t": canary}}).to_string();
        let got = provider_azure_kv::parse_secret_answer(body.as_bytes(), "n", "https://kv").expect("a value");
        prop_assert_eq!(got.expose(), value.as_str());
        for body in [format!("{{\"id\": \"{canary}\"}}"), format!("{canary}{{")] {
            let err = provider_azure_kv::parse_secret_answer(body.as_bytes(), "n", "https://kv").expect_err("no value");
            let shown = format!("{err} {err:?}");
            prop_assert!(!shown.contains(&canary), "{}", shown);
        }
    }

    #[test]
    fn azure_failures_quote_only_safe_codes(status in prop::sample::select(vec![400u16, 401, 403, 404, 409, 429, 500]), code in "[A-Za-z]{1,20}", canary in "[a-z]{6,12} [a-z]{6,12}") {
        use provider_azure_kv::{ReadTarget, TokenFacts, TokenRequest, entra_failure, vault_failure};
        let target = ReadTarget { vault: "https://kv", name: "n", version: "", client: "app" };
        let facts = TokenFacts::default();
        let request = TokenRequest { authority: "https://login", tenant: "t", client: "app", facts: &facts };
        let kv = serde_json::json!({"error": {"code": code, "message": canary, "innererror": {"code": canary}}}).to_string();
        let err = vault_failure(&target, status, kv.as_bytes(), None);
        let shown = format!("{err} {err:?}");
        prop_assert!(!shown.contains(&canary), "{}", shown);
        if !(429..600).contains(&status) {
            prop_assert_eq!(err.code.as_deref(), Some(code.as_str()));
        }
        let entra = serde_json::json!({"error": canary, "error_description": format!("AADSTS50027: {canary}"), "error_codes": [50027]}).to_string();
        let err = entra_failure(&request, status, entra.as_bytes(), None);
        let shown = format!("{err} {err:?}");
        prop_assert!(!shown.contains(&canary), "{}", shown);
        prop_assert_eq!(err.code.as_deref(), Some("AADSTS50027"));
    }

    #[test]
    fn azure_secret_names_follow_key_vault(name in "[0-9A-Za-z-]{1,127}", bad in "[^0-9A-Za-z-]", at in 0usize..127, long in "[0-9A-Za-z-]{128,140}") {
        prop_assert!(provider_azure_kv::valid_secret_name(&name));
        let mut broken = name.clone();
        let at = (0..=broken.len()).rev().find(|i| *i <= at && broken.is_char_boundary(*i)).unwrap_or(0);
        broken.insert_str(at, &bad);
        prop_assert!(!provider_azure_kv::valid_secret_name(&broken));
        prop_assert!(!provider_azure_kv::valid_secret_name(&long));
        prop_assert!(!provider_azure_kv::valid_secret_name(""));
    }

    #[test]
    fn azure_challenges_parse_and_resources_match_only_their_domain(tenant in "[a-f0-9-]{1,36}", domain in "[a-z]{1,10}\\.[a-z]{2,6}", vault in "[a-z0-9]{1,12}", other in "[a-z]{1,10}", scope in any::<bool>()) {
        use provider_azure_kv::{parse_challenge, resource_matches};
        let authorization = format!("https://login.microsoftonline.com/{tenant}");
        let header = if scope {
            format!("Bearer authorization_uri=\"{authorization}\", scope=\"https://{domain}/.default\"")
        } else {
            format!("Bearer authorization=\"{authorization}\", resource=\"https://{domain}\"")
        };
        let (a, r) = parse_challenge(&header);
        prop_assert_eq!(a.as_deref(), Some(authorization.as_str()));
        prop_assert_eq!(r, Some(format!("https://{domain}")));
        let host = format!("{vault}.{domain}");
        prop_assert!(resource_matches(&host, &domain));
        prop_assert!(resource_matches(&host.to_ascii_uppercase(), &domain));
        let glued = format!("{vault}{domain}");
        prop_assert!(!resource_matches(&glued, &domain));
        let longer = format!("{other}{domain}");
        prop_assert!(!resource_matches(&host, &longer));
        prop_assert!(!resource_matches(&host, ""));
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
