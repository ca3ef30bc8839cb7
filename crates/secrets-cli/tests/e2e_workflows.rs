//! The seed documents' other workflows against LocalStack and OpenBao (docs/e2e-fixtures.md):
//! `aws-credentials` used by the AWS SDK (printed, and as a `credential_process`), role
//! chaining, and `get --spread` with every value kind and refusal, its dotenv file loaded
//! back by bash. Skipped, with the reason on stderr, unless `CI_SECRETS_E2E_ENV` is set.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

use assert_cmd::Command;
use auth_oidc::testing::{E2eEnv, GitlabClaims};
use aws_config::BehaviorVersion;
use aws_types::os_shim_internal::Env;
use secrecy::ExposeSecret;
use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const ROLE_ACCOUNT: &str = "123456789012";

fn token(env: &E2eEnv, aud: &str) -> String {
    env.minter()
        .mint(&GitlabClaims::new().with_audience(aud))
        .unwrap()
        .expose_secret()
        .to_owned()
}

fn cli(env: &E2eEnv, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::cargo_bin("ci-secrets").unwrap();
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", env.aws_endpoint())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("CI_JOB_ID", "1001")
        .env("CI_PROJECT_ID", "42")
        .env("CI_SERVER_HOST", "gitlab.example.com")
        .envs(vars.iter().copied());
    cmd
}

/// Reads `id` in us-east-1 with the SDK config `sdk` (LocalStack endpoint set).
async fn read(sdk: &aws_types::SdkConfig, id: &str) -> String {
    aws_sdk_secretsmanager::Client::new(sdk)
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .unwrap()
        .secret_string()
        .unwrap()
        .to_owned()
}

async fn caller(sdk: &aws_types::SdkConfig) -> String {
    aws_sdk_sts::Client::new(sdk)
        .get_caller_identity()
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printed_credentials_work_with_the_sdk_and_chain_roles() {
    let Some(env) = E2eEnv::for_test("printed_credentials_work_with_the_sdk_and_chain_roles")
    else {
        return;
    };
    let jwt = token(&env, "sts.amazonaws.com");
    let role = format!("arn:aws:iam::{ROLE_ACCOUNT}:role/gitlab-ci-e2e");
    let chained = format!("arn:aws:iam::{ROLE_ACCOUNT}:role/deploy");
    for (extra, want_role) in [
        (vec![], "gitlab-ci-e2e"),
        (vec!["--chain-role-arn", chained.as_str()], "deploy"),
    ] {
        let mut cmd = cli(
            &env,
            &[
                ("AWS_ID_TOKEN", &jwt),
                ("AWS_ROLE_ARN", &role),
                ("AWS_REGION", "us-east-1"),
            ],
        );
        cmd.args(["aws-credentials", "--format", "json"])
            .args(&extra);
        let output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
        let vars: BTreeMap<&str, &str> = doc["variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["key"].as_str().unwrap(), v["value"].as_str().unwrap()))
            .collect();
        let stderr = String::from_utf8_lossy(&output.stderr);
        for secret in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
            assert!(!stderr.contains(vars[secret]), "{secret} on stderr");
        }
        assert!(!stderr.contains(&jwt));
        // The SDK reads them as a job's environment would give them.
        let sdk_env = Env::from_slice(&[
            ("AWS_ACCESS_KEY_ID", vars["AWS_ACCESS_KEY_ID"]),
            ("AWS_SECRET_ACCESS_KEY", vars["AWS_SECRET_ACCESS_KEY"]),
            ("AWS_SESSION_TOKEN", vars["AWS_SESSION_TOKEN"]),
            ("AWS_REGION", vars["AWS_REGION"]),
            ("AWS_ENDPOINT_URL", env.aws_endpoint()),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ]);
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .env(sdk_env)
            .load()
            .await;
        let arn = caller(&sdk).await;
        assert!(
            arn.contains(&format!(
                "{ROLE_ACCOUNT}:assumed-role/{want_role}/1001-42-gitlab.example.com"
            )),
            "{arn}"
        );
        assert!(
            read(&sdk, "app-secrets/database")
                .await
                .contains("db-pass-1234")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_process_output_is_accepted_by_the_sdk() {
    let Some(env) = E2eEnv::for_test("credential_process_output_is_accepted_by_the_sdk") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token(&env, "sts.amazonaws.com")).unwrap();
    let binary = assert_cmd::cargo::cargo_bin("ci-secrets");
    // aws-config runs the line with `sh -c`; the token is read from a file, as a job would
    // keep it out of the config file.
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile ci]\nregion = us-east-1\ncredential_process = env AWS_ENDPOINT_URL={} \
             AWS_ID_TOKEN=\"$(cat {})\" {} -q aws-credentials --format credential-process \
             --role-arn arn:aws:iam::{ROLE_ACCOUNT}:role/via-process --region us-east-1 \
             --session-name cp-session\n",
            env.aws_endpoint(),
            token_file.display(),
            binary.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let sdk_env = Env::from_slice(&[
        ("AWS_CONFIG_FILE", config.as_str()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ("AWS_PROFILE", "ci"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]);
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .env(sdk_env)
        .endpoint_url(env.aws_endpoint())
        .load()
        .await;
    let arn = caller(&sdk).await;
    assert!(arn.contains("assumed-role/via-process/cp-session"), "{arn}");
    assert!(read(&sdk, "app-secrets/api").await.contains("api-key-5678"));
}

fn spread(env: &E2eEnv, args: &[&str], out: Option<&Path>) -> std::process::Output {
    let mut cmd = cli(
        env,
        &[
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("VAULT_SERVER_URL", env.vault_addr()),
            ("VAULT_AUTH_ROLE", "ci"),
            ("VAULT_ID_TOKEN", &token(env, "https://vault.example.com")),
        ],
    );
    cmd.arg("get").args(args);
    if let Some(out) = out {
        cmd.arg("--output").arg(out);
    }
    cmd.output().unwrap()
}

fn stdout(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn spreading_takes_strings_numbers_and_booleans() {
    let Some(env) = E2eEnv::for_test("spreading_takes_strings_numbers_and_booleans") else {
        return;
    };
    let out = spread(
        &env,
        &["aws_secrets_manager:app-secrets/database", "--spread"],
        None,
    );
    assert_eq!(
        stdout(&out),
        "PASSWORD=db-pass-1234\nUSERNAME=admin\nPORT=5432\nENABLED=true\n"
    );
    // seed 004: the region flag wins over AWS_REGION; names made valid; a prefix.
    let out = spread(
        &env,
        &[
            "aws_secrets_manager:my-secrets",
            "--region",
            "eu-west-1",
            "--spread",
            "--prefix",
            "app.",
            "--format",
            "shell",
        ],
        None,
    );
    assert_eq!(
        stdout(&out),
        "export APP_NPM_TOKEN='npm-token-4004'\nexport APP_NPM_REGISTRY='registry.npmjs.org'\n\
         export APP_RETRIES='3'\nexport APP_DRY_RUN='false'\n"
    );
    // Vault: a field holding a JSON object, settings from the environment as `resolve`.
    let out = spread(&env, &["vault:production/app/env@ops", "--spread"], None);
    assert_eq!(
        stdout(&out),
        "API_URL=https://api.example.com\nWORKERS=4\nDEBUG=false\n"
    );
    // Without --spread: the one value.
    let out = spread(
        &env,
        &["aws_secrets_manager:app-secrets/database#port"],
        None,
    );
    assert_eq!(stdout(&out), "5432\n");
}

#[test]
fn spreading_refuses_nested_values_collisions_and_non_json_and_writes_nothing() {
    let Some(env) = E2eEnv::for_test(
        "spreading_refuses_nested_values_collisions_and_non_json_and_writes_nothing",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(".ci-secrets");
    for (id, code, wants) in [
        (
            "spread/nested",
            2,
            &["key \"nested\" holds a nested object"][..],
        ),
        (
            "spread/collision",
            2,
            &["keys \"db-pass\" and \"DB_PASS\" both become the variable DB_PASS"][..],
        ),
        ("plain/string", 2, &["the value is not JSON"][..]),
        ("binary/blob", 2, &["the value is not JSON"][..]),
        ("does/not-exist", 3, &["ResourceNotFoundException"][..]),
    ] {
        let output = spread(
            &env,
            &[&format!("aws_secrets_manager:{id}"), "--spread"],
            Some(&out),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{id}: {stderr}");
        for want in wants {
            assert!(stderr.contains(want), "{id}: want {want:?}: {stderr}");
        }
        for value in ["just-a-plain-string", "\"x\"", "\"a\"", "\"b\""] {
            assert!(!stderr.contains(&format!("={value}")), "{stderr}");
        }
        assert!(!stderr.contains("just-a-plain-string"), "{stderr}");
        assert!(!out.exists(), "{id}: nothing written");
    }
}

/// The seeded `spread/shell` values (xtask/seed_localstack.py), by variable.
const SHELL_VALUES: &[(&str, &str)] = &[
    ("PLAIN", "abc-123_/x"),
    ("SPACES", "a b  c"),
    ("QUOTES", "it's \"q\""),
    ("DOLLAR", "$HOME ${X} `id` $(id)"),
    ("BACKSLASH", "a\\b\\n"),
    ("NEWLINE", "l1\nl2"),
    ("HASH", "#x=y;z"),
    ("EMPTY", ""),
];

/// Runs `script` in bash in `dir` with an empty environment and returns `NAME=value\0` for
/// each of `names`.
fn bash_values(dir: &Path, script: &str, names: &[&str]) -> BTreeMap<String, String> {
    let print: String = names
        .iter()
        .map(|n| format!("printf '%s=%s\\0' {n} \"${{{n}-unset}}\"\n"))
        .collect();
    let output = std::process::Command::new("bash")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(["-c", &format!("{script}\n{print}")])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .split('\0')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn the_dotenv_file_loads_back_identically() {
    let Some(env) = E2eEnv::for_test("the_dotenv_file_loads_back_identically") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".ci-secrets");
    let out = spread(
        &env,
        &["aws_secrets_manager:spread/shell", "--spread"],
        Some(&file),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let names: Vec<&str> = SHELL_VALUES.iter().map(|(k, _)| *k).collect();
    let want: BTreeMap<String, String> = SHELL_VALUES
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(
        bash_values(dir.path(), "set -a; . ./.ci-secrets; set +a", &names),
        want
    );

    // Seed 004's own loader, `export $(cat .ci-secrets | xargs)`, for values without spaces,
    // quotes or backslashes: the `my-secrets` secret.
    let out = spread(
        &env,
        &[
            "aws_secrets_manager:my-secrets",
            "--region",
            "eu-west-1",
            "--spread",
        ],
        Some(&file),
    );
    assert!(out.status.success());
    let got = bash_values(
        dir.path(),
        "export $(xargs < .ci-secrets)",
        &["NPM_TOKEN", "NPM_REGISTRY", "RETRIES", "DRY_RUN"],
    );
    let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        got,
        [
            ("DRY_RUN", "false"),
            ("NPM_REGISTRY", "registry.npmjs.org"),
            ("NPM_TOKEN", "npm-token-4004"),
            ("RETRIES", "3"),
        ]
    );
}
