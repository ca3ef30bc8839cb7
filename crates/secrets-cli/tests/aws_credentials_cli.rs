//! `ci-secrets aws-credentials` against a `wiremock` STS: every output, the credentials file,
//! the command mode, and the refusals LocalStack does not make (expired token, wrong
//! audience, denied role), each with its message and exit code, nothing written and no
//! credential or token on stderr.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

use assert_cmd::Command;
use base64::Engine as _;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ROLE: &str = "arn:aws:iam::123456789012:role/gitlab-ci";
const KEY: &str = "ASIAKEYEXAMPLE";
const SECRET_CANARY: &str = "secret/key+canary=91c2";
const SESSION_CANARY: &str = "session-token-canary-3e7d";
const TOKEN_CANARY: &str = "dG9rZW4tY2FuYXJ5";

fn jwt(aud: &str, exp: i64) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let claims = serde_json::json!({
        "iss": "https://gitlab.example.com", "aud": aud, "exp": exp,
        "sub": "project_path:mygroup/myproject:ref_type:branch:ref:main",
    });
    format!(
        "{}.{}.{TOKEN_CANARY}",
        b64(r#"{"alg":"RS256","typ":"JWT"}"#),
        b64(&claims.to_string())
    )
}

fn good_token() -> String {
    jwt("sts.amazonaws.com", 4_102_444_800)
}

fn credentials() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(
        format!(
            r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult><Credentials>
      <AccessKeyId>{KEY}</AccessKeyId><SecretAccessKey>{SECRET_CANARY}</SecretAccessKey>
      <SessionToken>{SESSION_CANARY}</SessionToken><Expiration>2100-01-01T00:00:00Z</Expiration>
  </Credentials></AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"#
        ),
        "text/xml",
    )
}

fn refusal(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(
        format!(
            r#"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>service text must not be shown</Message></Error></ErrorResponse>"#
        ),
        "text/xml",
    )
}

async fn sts(answer: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("Action=AssumeRoleWithWebIdentity"))
        .respond_with(answer)
        .mount(&server)
        .await;
    server
}

fn cli(server: &MockServer, token: Option<&str>) -> Command {
    let mut cmd = Command::cargo_bin("ci-secrets").unwrap();
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL_STS", server.uri())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ROLE_ARN", ROLE)
        .env("AWS_REGION", "eu-west-1")
        .env("CI_JOB_ID", "1001")
        .env("CI_PROJECT_ID", "42")
        .env("CI_SERVER_HOST", "gitlab.example.com");
    if let Some(token) = token {
        cmd.env("AWS_ID_TOKEN", token);
    }
    cmd
}

/// Runs the command off the runtime that serves the mock.
async fn run(mut cmd: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn no_secrets(text: &str) {
    for canary in [
        TOKEN_CANARY,
        SECRET_CANARY,
        SESSION_CANARY,
        KEY,
        "must not be shown",
    ] {
        assert!(!text.contains(canary), "{canary} in {text}");
    }
}

/// A token (if any), STS's answer (if asked), the exit code and texts stderr must hold.
type Refusal<'a> = (
    Option<&'a str>,
    Option<ResponseTemplate>,
    i32,
    &'a [&'a str],
);

/// Arguments, environment overrides and the text stderr must hold.
type BadSetting<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

fn form_param(body: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(body)
        .split('&')
        .find_map(|p| p.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_exit_with_a_fix_and_write_nothing() {
    let expired = jwt("sts.amazonaws.com", 1_000);
    let wrong_aud = jwt("https://gitlab.example.com", 4_102_444_800);
    let cases: [Refusal<'_>; 5] = [
        (
            Some(&expired),
            None,
            2,
            &["the ID token in AWS_ID_TOKEN", "expired", "id_tokens"],
        ),
        (
            None,
            None,
            2,
            &["AWS_ID_TOKEN is empty or not set", "id_tokens"],
        ),
        (
            Some(&wrong_aud),
            Some(refusal(400, "InvalidIdentityToken")),
            3,
            &[
                "InvalidIdentityToken",
                "aud https://gitlab.example.com",
                "\"gitlab.example.com:aud\"",
            ],
        ),
        (
            Some(&good_token()),
            Some(refusal(403, "AccessDenied")),
            3,
            &[
                "AccessDenied",
                ROLE,
                "sub project_path:mygroup/myproject:ref_type:branch:ref:main",
                "trust policy",
                "Federated arn:aws:iam::<account>:oidc-provider/gitlab.example.com",
            ],
        ),
        (
            Some(&good_token()),
            Some(refusal(400, "ValidationException")),
            2,
            &["ValidationException", "check the role ARN"],
        ),
    ];
    for (token, answer, code, wants) in cases {
        let server = MockServer::start().await;
        let expect_request = answer.is_some();
        if let Some(answer) = answer {
            Mock::given(method("POST"))
                .respond_with(answer)
                .mount(&server)
                .await;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("creds");
        let mut cmd = cli(&server, token);
        cmd.args(["aws-credentials", "--format", "dotenv", "--output"])
            .arg(&out);
        let output = run(cmd).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{stderr}");
        for want in wants {
            assert!(stderr.contains(want), "want {want:?}: {stderr}");
        }
        no_secrets(&stderr);
        assert!(output.stdout.is_empty());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing written"
        );
        let requests = server.received_requests().await.unwrap().len();
        assert_eq!(
            requests > 0,
            expect_request,
            "{requests} requests: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_missing_or_invalid_exit_2_before_any_request() {
    let server = sts(credentials()).await;
    let cases: [BadSetting<'_>; 4] = [
        (
            &[],
            &[("AWS_ROLE_ARN", "")],
            "pass --role-arn or set AWS_ROLE_ARN",
        ),
        (&[], &[("AWS_REGION", "")], "no AWS region"),
        (&["--duration", "60"], &[], "duration of 60 s"),
        (&["--session-name", "a:b"], &[], "role session name \"a:b\""),
    ];
    for (args, env, want) in cases {
        let mut cmd = cli(&server, Some(&good_token()));
        cmd.arg("aws-credentials")
            .args(args)
            .envs(env.iter().copied());
        let output = run(cmd).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(want), "want {want:?}: {stderr}");
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_carry_the_credentials_and_the_runners_session_name() {
    let server = sts(credentials()).await;
    let token = good_token();

    let mut cmd = cli(&server, Some(&token));
    cmd.args([
        "-vvv",
        "aws-credentials",
        "--format",
        "credential-process",
        "--duration",
        "1800",
    ])
    .env("CI_SECRETS_LOG", "trace");
    let output = run(cmd).await;
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("TRACE") || stderr.contains("DEBUG"),
        "{stderr}"
    );
    no_secrets(&stderr);
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["Version"], 1);
    assert_eq!(doc["AccessKeyId"], KEY);
    assert_eq!(doc["SecretAccessKey"], SECRET_CANARY);
    assert_eq!(doc["SessionToken"], SESSION_CANARY);
    assert_eq!(doc["Expiration"], "2100-01-01T00:00:00Z");
    let request = &server.received_requests().await.unwrap()[0];
    assert_eq!(
        form_param(&request.body, "RoleSessionName").as_deref(),
        Some("1001-42-gitlab.example.com")
    );
    assert_eq!(
        form_param(&request.body, "DurationSeconds").as_deref(),
        Some("1800")
    );

    // shell output, eval'd by bash, gives the values back exactly.
    let mut cmd = cli(&server, Some(&token));
    cmd.args(["aws-credentials", "--format", "shell"]);
    let output = run(cmd).await;
    let script = format!(
        "{}\nprintf '%s|%s|%s|%s|%s' \"$AWS_ACCESS_KEY_ID\" \"$AWS_SECRET_ACCESS_KEY\" \"$AWS_SESSION_TOKEN\" \"$AWS_REGION\" \"$AWS_CREDENTIAL_EXPIRATION\"",
        String::from_utf8(output.stdout).unwrap()
    );
    let echoed = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(echoed.stdout).unwrap(),
        format!("{KEY}|{SECRET_CANARY}|{SESSION_CANARY}|eu-west-1|2100-01-01T00:00:00Z")
    );

    // json: the variables as `resolve` lists them, masked flags on the credentials.
    let mut cmd = cli(&server, Some(&token));
    cmd.args(["aws-credentials", "--format", "json"]);
    let doc: Value = serde_json::from_slice(&run(cmd).await.stdout).unwrap();
    let masked: Vec<(&str, bool)> = doc["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["key"].as_str().unwrap(), v["masked"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        masked,
        [
            ("AWS_ACCESS_KEY_ID", true),
            ("AWS_SECRET_ACCESS_KEY", true),
            ("AWS_SESSION_TOKEN", true),
            ("AWS_REGION", false),
            ("AWS_DEFAULT_REGION", false),
            ("AWS_CREDENTIAL_EXPIRATION", false),
        ]
    );
    assert_eq!(doc["expiration"], "2100-01-01T00:00:00Z");

    // github: masks on stdout, values in $GITHUB_ENV.
    let dir = tempfile::tempdir().unwrap();
    let github_env = dir.path().join("github_env");
    let mut cmd = cli(&server, Some(&token));
    cmd.args(["aws-credentials", "--format", "github"])
        .env("GITHUB_ENV", &github_env);
    let output = run(cmd).await;
    let masks = String::from_utf8(output.stdout).unwrap();
    assert!(
        masks.contains(&format!("::add-mask::{SECRET_CANARY}")),
        "{masks}"
    );
    assert!(masks.contains(&format!("::add-mask::{SESSION_CANARY}")));
    let appended = std::fs::read_to_string(&github_env).unwrap();
    assert!(
        appended.contains("AWS_SESSION_TOKEN<<ghadelimiter_"),
        "{appended}"
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_is_written_0600_keeping_the_other_profiles() {
    let server = sts(credentials()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    std::fs::write(
        &file,
        "[default]\naws_access_key_id = AKIAOTHER\n\n[ci]\naws_access_key_id = OLDKEY\naws_secret_access_key = OLD\n\n[later]\nregion = x\n",
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = cli(&server, Some(&good_token()));
    cmd.args(["aws-credentials", "--profile", "ci", "--output"])
        .arg(&file);
    let output = run(cmd).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout.is_empty());
    assert_eq!(mode(&file), 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("OLDKEY") && !text.contains("= OLD\n"),
        "{text}"
    );
    assert!(
        text.contains("[default]\naws_access_key_id = AKIAOTHER\n"),
        "{text}"
    );
    assert!(text.contains("[later]\nregion = x\n"), "{text}");
    assert!(text.contains(&format!(
        "[ci]\n# written by ci-secrets; expires 2100-01-01T00:00:00Z\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET_CANARY}\naws_session_token = {SESSION_CANARY}\n"
    )), "{text}");
    assert_eq!(text.matches("[ci]").count(), 1);

    let mut cmd = cli(&server, Some(&good_token()));
    cmd.args(["aws-credentials", "--profile", "bad name", "--output"])
        .arg(&file);
    assert_eq!(run(cmd).await.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_runs_with_the_credentials_and_its_exit_code_is_returned() {
    let server = sts(credentials()).await;
    let mut cmd = cli(&server, Some(&good_token()));
    cmd.args([
        "aws-credentials",
        "--",
        "sh",
        "-c",
        "printf '%s %s' \"$AWS_ACCESS_KEY_ID\" \"$AWS_SESSION_TOKEN\"; exit 7",
    ]);
    let output = run(cmd).await;
    assert_eq!(output.status.code(), Some(7));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "[MASKED] [MASKED]",
        "the command's output is masked as exec masks it"
    );
    no_secrets(&String::from_utf8_lossy(&output.stderr));

    let mut cmd = cli(&server, Some(&good_token()));
    cmd.args([
        "aws-credentials",
        "--no-mask",
        "--",
        "sh",
        "-c",
        "printf '%s %s' \"$AWS_ACCESS_KEY_ID\" \"$AWS_SESSION_TOKEN\"",
    ]);
    let output = run(cmd).await;
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("{KEY} {SESSION_CANARY}")
    );
}
