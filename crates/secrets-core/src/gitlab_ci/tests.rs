use super::*;
use proptest::prelude::*;
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;

/// The seed documents' jobs, as the demo runs them (`examples/gitlab-ci/`), or a test fixture.
fn fixture(name: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let example = root.join("../../examples/gitlab-ci").join(name);
    let path = if example.exists() {
        example
    } else {
        root.join("tests/fixtures").join(name)
    };
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The settings GitLab reads: the file's variables (no project variables in these tests).
fn payload_of(yaml: &str, job: &str) -> Result<Value, Vec<Error>> {
    payload_with(yaml, job, &[])
}

fn payload_with(yaml: &str, job: &str, extra: &[(&str, &str)]) -> Result<Value, Vec<Error>> {
    let config = CiConfig::from_yaml(yaml).map_err(|e| vec![e])?;
    let job = config.job(job).map_err(|e| vec![e])?;
    let mut settings: HashMap<String, String> = job
        .variables()
        .iter()
        .map(|v| (v.key.clone(), v.value.clone()))
        .collect();
    for (k, v) in extra {
        settings.insert((*k).to_owned(), (*v).to_owned());
    }
    let secrets = job.secrets_payload(&|name| settings.get(name).cloned())?;
    Ok(serde_json::to_value(secrets).unwrap())
}

fn aws(secret: Value, server: Value) -> Value {
    let mut full = json!({
        "secret_id": null, "field": null, "version_id": null, "version_stage": null,
        "region": null, "role_arn": null, "role_session_name": null,
    });
    for (k, v) in secret.as_object().unwrap() {
        full[k] = v.clone();
    }
    full["server"] = server;
    full
}

fn aws_server(jwt: &str, role_arn: Option<&str>) -> Value {
    json!({"region": "us-east-1", "jwt": jwt, "role_arn": role_arn, "role_session_name": null})
}

#[test]
fn seed_aws_iam_role() {
    assert_eq!(
        payload_of(&fixture("aws-iam-role.yml"), "database-migration").unwrap(),
        json!({"DATABASE_PASSWORD": {
            "aws_secrets_manager": aws(
                json!({"secret_id": "app-secrets/database", "field": "password"}),
                aws_server("$AWS_ID_TOKEN", None)),
            "file": false}})
    );
}

#[test]
fn seed_aws_oidc() {
    assert_eq!(
        payload_of(&fixture("aws-oidc.yml"), "database-migration").unwrap(),
        json!({"DATABASE_PASSWORD": {
            "aws_secrets_manager": aws(
                json!({"secret_id": "app-secrets/database", "field": "password"}),
                aws_server("$AWS_ID_TOKEN", Some("arn:aws:iam::123456789012:role/gitlab-secrets-role"))),
            "file": false}})
    );
}

#[test]
fn seed_aws_custom_token() {
    assert_eq!(
        payload_of(&fixture("aws-custom-token.yml"), "database-migration").unwrap(),
        json!({"DATABASE_PASSWORD": {
            "aws_secrets_manager": aws(
                json!({"secret_id": "app-secrets/database", "field": "password"}),
                aws_server("$CUSTOM_AWS_TOKEN", Some("arn:aws:iam::123456789012:role/gitlab-secrets-role"))),
            "file": false, "token": "$CUSTOM_AWS_TOKEN"}})
    );
}

#[test]
fn seed_aws_short_form() {
    assert_eq!(
        payload_of(&fixture("aws-short-form.yml"), "api-deployment").unwrap(),
        json!({
            "API_KEY": {"aws_secrets_manager": aws(
                json!({"secret_id": "app-secrets/api", "field": "api_key"}),
                aws_server("$AWS_ID_TOKEN", None)), "file": false},
            "FULL_SECRET": {"aws_secrets_manager": aws(
                json!({"secret_id": "app-secrets/api"}),
                aws_server("$AWS_ID_TOKEN", None)), "file": false},
        })
    );
}

#[test]
fn seed_aws_versions() {
    assert_eq!(
        payload_of(&fixture("aws-versions.yml"), "production-deployment").unwrap(),
        json!({
            "DATABASE_PASSWORD": {"aws_secrets_manager": aws(
                json!({"secret_id": "prod-app-secrets/database", "field": "password", "version_stage": "AWSCURRENT"}),
                aws_server("$AWS_ID_TOKEN", None)), "file": false},
            "STAGING_DATABASE_PASSWORD": {"aws_secrets_manager": aws(
                json!({"secret_id": "prod-app-secrets/database", "field": "password",
                       "version_id": "01234567-89ab-cdef-0123-456789abcdef"}),
                aws_server("$AWS_ID_TOKEN", None)), "file": false},
        })
    );
}

#[test]
fn seed_aws_cross_account() {
    assert_eq!(
        payload_of(
            &fixture("aws-cross-account.yml"),
            "cross-account-deployment"
        )
        .unwrap(),
        json!({"SHARED_API_KEY": {"aws_secrets_manager": aws(
            json!({"secret_id": "arn:aws:secretsmanager:us-east-1:987654321098:secret:shared-api-keys-AbCdEf",
                   "field": "production_key"}),
            aws_server("$AWS_ID_TOKEN", Some("arn:aws:iam::123456789012:role/cross-account-secrets-role"))),
            "file": false}})
    );
}

#[test]
fn seed_aws_per_secret_overrides() {
    let default_role = "arn:aws:iam::123456789012:role/default-role";
    assert_eq!(
        payload_of(
            &fixture("aws-per-secret-overrides.yml"),
            "multi-region-deployment"
        )
        .unwrap(),
        json!({
            "EU_DATABASE_PASSWORD": {"aws_secrets_manager": aws(
                json!({"secret_id": "eu-app-secrets/database", "field": "password", "region": "eu-west-1",
                       "role_arn": "arn:aws:iam::123456789012:role/eu-deployment-role",
                       "role_session_name": "gitlab-eu-deployment"}),
                aws_server("$EU_AWS_TOKEN", Some(default_role))),
                "file": false, "token": "$EU_AWS_TOKEN"},
            // GitLab builds one AWS server block per job, from the first AWS secret: the
            // second gets `$EU_AWS_TOKEN` too (ee build_runner_presenter.rb, memoized).
            "US_DATABASE_PASSWORD": {"aws_secrets_manager": aws(
                json!({"secret_id": "us-app-secrets/database", "field": "password"}),
                aws_server("$EU_AWS_TOKEN", Some(default_role))), "file": false},
        })
    );
    let config = CiConfig::from_yaml(&fixture("aws-per-secret-overrides.yml")).unwrap();
    let job = config.job("multi-region-deployment").unwrap();
    let settings: HashMap<String, String> = job
        .variables()
        .iter()
        .map(|v| (v.key.clone(), v.value.clone()))
        .collect();
    let (_, warnings) = job
        .secrets_payload_with_warnings(&|n| settings.get(n).cloned())
        .unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("US_DATABASE_PASSWORD: it does not log in with $AWS_ID_TOKEN")
            && warnings[0].contains("EU_DATABASE_PASSWORD's token $EU_AWS_TOKEN"),
        "{warnings:?}"
    );
}

fn vault_server(jwt: &str) -> Value {
    json!({"url": "https://vault.example.com", "namespace": null,
           "auth": {"name": "jwt", "path": "jwt", "data": {"jwt": jwt}}})
}

#[test]
fn seed_vault_short_form() {
    assert_eq!(
        payload_of(&fixture("vault-short-form.yml"), "job_using_vault").unwrap(),
        json!({"DATABASE_PASSWORD": {
            "vault": {"server": vault_server("$VAULT_ID_TOKEN"),
                      "engine": {"name": "kv-v2", "path": "ops"}, "path": "production/db", "field": "password"},
            "token": "$VAULT_ID_TOKEN"}})
    );
}

#[test]
fn seed_vault_generic_engine_uses_the_first_id_token() {
    assert_eq!(
        payload_of(&fixture("vault-generic-engine.yml"), "job_using_vault").unwrap(),
        json!({"JFROG_TOKEN": {
            "vault": {"server": vault_server("$VAULT_ID_TOKEN"),
                      "engine": {"name": "generic", "path": "artifactory"},
                      "path": "production/jfrog", "field": "access_token"},
            "file": false}})
    );
}

#[test]
fn seed_vault_id_tokens_under_secrets_is_refused_with_a_fix() {
    let errors = payload_of(
        &fixture("seed-002-id-tokens-under-secrets.yml"),
        "job_using_vault",
    )
    .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let text = errors[0].to_string();
    assert!(
        text.contains("jobs:job_using_vault:secrets:id_tokens"),
        "{text}"
    );
    assert!(
        text.contains("move `id_tokens:` out of `secrets:`"),
        "{text}"
    );
}

#[test]
fn seed_vault_file_false_fixed() {
    assert_eq!(
        payload_of(&fixture("vault-file-false.yml"), "job_using_vault").unwrap(),
        json!({"DATABASE_PASSWORD": {
            "vault": {"server": vault_server("$VAULT_ID_TOKEN"),
                      "engine": {"name": "kv-v2", "path": "ops"}, "path": "production/db", "field": "password"},
            "file": false, "token": "$VAULT_ID_TOKEN"}})
    );
}

#[test]
fn every_example_normalises() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/gitlab-ci");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let config = CiConfig::from_yaml(&text).unwrap();
        for job in config.job_names() {
            let job = config.job(job).unwrap();
            let vars: HashMap<_, _> = job
                .variables()
                .iter()
                .map(|v| (v.key.clone(), v.value.clone()))
                .collect();
            // What a job outside GitLab sets for GitLab Secrets Manager (the URL GitLab knows,
            // the JWT it mints); the seed jobs need nothing else.
            let outside_gitlab = |n: &str| match n {
                "GITLAB_SECRETS_MANAGER_URL" => Some("https://openbao.example.com".to_owned()),
                "GITLAB_SECRETS_MANAGER_ID_TOKEN" => Some("eyJ.e30.sig".to_owned()),
                "CI_PROJECT_ID" => Some("34".to_owned()),
                "CI_PROJECT_NAMESPACE_ID" => Some("12".to_owned()),
                "CI_PROJECT_NAMESPACE" => Some("mygroup".to_owned()),
                "GITLAB_SECRETS_MANAGER_GROUP_IDS" => Some("mygroup=12".to_owned()),
                _ => None,
            };
            let secrets = job
                .secrets_payload(&|n| vars.get(n).cloned().or_else(|| outside_gitlab(n)))
                .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
            seen += secrets.len();
        }
    }
    assert_eq!(
        seen, 21,
        "13 seed secrets, 3 of each of the GitLab Secrets Manager and GCP examples, 2 of Azure's"
    );
}

#[test]
fn vault_settings_come_from_variables() {
    let yaml = "job:\n  secrets:\n    X:\n      vault: a/b@m\n";
    let got = payload_with(
        yaml,
        "job",
        &[
            ("VAULT_SERVER_URL", "https://v:8200"),
            ("VAULT_AUTH_ROLE", "ci"),
            ("VAULT_AUTH_PATH", "gitlab/jwt"),
            ("VAULT_NAMESPACE", "team1"),
        ],
    )
    .unwrap();
    assert_eq!(
        got["X"]["vault"]["server"],
        json!({"url": "https://v:8200", "namespace": "team1",
               "auth": {"name": "jwt", "path": "gitlab/jwt", "data": {"jwt": "${CI_JOB_JWT}", "role": "ci"}}}),
        "no id_tokens: GitLab falls back to ${{CI_JOB_JWT}}"
    );
}

#[test]
fn default_id_tokens_extends_and_inherit() {
    let yaml = r#"
variables:
  VAULT_SERVER_URL: https://v
  AWS_REGION: eu-west-1
default:
  id_tokens:
    FIRST:
      aud: a
    SECOND:
      aud: [b, c]
.base:
  secrets:
    A:
      vault: p/f
      file: false
job:
  extends: .base
  secrets:
    B:
      aws_secrets_manager: id#k
no_default:
  extends: [.base]
  inherit:
    default: false
    variables: [VAULT_SERVER_URL]
"#;
    let config = CiConfig::from_yaml(yaml).unwrap();
    assert_eq!(config.job_names(), ["job", "no_default"]);
    let job = config.job("job").unwrap();
    assert_eq!(job.id_tokens().len(), 2);
    assert_eq!(job.id_tokens()[1].aud, ["b", "c"]);
    let got = payload_of(yaml, "job").unwrap();
    assert_eq!(got["A"]["vault"]["server"]["auth"]["data"]["jwt"], "$FIRST");
    assert_eq!(got["A"]["vault"]["engine"]["path"], "kv-v2");
    assert_eq!(got["B"]["aws_secrets_manager"]["field"], "k");
    assert_eq!(
        got["B"]["aws_secrets_manager"]["server"]["region"],
        "eu-west-1"
    );

    let other = config.job("no_default").unwrap();
    assert!(other.id_tokens().is_empty());
    assert_eq!(other.variables().len(), 1);
    let got = payload_of(yaml, "no_default").unwrap();
    assert_eq!(
        got["A"]["vault"]["server"]["auth"]["data"]["jwt"],
        "${CI_JOB_JWT}"
    );
}

#[test]
fn anchors_merge_keys_and_variable_forms() {
    let yaml = r#"
variables:
  NUM: 42
  FULL:
    value: "x$y"
    expand: false
    description: d
.vault: &vault
  VAULT_SERVER_URL: https://v
job:
  variables:
    <<: *vault
    NUM: "43"
  secrets:
    A:
      vault: p/f
"#;
    let job = CiConfig::from_yaml(yaml).unwrap().job("job").unwrap();
    let vars: Vec<_> = job
        .variables()
        .iter()
        .map(|v| (v.key.as_str(), v.value.as_str(), v.expand))
        .collect();
    assert_eq!(
        vars,
        [
            ("NUM", "42", true),
            ("FULL", "x$y", false),
            ("NUM", "43", true),
            ("VAULT_SERVER_URL", "https://v", true)
        ]
    );
    assert!(payload_of(yaml, "job").is_ok());
}

#[test]
fn azure_and_gcp_payloads() {
    let yaml = r#"
variables:
  AZURE_KEY_VAULT_SERVER_URL: https://kv.vault.azure.net
  AZURE_CLIENT_ID: cid
  AZURE_TENANT_ID: tid
  GCP_PROJECT_NUMBER: "1234"
  GCP_WORKLOAD_IDENTITY_FEDERATION_POOL_ID: pool
  GCP_WORKLOAD_IDENTITY_FEDERATION_PROVIDER_ID: prov
job:
  id_tokens:
    GCP_ID_TOKEN:
      aud: https://iam.googleapis.com/x
  secrets:
    AZ:
      azure_key_vault:
        name: db
    GCP:
      gcp_secret_manager:
        name: pw
        version: 2
      token: $GCP_ID_TOKEN
"#;
    let got = payload_of(yaml, "job").unwrap();
    assert_eq!(
        got["AZ"],
        json!({"azure_key_vault": {"name": "db", "version": null,
            "server": {"url": "https://kv.vault.azure.net", "client_id": "cid", "tenant_id": "tid", "jwt": "$GCP_ID_TOKEN"}}})
    );
    assert_eq!(
        got["GCP"],
        json!({"gcp_secret_manager": {"name": "pw", "version": "2",
            "server": {"project_number": "1234", "workload_identity_federation_pool_id": "pool",
                       "workload_identity_federation_provider_id": "prov", "jwt": "$GCP_ID_TOKEN"}},
            "token": "$GCP_ID_TOKEN"})
    );
}

#[test]
fn the_first_azure_secrets_server_block_wins() {
    let yaml = r#"
variables:
  AZURE_KEY_VAULT_SERVER_URL: https://kv.vault.azure.net
  AZURE_CLIENT_ID: cid
  AZURE_TENANT_ID: tid
job:
  id_tokens:
    FIRST: {aud: api://AzureADTokenExchange}
    SECOND: {aud: api://AzureADTokenExchange}
  secrets:
    A:
      azure_key_vault: {name: a}
      token: $SECOND
    B:
      azure_key_vault: {name: b}
      token: $FIRST
"#;
    let got = payload_of(yaml, "job").unwrap();
    assert_eq!(got["A"]["azure_key_vault"]["server"]["jwt"], "$SECOND");
    assert_eq!(got["B"]["azure_key_vault"]["server"]["jwt"], "$SECOND");
}

#[test]
fn akeyless_is_accepted_then_left_for_the_runner_to_skip() {
    let yaml = "variables:\n  AKEYLESS_ACCESS_ID: p-1\njob:\n  secrets:\n    K:\n      akeyless:\n        name: x\n";
    let config = CiConfig::from_yaml(yaml).unwrap();
    let secrets = config
        .job("job")
        .unwrap()
        .secrets_payload(&|n| (n == "AKEYLESS_ACCESS_ID").then(|| "p-1".to_owned()))
        .unwrap();
    assert!(secrets["K"].providers().is_empty());
    assert_eq!(
        secrets["K"].unknown_members().collect::<Vec<_>>(),
        ["akeyless"]
    );
}

/// One bad input each: the error names the job, the variable and what is wrong.
#[test]
fn bad_inputs_name_job_variable_and_problem() {
    let base = "variables:\n  VAULT_SERVER_URL: https://v\n  AWS_REGION: us-east-1\n";
    let cases: &[(&str, &str)] = &[
        (
            "    X:\n      vault: a/b\n      color: red\n",
            "config contains unknown keys: color",
        ),
        (
            "    X:\n      file: false\n",
            "must use exactly one of these keys: vault, azure_key_vault",
        ),
        (
            "    X:\n      vault: a/b\n      aws_secrets_manager: c\n",
            "must use exactly one of these keys",
        ),
        (
            "    X:\n      vault: a/b\n      token: 5\n",
            "token should be a string",
        ),
        (
            "    X:\n      vault: a/b\n      file: \"no\"\n",
            "X:file): config should be a boolean value",
        ),
        (
            "    X:\n      gcp_secret_manager:\n        name: n\n",
            "token is required with gcp secrets manager",
        ),
        (
            "    X:\n      vault:\n        path: p\n        engine: {name: kv-v2, path: m}\n",
            "hash strategy field can't be blank",
        ),
        (
            "    X:\n      vault:\n        field: f\n        engine: {name: kv-v2, path: m}\n",
            "hash strategy path can't be blank",
        ),
        (
            "    X:\n      vault:\n        path: p\n        field: f\n        engine: kv-v2\n",
            "hash strategy engine should be a hash",
        ),
        (
            "    X:\n      vault:\n        path: p\n        field: f\n        foo: 1\n        engine: {name: a, path: b}\n",
            "hash strategy config contains unknown keys: foo",
        ),
        (
            "    X:\n      vault:\n        path: p\n        field: f\n        engine: {name: a}\n",
            "engine config missing required keys: path",
        ),
        ("    X:\n      vault: [a]\n", "should be a hash or a string"),
        ("    X:\n      vault: ''\n", "can't be blank"),
        (
            "    X:\n      aws_secrets_manager: 'a#b#c'\n",
            "string strategy config must contain at most one '#'",
        ),
        (
            "    X:\n      aws_secrets_manager:\n        field: f\n",
            "hash strategy secret can't be blank",
        ),
        (
            "    X:\n      aws_secrets_manager:\n        secret_id: s\n        version_id: 3\n",
            "hash strategy version should be a string",
        ),
        (
            "    X:\n      aws_secrets_manager:\n        secret_id: s\n        foo: bar\n",
            "hash strategy config contains unknown keys: foo",
        ),
        (
            "    X:\n      aws_secrets_manager:\n        secret_id: s\n        role_arn: [a]\n",
            "hash strategy role arn should be a string",
        ),
        ("    X: just-a-string\n", "config should be a hash"),
        (
            "    X:\n      gitlab_secrets_manager:\n        name: n\n        source: nope\n",
            "source must follow the format group/group_full_path or 'project'",
        ),
    ];
    for (secrets, want) in cases {
        let yaml = format!("{base}build:\n  secrets:\n{secrets}");
        let errors = payload_of(&yaml, "build").expect_err(secrets);
        // GitLab reports every problem of an entry; the one looked for is among them.
        let text = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(text.contains(want), "{secrets}\n=> {text}");
        assert!(
            text.contains("jobs:build:secrets:X"),
            "names job and variable: {text}"
        );
        assert_eq!(errors[0].variable(), Some("X"));
    }
}

#[test]
fn missing_gate_variables_name_what_to_set() {
    let cases = [
        ("vault: a/b", "VAULT_SERVER_URL"),
        ("aws_secrets_manager: a", "AWS_REGION"),
        ("azure_key_vault: {name: n}", "AZURE_KEY_VAULT_SERVER_URL"), // `n` stays a string
        (
            "gcp_secret_manager: {name: n}\n      token: $T",
            "GCP_PROJECT_NUMBER",
        ),
    ];
    for (spec, var) in cases {
        let yaml = format!("job:\n  secrets:\n    X:\n      {spec}\n");
        let errors = payload_of(&yaml, "job").expect_err(spec);
        let text = errors[0].to_string();
        assert!(text.starts_with("X"), "{text}");
        assert!(text.contains("secrets_provider_not_found"), "{text}");
        assert!(text.contains(var), "{text}");
        assert_eq!(errors[0].kind(), ErrorKind::InvalidConfig);
    }
}

#[test]
fn every_bad_secret_is_reported_together() {
    let yaml = "job:\n  secrets:\n    A:\n      vault: a/b\n    B:\n      nope: 1\n";
    let errors = payload_of(yaml, "job").unwrap_err();
    let vars: Vec<_> = errors.iter().map(|e| e.variable().unwrap()).collect();
    assert_eq!(vars, ["A", "B", "B"], "GitLab reports both problems of B");
    assert!(errors[1].message().contains("unknown keys: nope"));
    assert!(
        errors[2]
            .message()
            .contains("must use exactly one of these keys")
    );
}

#[test]
fn bad_files_and_jobs() {
    let err = CiConfig::from_yaml("job: [unclosed").unwrap_err();
    assert!(err.to_string().contains("YAML is malformed"), "{err}");
    let err = CiConfig::from_yaml("- a\n- b\n").unwrap_err();
    assert!(err.to_string().contains("top level"), "{err}");
    let config = CiConfig::from_yaml("build:\n  script: [x]\ntest:\n  script: [y]\n").unwrap();
    let err = config.job("deploy").unwrap_err();
    assert!(err.to_string().contains("jobs:deploy"), "{err}");
    assert!(
        err.to_string().contains("the jobs are: build, test"),
        "{err}"
    );
    let err = config.job("variables").unwrap_err();
    assert!(err.to_string().contains("global keyword"), "{err}");
    let config = CiConfig::from_yaml("a:\n  extends: b\nb:\n  extends: a\n").unwrap();
    assert!(
        config
            .job("a")
            .unwrap_err()
            .to_string()
            .contains("circular")
    );
    let config = CiConfig::from_yaml("a:\n  extends: .missing\n").unwrap();
    assert!(
        config
            .job("a")
            .unwrap_err()
            .to_string()
            .contains(".missing")
    );
}

#[test]
fn vault_short_form_examples() {
    let cases = [
        (
            "production/db/password@some/path",
            ("some/path", "production/db", "password"),
        ),
        (
            "production/db/password",
            ("kv-v2", "production/db", "password"),
        ),
        ("@mnt", ("kv-v2", "", "@mnt")),
        ("a/b@", ("", "a", "b")),
        ("field", ("kv-v2", "", "field")),
        ("a/b/", ("kv-v2", "a/b", "")),
        ("a@b/c@m", ("m", "a@b", "c")),
    ];
    for (input, (mount, path, field)) in cases {
        let v = parse_vault_short(input);
        assert_eq!(
            (v.engine.path.as_str(), v.path.as_str(), v.field.as_str()),
            (mount, path, field),
            "{input}"
        );
        assert_eq!(v.engine.name, "kv-v2");
    }
}

#[test]
fn aws_short_form_examples() {
    let s = |x: &str| Some(x.to_owned());
    assert_eq!(parse_aws_short("id"), Some((s("id"), None)));
    assert_eq!(parse_aws_short("id#f"), Some((s("id"), s("f"))));
    assert_eq!(parse_aws_short("id#"), Some((s("id"), None)));
    assert_eq!(parse_aws_short("#f"), Some((s(""), s("f"))));
    assert_eq!(parse_aws_short("#"), Some((None, None)));
    assert_eq!(parse_aws_short("a#b#c"), None);
}

proptest! {
    #[test]
    fn vault_short_form_round_trips(path in "[a-z0-9/_.-]{0,20}", field in "[a-z0-9_.-]{1,10}", mount in "[a-z0-9/_-]{1,10}") {
        let v = parse_vault_short(&format!("{path}/{field}@{mount}"));
        prop_assert_eq!(v.path, path);
        prop_assert_eq!(v.field, field);
        prop_assert_eq!(v.engine.path, mount);
    }

    #[test]
    fn vault_short_form_never_panics(s in ".{0,30}") {
        let v = parse_vault_short(&s);
        // Recombining the parts gives the input back (the default mount aside).
        let joined = if v.path.is_empty() && !s[..s.rfind('@').filter(|&a| a > 0).unwrap_or(s.len())].contains('/') {
            v.field.clone()
        } else {
            format!("{}/{}", v.path, v.field)
        };
        let rebuilt = match s.rfind('@') {
            Some(a) if a > 0 => format!("{joined}@{}", v.engine.path),
            _ => joined,
        };
        prop_assert_eq!(rebuilt, s);
    }

    #[test]
    fn aws_short_form_matches_ruby_split(id in "[^#]{0,12}", field in "[^#]{0,12}") {
        let two_hashes = format!("{id}#{id}#");
        prop_assert!(parse_aws_short(&two_hashes).is_none());
        let (got_id, got_field) = parse_aws_short(&format!("{id}#{field}")).unwrap();
        if field.is_empty() {
            prop_assert_eq!(got_field, None);
            prop_assert_eq!(got_id, (!id.is_empty()).then(|| id.clone()));
        } else {
            prop_assert_eq!(got_field, Some(field));
            prop_assert_eq!(got_id, Some(id));
        }
    }
}

/// GitLab's `AlphanumericValidator` checks the type (String, Symbol, Integer), not the
/// characters: a variable reference, a negative number or an empty string pass, a float not.
#[test]
fn gcp_versions_are_checked_by_type_as_gitlab_does() {
    let job = |version: &str| {
        format!(
            "variables:\n  GCP_PROJECT_NUMBER: \"1\"\n  GCP_WORKLOAD_IDENTITY_FEDERATION_POOL_ID: p\n  \
             GCP_WORKLOAD_IDENTITY_FEDERATION_PROVIDER_ID: q\njob:\n  secrets:\n    G:\n      \
             gcp_secret_manager:\n        name: n\n        version: {version}\n      token: $T\n"
        )
    };
    for (version, emitted) in [
        ("$GCP_VERSION", "$GCP_VERSION"),
        ("-1", "-1"),
        ("'1.0'", "1.0"),
        ("''", ""),
        ("7", "7"),
    ] {
        let got = payload_of(&job(version), "job").unwrap();
        assert_eq!(
            got["G"]["gcp_secret_manager"]["version"], emitted,
            "{version}"
        );
    }
    for version in ["1.5", "true", "[1]"] {
        let errors = payload_of(&job(version), "job").unwrap_err();
        assert!(
            errors[0]
                .to_string()
                .contains("version must be an alphanumeric string"),
            "{version}: {}",
            errors[0]
        );
    }
}
