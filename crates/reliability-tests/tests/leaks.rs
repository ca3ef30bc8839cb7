//! Leaks: canary values and canary tokens (the token string itself is the canary) must never
//! reach logs at the most verbose level, error messages, reports, `Debug` of the public types
//! that hold them, or panic messages, on every provider path, successes and failures; in
//! process (a tracing subscriber capturing everything at TRACE, `log` records included) and
//! through `ci-secrets -vvv` with `CI_SECRETS_LOG=trace`.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

mod common;

use canary_capture::{assert_clean, logs, panic_message};

use common::*;
use secrets_core::{JobPayload, JobVariable, SecretValue, Variables};
use secrets_resolver::{Resolution, ResolveFailure};
use serde_json::json;
use std::time::Duration;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

// ---------------------------------------------------------------------------------------
// Capture: every tracing event (and `log` record) of this test binary at TRACE, and every
// panic message.

/// Everything a resolution shows without exposing a value: Display, Debug, the report as
/// JSON, and the panic messages of `unwrap` / `unwrap_err` on it.
fn shown(result: Result<Resolution, ResolveFailure>) -> String {
    let mut out = format!("{result:?}\n{result:#?}\n");
    match &result {
        Ok(resolution) => {
            out.push_str(&serde_json::to_string(&resolution.report).unwrap_or_default());
            for v in &resolution.variables {
                out.push_str(&format!("{v:?} {:?}", v.value));
            }
        }
        Err(failure) => {
            out.push_str(&failure.to_string());
            out.push_str(&serde_json::to_string(&failure.report).unwrap_or_default());
        }
    }
    let ok = result.is_ok();
    out.push_str(&panic_message(move || {
        if ok {
            let _ = result.unwrap_err();
        } else {
            let _ = result.unwrap();
        }
    }));
    out
}

async fn bounded<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG, fut)
        .await
        .expect("the test hung past its bound")
}

// ---------------------------------------------------------------------------------------
// Vault

struct VaultCanaries {
    value: String,
    sibling: String,
    token_sig: String,
    token: String,
    refused_token_sig: String,
    refused_token: String,
    vault_token: String,
}

impl VaultCanaries {
    fn new() -> Self {
        let token_sig = canary("vaultjwt");
        let refused_token_sig = canary("refusedjwt");
        Self {
            value: canary("vaultvalue"),
            sibling: canary("vaultsibling"),
            token: jwt("https://vault.example.com", &token_sig),
            token_sig,
            refused_token: jwt("https://vault.example.com", &refused_token_sig),
            refused_token_sig,
            vault_token: canary("hvs"),
        }
    }

    fn all(&self) -> Vec<&str> {
        vec![
            &self.value,
            &self.sibling,
            &self.token_sig,
            &self.token,
            &self.refused_token_sig,
            &self.refused_token,
            &self.vault_token,
        ]
    }
}

/// A Vault that echoes tokens in its error messages, as some proxies and plugins do.
async fn leaky_vault(c: &VaultCanaries) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v1/auth/jwt/login"))
        .and(body_string_contains(c.refused_token_sig.as_str()))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "errors": [format!("error validating token {}: invalid audience", c.refused_token)]
        })))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v1/auth/jwt/login"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "auth": {"client_token": c.vault_token, "lease_duration": 60}
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/token/revoke-self"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/ci/app"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": {"data": {"password": c.value, "other": c.sibling}, "metadata": {"version": 1}}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/ci/denied"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "errors": [format!("permission denied for token {}", c.vault_token)]
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/ci/broken"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "errors": ["internal error"],
            "data": {"password": c.value},
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/ci/truncated"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            format!(r#"{{"data": {{"data": {{"password": "{}"#, c.value),
            "application/json",
        ))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn vault_paths_leak_nothing_at_trace_level() {
    bounded(async {
        let logs = logs();
        let c = VaultCanaries::new();
        let server = leaky_vault(&c).await;
        let url = server.uri();
        let s =
            |path: &str, field: &str, token: &str| vault_secret(&url, "secret", path, field, token);

        // Success: the value comes back, and only as the value.
        let ok = resolver(&url, fast_options())
            .resolve(
                &secrets(vec![("VAULT_GOOD", s("ci/app", "password", &c.token))]),
                &Default::default(),
            )
            .await;
        let resolution = ok.as_ref().expect("resolves");
        assert_eq!(resolution.variables[0].value.expose(), c.value);
        assert_clean("a successful resolution", &shown(ok), &c.all());

        // Failures of every kind, together.
        let failed = resolver(&url, fast_options())
            .resolve(
                &secrets(vec![
                    ("VAULT_OK", s("ci/app", "password", &c.token)),
                    ("VAULT_DENIED", s("ci/denied", "password", &c.token)),
                    ("VAULT_BROKEN", s("ci/broken", "password", &c.token)),
                    ("VAULT_TRUNCATED", s("ci/truncated", "password", &c.token)),
                    ("VAULT_NO_FIELD", s("ci/app", "missing", &c.token)),
                    ("VAULT_REFUSED", s("ci/app", "password", &c.refused_token)),
                ]),
                &Default::default(),
            )
            .await;
        let failure = failed.as_ref().expect_err("fails");
        assert_eq!(failure.report.failures().count(), 5, "{failure}");
        assert!(
            failure.to_string().contains("other, password"),
            "field names (not values) are listed: {failure}"
        );
        assert_clean("a failed resolution", &shown(failed), &c.all());

        let logged = logs.text();
        assert!(
            logged.contains("VAULT_REFUSED") && logged.contains("TRACE"),
            "the capture works"
        );
        assert_clean("the trace-level logs", &logged, &c.all());
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// AWS

struct AwsCanaries {
    value: String,
    json_value: String,
    json_sibling: String,
    not_json: String,
    host_secret_key: String,
    token_sig: String,
    token: String,
    refused_token_sig: String,
    refused_token: String,
    sts_secret_key: String,
    sts_session_token: String,
}

impl AwsCanaries {
    fn new() -> Self {
        let token_sig = canary("awsjwt");
        let refused_token_sig = canary("awsrefusedjwt");
        Self {
            value: canary("awsvalue"),
            json_value: canary("awsjsonvalue"),
            json_sibling: canary("awsjsonsibling"),
            not_json: canary("awsnotjson"),
            host_secret_key: canary("hostsecretkey"),
            token: jwt("sts.amazonaws.com", &token_sig),
            token_sig,
            refused_token: jwt("sts.amazonaws.com", &refused_token_sig),
            refused_token_sig,
            sts_secret_key: canary("stssecretkey"),
            sts_session_token: canary("stssessiontoken"),
        }
    }

    fn all(&self) -> Vec<&str> {
        vec![
            &self.value,
            &self.json_value,
            &self.json_sibling,
            &self.not_json,
            &self.host_secret_key,
            &self.token_sig,
            &self.token,
            &self.refused_token_sig,
            &self.refused_token,
            &self.sts_secret_key,
            &self.sts_session_token,
        ]
    }
}

/// Secrets Manager answers by secret id: `GetSecretValue` and `BatchGetSecretValue`; unknown
/// ids are `ResourceNotFoundException` entries whose message is the second member.
struct Sm(Vec<(String, String)>, String);

impl Sm {
    fn value(&self, id: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, v)| v.as_str())
    }
}

impl Respond for Sm {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let arn =
            |id: &str| format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{id}-AbCdEf");
        let aws = |status: u16, body: serde_json::Value| {
            ResponseTemplate::new(status)
                .set_body_raw(body.to_string(), "application/x-amz-json-1.1")
        };
        let batch = request
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.ends_with("BatchGetSecretValue"));
        if batch {
            let mut values = Vec::new();
            let mut errors = Vec::new();
            for id in body["SecretIdList"].as_array().into_iter().flatten() {
                let id = id.as_str().unwrap_or_default();
                match self.value(id) {
                    Some(v) => values.push(json!({"ARN": arn(id), "Name": id, "SecretString": v})),
                    None => errors.push(json!({"SecretId": id, "ErrorCode": "ResourceNotFoundException", "Message": self.1})),
                }
            }
            aws(200, json!({"SecretValues": values, "Errors": errors}))
        } else {
            let id = body["SecretId"].as_str().unwrap_or_default();
            match self.value(id) {
                Some(v) => aws(200, json!({"ARN": arn(id), "Name": id, "SecretString": v})),
                None => aws(
                    400,
                    json!({"__type": "ResourceNotFoundException", "message": self.1}),
                ),
            }
        }
    }
}

fn sts_ok(c: &AwsCanaries) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(
        format!(
            r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>project_path:mygroup/myproject:ref_type:branch:ref:main</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/gitlab-ci/1001-42-gitlab</Arn>
      <AssumedRoleId>AROAEXAMPLE:1001-42-gitlab</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIARELIABILITY</AccessKeyId>
      <SecretAccessKey>{}</SecretAccessKey>
      <SessionToken>{}</SessionToken>
      <Expiration>2100-01-01T00:00:00Z</Expiration>
    </Credentials>
    <Provider>gitlab.example.com</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#,
            c.sts_secret_key, c.sts_session_token
        ),
        "text/xml",
    )
}

fn sts_refused(c: &AwsCanaries, echo: bool) -> ResponseTemplate {
    let message = if echo {
        format!(
            "Not authorized to perform sts:AssumeRoleWithWebIdentity with {}",
            c.refused_token
        )
    } else {
        "Not authorized to perform sts:AssumeRoleWithWebIdentity".to_owned()
    };
    ResponseTemplate::new(403).set_body_raw(
        format!(
            r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{message}</Message></Error>
  <RequestId>req-2</RequestId>
</ErrorResponse>"#
        ),
        "text/xml",
    )
}

/// Secrets Manager and STS. With `echo`, their error messages quote a value and the refused
/// token (AWS does not do that, but a proxy or an emulator could).
async fn leaky_aws(c: &AwsCanaries, echo: bool) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("AssumeRoleWithWebIdentity"))
        .and(body_string_contains(c.refused_token_sig.as_str()))
        .respond_with(sts_refused(c, echo))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("AssumeRoleWithWebIdentity"))
        .respond_with(sts_ok(c))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(header("content-type", "application/x-amz-json-1.1"))
        .respond_with(Sm(
            vec![
                ("app/plain".into(), c.value.clone()),
                (
                    "app/json".into(),
                    json!({"password": c.json_value, "other": c.json_sibling}).to_string(),
                ),
                ("app/notjson".into(), c.not_json.clone()),
            ],
            if echo {
                format!("no such secret; did you mean {}", c.value)
            } else {
                "Secrets Manager can't find the specified secret.".to_owned()
            },
        ))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn aws_paths_leak_nothing_at_trace_level() {
    bounded(async {
        let logs = logs();
        let c = AwsCanaries::new();
        let server = leaky_aws(&c, false).await;
        let url = server.uri();
        let r = || resolver_with_aws_key(&url, &c.host_secret_key, fast_options());

        // Success on both identity paths: the default chain and web identity.
        let ok = r()
            .resolve(
                &secrets(vec![
                    ("AWS_PLAIN", aws_secret("app/plain", None, "us-east-1")),
                    (
                        "AWS_FIELD",
                        aws_secret("app/json", Some("password"), "us-east-1"),
                    ),
                    (
                        "AWS_OIDC",
                        aws_oidc_secret("app/json", Some("password"), "us-east-1", &c.token),
                    ),
                ]),
                &Default::default(),
            )
            .await;
        let resolution = ok.as_ref().expect("resolves");
        let values: Vec<&str> = resolution
            .variables
            .iter()
            .map(|v| v.value.expose())
            .collect();
        assert_eq!(values, [c.value.as_str(), &c.json_value, &c.json_value]);
        assert_eq!(resolution.report.requests_of("sts_assume_role"), 1);
        assert_clean("a successful AWS resolution", &shown(ok), &c.all());

        // Failures: missing secret, missing field, a field of a non-JSON value, refused STS.
        let failed = r()
            .resolve(
                &secrets(vec![
                    ("AWS_MISSING", aws_secret("app/missing", None, "us-east-1")),
                    (
                        "AWS_NO_FIELD",
                        aws_secret("app/json", Some("nope"), "us-east-1"),
                    ),
                    (
                        "AWS_NOT_JSON",
                        aws_secret("app/notjson", Some("password"), "us-east-1"),
                    ),
                    (
                        "AWS_REFUSED",
                        aws_oidc_secret("app/plain", None, "us-east-1", &c.refused_token),
                    ),
                ]),
                &Default::default(),
            )
            .await;
        let failure = failed.as_ref().expect_err("fails");
        assert_eq!(failure.report.failures().count(), 4, "{failure}");
        assert_clean("a failed AWS resolution", &shown(failed), &c.all());

        let logged = logs.text();
        assert!(logged.contains("AWS_REFUSED"), "the capture works");
        assert_clean("the trace-level logs", &logged, &c.all());
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Debug of the public types that hold a value or a token.

#[test]
fn debug_of_every_type_holding_a_secret_is_redacted() {
    let value = canary("debugvalue");
    let token_sig = canary("debugjwt");
    let token = jwt("aud", &token_sig);
    let c = [value.as_str(), token.as_str(), token_sig.as_str()];
    let check = |what: &str, printed: String| assert_clean(what, &printed, &c);

    let v = SecretValue::new(value.clone());
    check("SecretValue", format!("{v:?} {v:#?}"));
    let secret = vault_secret("http://127.0.0.1:1", "secret", "ci/app", "password", &token);
    check("Secret (vault jwt)", format!("{secret:?} {secret:#?}"));
    let aws = aws_oidc_secret("app/x", None, "us-east-1", &token);
    check("Secret (aws jwt)", format!("{aws:?} {aws:#?}"));
    let request = secrets_core::SecretRequest {
        variable: "X".into(),
        secret: secret.clone(),
    };
    check("SecretRequest", format!("{request:?}"));
    let variable = secrets_core::materialise::SecretVariable::new("X", &secret, v.duplicate());
    check("SecretVariable", format!("{variable:?} {variable:#?}"));
    let resolved = secrets_core::Resolved::new(v.duplicate());
    check("Resolved", format!("{resolved:?}"));
    let masked = JobVariable {
        key: "CI_JOB_TOKEN".into(),
        value: value.clone(),
        masked: true,
        ..JobVariable::default()
    };
    let hidden = JobVariable {
        key: "VAULT_ID_TOKEN".into(),
        value: token.clone(),
        public: false,
        ..JobVariable::default()
    };
    check("JobVariable", format!("{masked:?} {hidden:?}"));
    let payload = JobPayload {
        secrets: secrets(vec![("X", secret.clone())]),
        variables: vec![masked.clone(), hidden.clone()],
    };
    check("JobPayload", format!("{payload:?} {payload:#?}"));
    check(
        "Variables",
        format!("{:?}", Variables::new(vec![masked, hidden])),
    );
    let id = auth_oidc::IdToken::parse(&token).expect("a JWT");
    check("IdToken", format!("{id:?} {id:#?}"));
    let vault = provider_vault::VaultProviderBuilder::new()
        .with_env(secrets_core::Environment::default())
        .with_revoke_token(true);
    check("VaultProviderBuilder", format!("{vault:?}"));
    check(
        "VaultProvider",
        format!("{:?}", vault.build().expect("builds")),
    );
    let aws_builder = provider_aws_sm::AwsSecretsManagerBuilder::new()
        .with_env_vars(aws_env("http://127.0.0.1:1", &value));
    check("AwsSecretsManagerBuilder", format!("{aws_builder:?}"));
    check(
        "AwsSecretsManagerProvider",
        format!("{:?}", aws_builder.build().expect("builds")),
    );
    let env_text = format!(
        "E2E_VAULT_ADDR=http://127.0.0.1:1\nE2E_VAULT_ROOT_TOKEN={value}\nE2E_OIDC_ISSUER=http://127.0.0.1:2\n\
         E2E_OIDC_SIGNING_KEY=/nonexistent\nE2E_OIDC_KID=k\nE2E_AWS_ENDPOINT=http://127.0.0.1:3\n\
         E2E_AWS_ACCOUNT=000000000000\nE2E_SHARED_SECRET_ARN=arn:x\nE2E_PIDS=1\n"
    );
    let e2e = auth_oidc::testing::E2eEnv::parse(std::path::Path::new("services.env"), &env_text)
        .expect("parses");
    check("E2eEnv", format!("{e2e:?}"));
}

// ---------------------------------------------------------------------------------------
// The command: `ci-secrets -vvv` with CI_SECRETS_LOG=trace.

struct CliRun {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn run_cli(args: &[&str], env: &[(&str, &str)], home: &std::path::Path) -> CliRun {
    let mut command = tokio::process::Command::new(ci_secrets_bin());
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("TMPDIR", home)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("ci-secrets finished in time")
        .expect("ci-secrets ran");
    CliRun {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_at_trace_level_prints_values_only_as_its_output() {
    bounded(async {
        let vc = VaultCanaries::new();
        let ac = AwsCanaries::new();
        let job_token = canary("cijobtoken");
        let vault = leaky_vault(&vc).await;
        let aws = leaky_aws(&ac, false).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let vault_url = vault.uri();
        let mut everything: Vec<&str> = vc.all();
        everything.extend(ac.all());
        everything.push(&job_token);

        let payload = |failing: bool| {
            let mut secrets = json!({
                "VAULT_GOOD": vault_secret(&vault_url, "secret", "ci/app", "password", "$VAULT_ID_TOKEN"),
                "AWS_PLAIN": aws_secret("app/plain", None, "us-east-1"),
                "AWS_OIDC": aws_oidc_secret("app/json", Some("password"), "us-east-1", "$AWS_OIDC_TOKEN"),
            });
            if failing {
                secrets["VAULT_DENIED"] = serde_json::to_value(vault_secret(
                    &vault_url, "secret", "ci/denied", "password", "$VAULT_ID_TOKEN",
                ))
                .unwrap_or_default();
                secrets["VAULT_REFUSED"] = serde_json::to_value(vault_secret(
                    &vault_url, "secret", "ci/app", "password", &vc.refused_token,
                ))
                .unwrap_or_default();
                secrets["AWS_REFUSED"] = serde_json::to_value(aws_oidc_secret(
                    "app/plain", None, "us-east-1", &ac.refused_token,
                ))
                .unwrap_or_default();
            }
            json!({
                "variables": [
                    {"key": "VAULT_ID_TOKEN", "value": vc.token, "public": false, "masked": true},
                    {"key": "AWS_OIDC_TOKEN", "value": ac.token, "public": false, "masked": true},
                    {"key": "CI_JOB_TOKEN", "value": job_token, "public": false, "masked": true},
                ],
                "secrets": secrets,
            })
            .to_string()
        };
        let env = [
            ("CI_SECRETS_LOG", "trace".to_owned()),
            ("AWS_ENDPOINT_URL", aws.uri()),
            ("AWS_ACCESS_KEY_ID", "AKIDRELIABILITYTEST".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", ac.host_secret_key.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

        for format in ["dotenv", "json", "shell"] {
            let ok_path = dir.path().join("ok.json");
            std::fs::write(&ok_path, payload(false)).expect("write");
            let ok_arg = ok_path.to_string_lossy().into_owned();
            let ok = run_cli(
                &["-vvv", "resolve", "--job-payload", &ok_arg, "--format", format],
                &env,
                dir.path(),
            )
            .await;
            assert_eq!(ok.code, Some(0), "{format}: {}", ok.stderr);
            for value in [&vc.value, &ac.value, &ac.json_value] {
                assert!(ok.stdout.contains(value.as_str()), "{format}: the output has the values");
            }
            assert!(ok.stderr.contains("TRACE"), "trace logging is on");
            let others: Vec<&str> = everything
                .iter()
                .copied()
                .filter(|c| ![vc.value.as_str(), &ac.value, &ac.json_value].contains(c))
                .collect();
            assert_clean(&format!("stdout of a success ({format})"), &ok.stdout, &others);
            assert_clean(&format!("stderr of a success ({format})"), &ok.stderr, &everything);
        }

        let failing_path = dir.path().join("failing.json");
        std::fs::write(&failing_path, payload(true)).expect("write");
        let failing_arg = failing_path.to_string_lossy().into_owned();
        let failed = run_cli(
            &["-vvv", "resolve", "--job-payload", &failing_arg],
            &env,
            dir.path(),
        )
        .await;
        assert_eq!(failed.code, Some(3), "{}", failed.stderr);
        assert!(failed.stderr.contains("VAULT_DENIED") && failed.stderr.contains("AWS_REFUSED"));
        assert_eq!(failed.stdout, "", "nothing is printed on failure");
        assert_clean("stderr of a failure", &failed.stderr, &everything);

        // A malformed payload quoting a token in a bad place: the parse error shows a position.
        let bad_path = dir.path().join("bad.json");
        std::fs::write(
            &bad_path,
            json!({"variables": vc.token, "secrets": {}}).to_string(),
        )
        .expect("write");
        let bad_arg = bad_path.to_string_lossy().into_owned();
        let bad = run_cli(&["-vvv", "resolve", "--job-payload", &bad_arg], &env, dir.path()).await;
        assert_eq!(bad.code, Some(2), "{}", bad.stderr);
        assert!(bad.stderr.contains("line 1 column"), "{}", bad.stderr);
        assert_clean("stderr of a malformed payload", &bad.stderr, &everything);
    })
    .await;
}

/// A service whose error messages quote a value and the refused token (AWS does not, but an
/// emulator or a proxy could): the tool's own errors and report must not repeat them.
#[tokio::test]
async fn service_messages_quoting_secrets_stay_out_of_errors_and_reports() {
    bounded(async {
        let c = AwsCanaries::new();
        let server = leaky_aws(&c, true).await;
        let url = server.uri();
        let failed = resolver_with_aws_key(&url, &c.host_secret_key, fast_options())
            .resolve(
                &secrets(vec![
                    ("AWS_MISSING", aws_secret("app/missing", None, "us-east-1")),
                    (
                        "AWS_REFUSED",
                        aws_oidc_secret("app/plain", None, "us-east-1", &c.refused_token),
                    ),
                ]),
                &Default::default(),
            )
            .await;
        let failure = failed.as_ref().expect_err("fails");
        assert_eq!(failure.report.failures().count(), 2, "{failure}");
        assert_clean("errors and report", &shown(failed), &c.all());
    })
    .await;
}

/// The same through `ci-secrets -vvv` with `CI_SECRETS_LOG=trace`: stderr must stay clean
/// too. (At `-vvv` alone, dependencies log at debug and it is clean.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_at_trace_level_does_not_log_service_messages_quoting_secrets() {
    bounded(async {
        let c = AwsCanaries::new();
        let aws = leaky_aws(&c, true).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let payload = json!({
            "variables": [{"key": "AWS_OIDC_TOKEN", "value": c.refused_token, "public": false, "masked": true}],
            "secrets": {
                "AWS_MISSING": aws_secret("app/missing", None, "us-east-1"),
                "AWS_REFUSED": aws_oidc_secret("app/plain", None, "us-east-1", "$AWS_OIDC_TOKEN"),
            },
        });
        let path = dir.path().join("payload.json");
        std::fs::write(&path, payload.to_string()).expect("write");
        let arg = path.to_string_lossy().into_owned();
        let endpoint = aws.uri();
        let run = run_cli(
            &["-vvv", "resolve", "--job-payload", &arg],
            &[
                ("CI_SECRETS_LOG", "trace"),
                ("AWS_ENDPOINT_URL", endpoint.as_str()),
                ("AWS_ACCESS_KEY_ID", "AKIDRELIABILITYTEST"),
                ("AWS_SECRET_ACCESS_KEY", c.host_secret_key.as_str()),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ],
            dir.path(),
        )
        .await;
        assert_eq!(run.code, Some(3), "{}", run.stderr);
        assert_clean("stderr at -vvv", &run.stderr, &c.all());
    })
    .await;
}
