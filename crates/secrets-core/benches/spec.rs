//! Micro-benchmarks of the offline work of a resolution: reading a job's `secrets:` from
//! `.gitlab-ci.yml` (parse and normalise as GitLab's server does) and expanding the secrets'
//! fields with the job's variables.
//!
//! `cargo bench -p ci-secrets-core --bench spec`

use criterion::{Criterion, criterion_group, criterion_main};
use secrets_core::gitlab_ci::CiConfig;
use secrets_core::{Secrets, Variables, expand};
use std::fmt::Write as _;
use std::hint::black_box;

/// One job with `count` secrets: half Vault short forms over `count / 4` paths, half AWS
/// (every fifth pinned to a version), with the settings GitLab's server reads.
fn gitlab_ci_yaml(count: usize) -> String {
    let mut out = String::from(
        "variables:\n  VAULT_SERVER_URL: https://vault.example.com\n  VAULT_AUTH_ROLE: ci\n  \
         AWS_REGION: us-east-1\n  AWS_ROLE_ARN: 'arn:aws:iam::000000000000:role/ci'\n\
         deploy:\n  id_tokens:\n    VAULT_ID_TOKEN:\n      aud: https://vault.example.com\n    \
         AWS_ID_TOKEN:\n      aud: sts.amazonaws.com\n  secrets:\n",
    );
    for v in 0..count / 2 {
        let _ = write!(
            out,
            "    V_{v:04}:\n      vault: ci/bench/p{:03}/f{}@secret\n      token: $VAULT_ID_TOKEN\n      file: false\n",
            v / 2,
            v % 2
        );
    }
    for a in 0..count - count / 2 {
        let _ = write!(
            out,
            "    A_{a:04}:\n      aws_secrets_manager:\n        secret_id: bench/s{a:03}\n"
        );
        if a % 5 == 4 {
            let _ = writeln!(out, "        version_id: b0000000-0000-4000-8000-{a:012}");
        }
        out.push_str("      token: $AWS_ID_TOKEN\n");
    }
    out.push_str("  script:\n    - ./deploy.sh\n");
    out
}

/// Parses `yaml` and normalises job `deploy` into the payload's `secrets`.
fn parse_and_normalise(yaml: &str) -> Secrets {
    let config = CiConfig::from_yaml(yaml).expect("the generated YAML parses");
    let job = config.job("deploy").expect("the job exists");
    let settings = |name: &str| {
        job.variables()
            .iter()
            .rev()
            .find(|v| v.key == name)
            .map(|v| v.value.clone())
    };
    job.secrets_payload(&settings)
        .expect("the secrets are valid")
}

fn gitlab_ci(c: &mut Criterion) {
    let yaml = gitlab_ci_yaml(1000);
    assert_eq!(parse_and_normalise(&yaml).len(), 1000);
    c.bench_function("gitlab_ci/parse_normalise_1000", |b| {
        b.iter(|| parse_and_normalise(black_box(&yaml)));
    });
}

fn expansion(c: &mut Criterion) {
    let vars: Vec<secrets_core::JobVariable> = [
        ("CI_JOB_ID", "1001"),
        ("CI_PROJECT_ID", "42"),
        ("CI_SERVER_HOST", "gitlab.example.com"),
        ("VAULT_ID_TOKEN", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"),
        ("AWS_ID_TOKEN", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"),
    ]
    .into_iter()
    .map(|(k, v)| secrets_core::JobVariable::new(k, v))
    .collect();
    let variables = Variables::new(vars);
    let lookup = |name: &str| variables.get(name).map(|v| v.into_owned());

    c.bench_function("expand/session_name_template", |b| {
        b.iter(|| expand::expand_with(black_box(expand::AWS_SESSION_NAME_TEMPLATE), lookup));
    });
    c.bench_function("expand/no_variable", |b| {
        b.iter(|| expand::expand_with(black_box("production/db/password"), lookup));
    });

    let secrets = parse_and_normalise(&gitlab_ci_yaml(1000));
    c.bench_function("expand/payload_1000_secrets", |b| {
        b.iter(|| {
            let mut secrets = secrets.clone();
            for secret in secrets.values_mut() {
                secret.expand_variables(&lookup);
            }
            secrets
        });
    });
}

criterion_group!(benches, gitlab_ci, expansion);
criterion_main!(benches);
