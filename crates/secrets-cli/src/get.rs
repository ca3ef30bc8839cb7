//! `ci-secrets get KEYWORD:REFERENCE [--spread]`: one secret by its `secrets:` short form,
//! normalised and resolved exactly as a one-secret job would be (seed 004's
//! `awssecrets --secret my-secrets > .ci-secrets`).
//!
//! Spreading turns a flat JSON object into one variable per top-level key. The name rule,
//! as `aws-secretsmanager-get-secrets`' `parse-json-secrets` does it: the prefix and the key
//! joined, ASCII letters uppercased, every character other than `A-Z`, `0-9` and `_` replaced
//! by `_`, and `_` put before a leading digit. Two keys giving one name fail, naming both;
//! null, objects and arrays fail, naming the key. Strings are taken as they are, numbers as
//! their JSON text, booleans as `true` / `false`.

use crate::cli::GetArgs;
use crate::commands::{build_resolver, deliver, failure_error, summarise};
use crate::emit;
use crate::env::ProcessEnv;
use crate::input::{self, CliError};
use crate::output::{self, Delivered, Rendered};
use secrets_core::gitlab_ci::CiConfig;
use serde_json::Value;

/// The job the one-secret `.gitlab-ci.yml` has.
const JOB: &str = "ci-secrets-get";

/// Runs `get`; returns the exit code.
pub async fn run(args: GetArgs, env: &ProcessEnv) -> Result<u8, CliError> {
    let (keyword, reference) = args.reference.split_once(':').ok_or_else(|| {
        CliError::config(format!(
            "{:?} has no provider keyword: write it as `secrets:` does, e.g. \
             aws_secrets_manager:my-secrets or vault:production/db@ops",
            args.reference
        ))
    })?;
    let token_var = args.token_var.clone().unwrap_or_else(|| {
        if keyword == "aws_secrets_manager" {
            "AWS_ID_TOKEN".to_owned()
        } else {
            "VAULT_ID_TOKEN".to_owned()
        }
    });
    let variable = if args.spread { "SECRET" } else { &args.name };
    // A one-job `.gitlab-ci.yml` (JSON is YAML), so GitLab's normalisation and validation
    // apply unchanged: the short-form split, the gate variables, the token choice.
    let yaml = serde_json::json!({
        JOB: {
            "id_tokens": { &token_var: { "aud": "ci-secrets" } },
            "secrets": { variable: { keyword: reference, "file": false, "token": format!("${token_var}") } },
        }
    })
    .to_string();
    let config = CiConfig::from_yaml(&yaml).map_err(|e| CliError::config(e.to_string()))?;
    let job = config
        .job(JOB)
        .map_err(|e| CliError::config(e.to_string()))?;
    let overrides: Vec<(&str, &str)> = args
        .region
        .as_deref()
        .map(|r| ("AWS_REGION", r))
        .into_iter()
        .collect();
    let payload = input::job_payload_with(&job, env, &overrides).map_err(|e| CliError {
        code: e.code,
        message: format!("{}: {}", args.reference, e.message),
    })?;
    let resolver = build_resolver(&payload, &args.tuning, env)?;
    let mut resolution = resolver
        .resolve_payload(&payload)
        .await
        .map_err(|failure| failure_error(&failure))?;
    if args.spread {
        // Masking is about the variables the job gets: the spread ones, checked below.
        let whole = format!("{variable}: GitLab could not mask");
        resolution
            .report
            .warnings
            .retain(|w| !w.starts_with(&whole));
    }
    summarise(&resolution.report);
    let mut files = None;
    let delivered = deliver(&resolution, &mut files, None)?;
    let Some(one) = delivered.into_iter().next() else {
        let warnings = resolution.report.warnings.join("; ");
        return Err(CliError::config(format!(
            "{}: no provider of this build resolves `{keyword}:` secrets{}{warnings}",
            args.reference,
            if warnings.is_empty() { "" } else { ": " }
        )));
    };
    let rendered = if args.spread {
        let vars = spread(
            &one,
            args.prefix.as_deref().unwrap_or_default(),
            &args.reference,
        )?;
        for var in &vars {
            for problem in secrets_core::masking::mask_problems(&var.secret) {
                tracing::warn!(
                    "{}: GitLab could not mask this value as a CI/CD variable: it {problem}",
                    var.key
                );
            }
        }
        output::render(
            args.format.unwrap_or(crate::cli::Format::Dotenv),
            &vars,
            &resolution.report,
        )
    } else if let Some(format) = args.format {
        output::render(format, std::slice::from_ref(&one), &resolution.report)
    } else {
        Rendered {
            main: format!("{}\n", *one.value).into(),
            github_env: None,
        }
    };
    emit::emit(&rendered, args.output.as_deref(), env)?;
    Ok(crate::exit::OK)
}

/// The shell name for `prefix` + `key` (see the module documentation).
pub fn shell_name(prefix: &str, key: &str) -> String {
    let mut name: String = prefix
        .chars()
        .chain(key.chars())
        .map(|c| {
            let c = c.to_ascii_uppercase();
            if c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) || name.is_empty() {
        name.insert(0, '_');
    }
    name
}

/// One variable per top-level key of `one`'s value, a flat JSON object. Errors name keys and
/// the reference, never a value.
fn spread(one: &Delivered, prefix: &str, reference: &str) -> Result<Vec<Delivered>, CliError> {
    let doc: Value = serde_json::from_str(&one.secret).map_err(|e| {
        CliError::config(format!(
            "{reference}: the value is not JSON ({:?} error at line {} column {}); --spread \
             needs a JSON object such as {{\"KEY\": \"value\"}}",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(map) = doc else {
        let what = match doc {
            Value::Array(_) => "an array",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            _ => "null",
        };
        return Err(CliError::config(format!(
            "{reference}: the value is JSON {what}, not an object; --spread needs {{\"KEY\": \"value\", ...}}"
        )));
    };
    let mut out: Vec<(String, Delivered)> = Vec::with_capacity(map.len());
    for (key, value) in map {
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => {
                return Err(CliError::config(format!(
                    "{reference}: key {key:?} is null; --spread takes string, number and boolean values"
                )));
            }
            Value::Object(_) | Value::Array(_) => {
                return Err(CliError::config(format!(
                    "{reference}: key {key:?} holds a nested {}; --spread takes a flat object \
                     (string, number and boolean values): read that key with `#{key}` instead",
                    if value.is_array() { "array" } else { "object" }
                )));
            }
        };
        let name = shell_name(prefix, &key);
        if let Some((other, _)) = out.iter().find(|(_, d)| d.key == name) {
            return Err(CliError::config(format!(
                "{reference}: keys {other:?} and {key:?} both become the variable {name}; rename \
                 one in the secret, or read them separately with `#key`"
            )));
        }
        out.push((
            key,
            Delivered {
                key: name,
                value: text.clone().into(),
                file: false,
                masked: one.masked,
                raw: one.raw,
                secret: text.into(),
            },
        ));
    }
    Ok(out.into_iter().map(|(_, d)| d).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivered(value: &str) -> Delivered {
        Delivered {
            key: "SECRET".into(),
            value: value.to_owned().into(),
            file: false,
            masked: true,
            raw: true,
            secret: value.to_owned().into(),
        }
    }

    #[test]
    fn names_follow_the_documented_rule() {
        assert_eq!(shell_name("", "NPM_TOKEN"), "NPM_TOKEN");
        assert_eq!(shell_name("", "db.password"), "DB_PASSWORD");
        assert_eq!(shell_name("", "api-key"), "API_KEY");
        assert_eq!(shell_name("", "1st"), "_1ST");
        assert_eq!(shell_name("app_", "user"), "APP_USER");
        assert_eq!(shell_name("", "clé"), "CL_");
        assert_eq!(shell_name("", ""), "_");
    }

    #[test]
    fn spreads_strings_numbers_and_booleans_in_order() {
        let vars = spread(
            &delivered(r#"{"user":"u","port":5432,"ratio":1.5,"on":true}"#),
            "",
            "ref",
        )
        .unwrap();
        let got: Vec<(&str, &str)> = vars
            .iter()
            .map(|v| (v.key.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("USER", "u"),
                ("PORT", "5432"),
                ("RATIO", "1.5"),
                ("ON", "true")
            ]
        );
        assert!(vars.iter().all(|v| v.masked));
    }

    #[test]
    fn refuses_nested_null_collisions_and_non_objects_without_values() {
        let err = |v: &str| spread(&delivered(v), "", "ref").unwrap_err().message;
        let e = err(r#"{"a":"value-canary","b":{"c":1}}"#);
        assert!(e.contains("\"b\"") && e.contains("nested object"), "{e}");
        assert!(!e.contains("canary"), "{e}");
        let e = err(r#"{"a":null}"#);
        assert!(e.contains("\"a\" is null"), "{e}");
        let e = err(r#"{"db-pass":"x-canary","DB_PASS":"y"}"#);
        assert!(e.contains("\"db-pass\"") && e.contains("\"DB_PASS\"") && e.contains("DB_PASS"));
        assert!(!e.contains("canary"), "{e}");
        let e = err("not-json-canary");
        assert!(e.contains("not JSON") && !e.contains("canary"), "{e}");
        let e = err("[1,2]");
        assert!(e.contains("an array"), "{e}");
    }
}
