//! The conformance corpus (`tests/conformance/*.yaml`, cases taken from GitLab Runner's and
//! GitLab's own tests): every case through the library and, where the command exposes it,
//! through `ci-secrets`. Offline cases (expansion, options, normalisation, resolutions that
//! need no server) always run; `resolve` cases run against the xtask's OpenBao and LocalStack
//! (`cargo xtask e2e`) and skip, saying why, without them.
//!
//! A case's `expect` is what GitLab Runner (or GitLab) does. A case with `deviation:` is one
//! where this tool deliberately differs: it must match `deviation.expect` and must *not* match
//! `expect` (a deviation that stopped deviating fails, so the mark is removed). A case without
//! the mark that does not match `expect` fails. See `docs/spec.md` ("Conformance corpus").
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

use assert_cmd::Command;
use auth_oidc::testing::{E2eEnv, GitlabClaims};
use secrecy::ExposeSecret;
use secrets_core::gitlab_ci::CiConfig;
use secrets_core::{JobPayload, JobVariable, Variables};
use secrets_resolver::{Outcome, Report, ResolveOptions, Resolver};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Keys whose expected value is a list of fragments: each must occur in one of the actual
/// strings, and an empty list means "none at all".
const FRAGMENT_KEYS: &[&str] = &["warnings", "errors", "messages"];

/// The kinds a case may have.
const KINDS: &[&str] = &["expand", "expand_secret", "options", "normalise", "resolve"];

/// The audience every fixture role binds (docs/e2e-fixtures.md).
const VAULT_AUD: &str = "https://vault.example.com";

#[derive(Debug, Clone)]
struct Case {
    file: String,
    id: String,
    kind: String,
    body: Map<String, Value>,
}

impl Case {
    fn get(&self, key: &str) -> &Value {
        self.body.get(key).unwrap_or(&Value::Null)
    }

    fn str(&self, key: &str) -> &str {
        self.get(key).as_str().unwrap_or_default()
    }

    fn online(&self) -> bool {
        self.kind == "resolve" && !self.get("offline").as_bool().unwrap_or(false)
    }

    fn name(&self) -> String {
        format!("{}#{}", self.file, self.id)
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance")
}

fn load_corpus() -> Vec<Case> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/conformance exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        // Strict booleans: `y`, `n`, `on` stay strings, as GitLab's YAML reads them.
        let options = serde_saphyr::options! { strict_booleans: true };
        let doc: Value = serde_saphyr::from_str_with_options(&text, options)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for case in doc["cases"].as_array().unwrap_or_else(|| {
            panic!("{file}: a top-level `cases:` list");
        }) {
            let body = case
                .as_object()
                .unwrap_or_else(|| panic!("{file}: a case is a mapping"))
                .clone();
            cases.push(Case {
                file: file.clone(),
                id: body["id"].as_str().unwrap_or_default().to_owned(),
                kind: body["kind"].as_str().unwrap_or_default().to_owned(),
                body,
            });
        }
    }
    cases
}

// ---------------------------------------------------------------------------------------------
// Matching and judging

/// Whether `got` matches the pattern `want`: objects by their listed keys (recursively), a
/// `null` as "null or absent", arrays element by element, fragment lists by substring.
fn matches(want: &Value, got: &Value, path: &str) -> Result<(), String> {
    match want {
        Value::Null if got.is_null() => Ok(()),
        Value::Object(want) => {
            for (key, w) in want {
                let g = got.get(key).unwrap_or(&Value::Null);
                let here = format!("{path}.{key}");
                if FRAGMENT_KEYS.contains(&key.as_str()) {
                    fragments(w, g, &here)?;
                } else {
                    matches(w, g, &here)?;
                }
            }
            Ok(())
        }
        Value::Array(want) => {
            let got = got
                .as_array()
                .ok_or_else(|| format!("{path}: want a list, got {got}"))?;
            if got.len() != want.len() {
                return Err(format!(
                    "{path}: want {} items, got {}: {}",
                    want.len(),
                    got.len(),
                    Value::Array(got.clone())
                ));
            }
            for (i, (w, g)) in want.iter().zip(got).enumerate() {
                matches(w, g, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ if want == got => Ok(()),
        _ => Err(format!("{path}: want {want}, got {got}")),
    }
}

fn fragments(want: &Value, got: &Value, path: &str) -> Result<(), String> {
    let want: Vec<&str> = want
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let got: Vec<&str> = got
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if want.is_empty() && !got.is_empty() {
        return Err(format!("{path}: want none, got {got:?}"));
    }
    for fragment in want {
        if !got.iter().any(|g| g.contains(fragment)) {
            return Err(format!("{path}: no entry contains {fragment:?} in {got:?}"));
        }
    }
    Ok(())
}

/// Judges one observation of `case` (`route` says through what).
fn judge(case: &Case, route: &str, got: &Value) -> Result<(), String> {
    let expect = case.get("expect");
    let runner = matches(expect, got, "");
    let name = format!("{} ({route})", case.name());
    match case.get("deviation") {
        Value::Null => runner.map_err(|e| {
            format!("{name}: differs from the runner and is not marked as a deviation: {e}")
        }),
        deviation => {
            matches(&deviation["expect"], got, "").map_err(|e| {
                format!("{name}: documented deviation, but we no longer do what it says: {e}")
            })?;
            if runner.is_ok() {
                return Err(format!(
                    "{name}: marked as a deviation but now matches the runner; remove the mark"
                ));
            }
            Ok(())
        }
    }
}

fn report(failures: Vec<String>, ran: usize) {
    assert!(
        failures.is_empty(),
        "{} of {ran} case runs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// `variables:` as a list of `{key, value, file, raw, masked}` or a `{KEY: value}` map.
fn job_variables(value: &Value) -> Vec<JobVariable> {
    match value {
        Value::Null => Vec::new(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| JobVariable::new(k, scalar(v)))
            .collect(),
        Value::Array(list) => list
            .iter()
            .map(|v| JobVariable {
                key: v["key"].as_str().unwrap().to_owned(),
                value: scalar(&v["value"]),
                public: true,
                masked: v["masked"].as_bool().unwrap_or(false),
                raw: v["raw"].as_bool().unwrap_or(false),
                file: v["file"].as_bool().unwrap_or(false),
            })
            .collect(),
        other => panic!("variables must be a list or a map, not {other}"),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), scalar(v))).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Offline kinds through the library

fn observe_expand(case: &Case) -> Value {
    let vars = Variables::new(job_variables(case.get("variables"))).expanded();
    json!({"value": vars.expand(case.str("input"))})
}

fn observe_expand_secret(case: &Case) -> Value {
    let vars = Variables::new(job_variables(case.get("variables"))).expanded();
    let payload = JobPayload::from_json(&json!({"secrets": {"S": case.get("secret")}}).to_string())
        .unwrap_or_else(|e| panic!("{}: secret: {e}", case.name()));
    let mut secret = payload.secrets["S"].clone();
    secret.expand_variables(&|name| vars.get(name).map(|v| v.into_owned()));
    json!({"secret": serde_json::to_value(&secret).unwrap()})
}

fn observe_options(case: &Case) -> Value {
    let options = ResolveOptions::from_job_variables(&job_variables(case.get("variables")));
    let backoff: Vec<u64> = (2..=6)
        .map(|n| options.backoff_before(n).as_secs())
        .collect();
    json!({
        "fail_if_missing": options.fail_if_missing,
        "attempts": options.attempts,
        "backoff_secs": backoff,
        "warnings": options.warnings,
    })
}

fn observe_normalise(case: &Case) -> Value {
    let settings = string_map(case.get("settings"));
    let config = match CiConfig::from_yaml(case.str("ci_config")) {
        Ok(c) => c,
        Err(e) => return json!({"secrets": null, "warnings": [], "errors": [e.to_string()]}),
    };
    let job = match config.job(case.str("job")) {
        Ok(j) => j,
        Err(e) => return json!({"secrets": null, "warnings": [], "errors": [e.to_string()]}),
    };
    // As the CLI reads settings: the environment first, then the file's variables.
    let setting = |name: &str| {
        settings.get(name).cloned().or_else(|| {
            job.variables()
                .iter()
                .rev()
                .find(|v| v.key == name)
                .map(|v| v.value.clone())
        })
    };
    match job.secrets_payload_with_warnings(&setting) {
        Ok((secrets, warnings)) => json!({
            "secrets": serde_json::to_value(&secrets).unwrap(),
            "warnings": warnings,
            "errors": [],
        }),
        Err(errors) => json!({
            "secrets": null,
            "warnings": [],
            "errors": errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
    }
}

fn offline_observation(case: &Case) -> Option<Value> {
    Some(match case.kind.as_str() {
        "expand" => observe_expand(case),
        "expand_secret" => observe_expand_secret(case),
        "options" => observe_options(case),
        "normalise" => observe_normalise(case),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// The binary

fn cli(env: &BTreeMap<String, String>) -> Command {
    let mut cmd = Command::cargo_bin("ci-secrets").unwrap();
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env);
    cmd
}

/// `ci-secrets check --format json` on the case's `.gitlab-ci.yml`, the settings as the
/// environment; warnings come on stderr.
fn observe_normalise_cli(case: &Case, dir: &Path) -> Value {
    let file = dir.join(format!("{}.yml", case.id));
    std::fs::write(&file, case.str("ci_config")).unwrap();
    let settings = string_map(case.get("settings"));
    let out = cli(&settings)
        .args([
            "check",
            "--format",
            "json",
            "--job",
            case.str("job"),
            "--ci-config",
        ])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The command logs without levels: on success, every stderr line is a warning or a note.
    let warnings: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if out.status.success() {
        let doc: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{}: check output: {e}\n{stdout}", case.name()));
        json!({"secrets": doc["payload"]["secrets"], "warnings": warnings, "errors": []})
    } else {
        let mut errors: Vec<String> = stderr.lines().map(str::to_owned).collect();
        if let Ok(doc) = serde_json::from_str::<Value>(&stdout) {
            for p in doc["problems"].as_array().into_iter().flatten() {
                errors.extend(
                    p.as_str()
                        .map(|s| s.lines().map(str::to_owned))
                        .into_iter()
                        .flatten(),
                );
            }
        }
        json!({"secrets": null, "warnings": [], "errors": errors})
    }
}

// ---------------------------------------------------------------------------------------------
// Resolutions

/// What the servers and the job look like for one case run.
struct World {
    vault_addr: String,
    /// `{{P}}`: the case's Vault path prefix (readable by the `ci` role).
    vault_prefix: String,
    /// `{{AWS_P}}`: the case's AWS secret-name prefix.
    aws_prefix: String,
    /// `$VAULT_ID_TOKEN`: a valid ID token for the `ci` role.
    token: String,
    host_env: BTreeMap<String, String>,
}

impl World {
    /// No servers: URLs point nowhere, tokens are placeholders (offline cases never use them).
    fn offline(case: &Case) -> Self {
        Self {
            vault_addr: "http://127.0.0.1:9".into(),
            vault_prefix: format!("ci/conformance/{}", case.id),
            aws_prefix: format!("conformance/{}", case.id),
            token: String::new(),
            host_env: BTreeMap::new(),
        }
    }

    fn fill(&self, text: &str) -> String {
        text.replace("{{VAULT}}", &self.vault_addr)
            .replace("{{AWS_P}}", &self.aws_prefix)
            .replace("{{P}}", &self.vault_prefix)
    }

    fn fill_value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.fill(s)),
            Value::Array(a) => Value::Array(a.iter().map(|v| self.fill_value(v)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (self.fill(k), self.fill_value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// The job payload of a `resolve` case: its `payload.secrets` with the placeholders
    /// filled, its `variables`, and `VAULT_ID_TOKEN` (masked) first.
    fn payload(&self, case: &Case) -> Value {
        let secrets = self.fill_value(&case.get("payload")["secrets"]);
        let mut variables =
            vec![json!({"key": "VAULT_ID_TOKEN", "value": self.token, "masked": true})];
        for v in job_variables(case.get("variables")) {
            variables.push(
                json!({"key": v.key, "value": self.fill(&v.value), "public": v.public,
                "masked": v.masked, "raw": v.raw, "file": v.file}),
            );
        }
        json!({"secrets": secrets, "variables": variables})
    }
}

fn resolution_observation(result: Result<(Vec<Value>, Report), (String, Report)>) -> Value {
    match result {
        Ok((variables, report)) => json!({
            "variables": variables,
            "failure": null,
            "warnings": report.warnings,
            "requests": report.requests,
        }),
        Err((_, report)) => {
            let failed: Vec<(String, String)> = report
                .secrets
                .iter()
                .filter_map(|s| match &s.outcome {
                    Outcome::Failed {
                        message,
                        failure_reason,
                        ..
                    } => Some((message.clone(), failure_reason.as_str().to_owned())),
                    _ => None,
                })
                .collect();
            json!({
                "variables": null,
                "failure": {
                    "reason": failed.first().map(|f| f.1.clone()),
                    "messages": failed.iter().map(|f| f.0.clone()).collect::<Vec<_>>(),
                },
                "warnings": report.warnings,
                "requests": report.requests,
            })
        }
    }
}

async fn observe_resolve_library(case: &Case, world: &World) -> Value {
    let payload = JobPayload::from_json(&world.payload(case).to_string())
        .unwrap_or_else(|e| panic!("{}: payload: {e}", case.name()));
    let vault = provider_vault::VaultProvider::from_env().unwrap();
    let aws = provider_aws_sm::AwsSecretsManagerProvider::builder()
        .with_env_vars(world.host_env.clone())
        .build()
        .unwrap();
    let mut options = ResolveOptions::from_job_variables(&payload.variables);
    options.request_timeout = std::time::Duration::from_secs(5);
    let resolver = Resolver::builder()
        .with_provider(Arc::new(vault))
        .with_provider(Arc::new(aws))
        .with_options(options)
        .build();
    let result = match resolver.resolve_payload(&payload).await {
        Ok(mut resolution) => {
            // The report counts the revoke once it is done.
            resolution.close().await;
            let vars = resolution
                .variables
                .iter()
                .map(|v| {
                    json!({"key": v.key, "value": v.value.expose(), "file": v.file,
                           "masked": v.masked, "raw": v.raw})
                })
                .collect();
            Ok((vars, resolution.report))
        }
        Err(failure) => Err((failure.to_string(), failure.report)),
    };
    resolution_observation(result)
}

/// `ci-secrets resolve --format json --job-payload`; file variables read back from their files.
fn observe_resolve_cli(case: &Case, world: &World, dir: &Path) -> Value {
    let file = dir.join(format!("{}.json", case.id));
    std::fs::write(&file, world.payload(case).to_string()).unwrap();
    let files = dir.join(format!("files-{}", case.id));
    let out = cli(&world.host_env)
        .args([
            "resolve",
            "--format",
            "json",
            "--request-timeout",
            "5",
            "--files-dir",
        ])
        .arg(&files)
        .arg("--job-payload")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let vars: Vec<Value> = doc["variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let mut v = v.clone();
                if v["file"] == true {
                    let path = v["value"].as_str().unwrap().to_owned();
                    v["value"] = std::fs::read_to_string(&path).unwrap().into();
                }
                v
            })
            .collect();
        json!({"variables": vars, "failure": null, "warnings": doc["report"]["warnings"],
               "requests": doc["report"]["requests"]})
    } else {
        // `  - <message> [<failure reason>]` per failed secret.
        let failed: Vec<(String, String)> = stderr
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("- "))
            .filter_map(|l| {
                let (message, reason) = l.rsplit_once(" [")?;
                Some((message.to_owned(), reason.trim_end_matches(']').to_owned()))
            })
            .collect();
        assert!(
            files.read_dir().map_or(true, |mut d| d.next().is_none()),
            "{}: nothing is written on failure",
            case.name()
        );
        json!({
            "variables": null,
            "failure": {
                "reason": failed.first().map(|f| f.1.clone()),
                "messages": failed.iter().map(|f| f.0.clone()).collect::<Vec<_>>(),
            },
            "warnings": stderr.lines().collect::<Vec<_>>(),
            "requests": null,
        })
    }
}

/// The binary's observation lacks what it does not print: request counts on failure.
fn without_unobservable(case: &Case, route: &str) -> Case {
    let mut case = case.clone();
    if route == "ci-secrets" {
        let strip = |expect: &mut Value| {
            if expect["failure"].is_object()
                && let Some(o) = expect.as_object_mut()
            {
                o.remove("requests");
                o.remove("warnings");
            }
        };
        if let Some(expect) = case.body.get_mut("expect") {
            strip(expect);
        }
        if let Some(expect) = case
            .body
            .get_mut("deviation")
            .and_then(|d| d.get_mut("expect"))
        {
            strip(expect);
        }
    }
    case
}

// ---------------------------------------------------------------------------------------------
// Seeding

struct Seeder {
    http: reqwest::Client,
    env: E2eEnv,
}

impl Seeder {
    async fn vault(&self, world: &World, entry: &Value) {
        let root = self.env.vault_root_token().expose_secret().to_owned();
        let engine = entry["engine"].as_str().unwrap_or("kv-v2");
        let mount =
            entry["mount"]
                .as_str()
                .unwrap_or(if engine == "kv-v2" { "secret" } else { "kv1" });
        let path = world.fill(entry["path"].as_str().unwrap());
        let data = world.fill_value(&entry["data"]);
        let (url, body) = if engine == "kv-v2" {
            (
                format!("{}/v1/{mount}/data/{path}", world.vault_addr),
                json!({"data": data}),
            )
        } else {
            (format!("{}/v1/{mount}/{path}", world.vault_addr), data)
        };
        let answer = self
            .http
            .post(&url)
            .header("X-Vault-Token", &root)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_success(),
            "seeding {url}: {}",
            answer.status()
        );
        if entry["deleted"].as_bool().unwrap_or(false) {
            let answer = self
                .http
                .delete(format!("{}/v1/{mount}/data/{path}", world.vault_addr))
                .header("X-Vault-Token", &root)
                .send()
                .await
                .unwrap();
            assert!(answer.status().is_success(), "deleting {path}");
        }
    }

    async fn aws(&self, world: &World, entry: &Value) {
        let region = entry["region"].as_str().unwrap_or("us-east-1");
        let name = world.fill(entry["name"].as_str().unwrap());
        // The SDK fills the idempotency token; a hand-made request must too (any UUID).
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            name.hash(&mut h);
            h.finish()
        };
        let token = format!(
            "{:08x}-0000-4000-8000-{:012x}",
            hash >> 32,
            hash & 0xffff_ffff_ffff
        );
        let mut body = json!({"Name": name, "ClientRequestToken": token});
        if let Some(s) = entry.get("string") {
            body["SecretString"] = Value::String(match s {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        }
        if let Some(b) = entry.get("binary_base64") {
            body["SecretBinary"] = b.clone();
        }
        // LocalStack reads the region (and the account) from the credential scope; it does
        // not check signatures.
        let answer = self
            .http
            .post(self.env.aws_endpoint())
            .header("Content-Type", "application/x-amz-json-1.1")
            .header("X-Amz-Target", "secretsmanager.CreateSecret")
            .header(
                "Authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=test/20260101/{region}/secretsmanager/aws4_request, SignedHeaders=host, Signature=0"
                ),
            )
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        assert!(
            status.is_success() || text.contains("ResourceExistsException"),
            "seeding {name}: {status} {text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn the_corpus_is_well_formed_and_cites_its_sources() {
    let cases = load_corpus();
    let mut ids = BTreeSet::new();
    let mut problems = Vec::new();
    for case in &cases {
        if case.id.is_empty() || !ids.insert(case.id.clone()) {
            problems.push(format!("{}: missing or duplicate id", case.name()));
        }
        if !KINDS.contains(&case.kind.as_str()) {
            problems.push(format!("{}: unknown kind {:?}", case.name(), case.kind));
        }
        let source = case.get("source");
        for key in ["repo", "path", "test"] {
            if source[key].as_str().is_none_or(str::is_empty) {
                problems.push(format!("{}: source.{key} is missing", case.name()));
            }
        }
        if case.get("expect").is_null() {
            problems.push(format!("{}: no expect", case.name()));
        }
        let deviation = case.get("deviation");
        if !deviation.is_null()
            && (deviation["expect"].is_null()
                || deviation["ours"].as_str().is_none_or(str::is_empty)
                || deviation["why"].as_str().is_none_or(str::is_empty))
        {
            problems.push(format!(
                "{}: a deviation says what we do (`ours`, `expect`) and `why`",
                case.name()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(cases.len() > 100, "the corpus has {} cases", cases.len());
}

#[test]
fn offline_cases_through_the_library() {
    let cases = load_corpus();
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in &cases {
        if let Some(got) = offline_observation(case) {
            ran += 1;
            failures.extend(judge(case, "library", &got).err());
        }
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for case in cases.iter().filter(|c| c.kind == "resolve" && !c.online()) {
        ran += 1;
        let world = World::offline(case);
        let got = runtime.block_on(observe_resolve_library(case, &world));
        failures.extend(judge(case, "library", &got).err());
    }
    report(failures, ran);
}

#[test]
fn offline_cases_through_the_binary() {
    let cases = load_corpus();
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in &cases {
        let got = match case.kind.as_str() {
            "normalise" => observe_normalise_cli(case, dir.path()),
            "resolve" if !case.online() => {
                observe_resolve_cli(case, &World::offline(case), dir.path())
            }
            _ => continue,
        };
        ran += 1;
        let case = without_unobservable(case, "ci-secrets");
        failures.extend(judge(&case, "ci-secrets", &got).err());
    }
    report(failures, ran);
}

#[test]
fn e2e_resolve_cases_through_the_library_and_the_binary() {
    let Some(env) = E2eEnv::for_test("e2e_resolve_cases_through_the_library_and_the_binary") else {
        return;
    };
    let cases: Vec<Case> = load_corpus().into_iter().filter(Case::online).collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let seeder = Seeder {
        http: reqwest::Client::new(),
        env: env.clone(),
    };
    let token = env
        .minter()
        .mint(&GitlabClaims::new().with_audience(VAULT_AUD))
        .unwrap()
        .expose_secret()
        .to_owned();
    let run = std::process::id();
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in &cases {
        let world = World {
            vault_addr: env.vault_addr().to_owned(),
            vault_prefix: format!("ci/conformance/{}", case.id),
            aws_prefix: format!("conformance/{run}/{}", case.id),
            token: token.clone(),
            host_env: [
                ("AWS_ENDPOINT_URL", env.aws_endpoint()),
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        };
        runtime.block_on(async {
            for entry in case.get("seed")["vault"].as_array().into_iter().flatten() {
                seeder.vault(&world, entry).await;
            }
            for entry in case.get("seed")["aws"].as_array().into_iter().flatten() {
                seeder.aws(&world, entry).await;
            }
        });
        let got = runtime.block_on(observe_resolve_library(case, &world));
        failures.extend(judge(case, "library", &got).err());
        let got = observe_resolve_cli(case, &world, dir.path());
        let case = without_unobservable(case, "ci-secrets");
        failures.extend(judge(&case, "ci-secrets", &got).err());
        ran += 2;
    }
    report(failures, ran);
}
