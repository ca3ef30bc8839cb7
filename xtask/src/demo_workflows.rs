//! `cargo xtask demo`, second part: the seed documents' workflows that are not `secrets:`
//! (`examples/workflows/`): temporary AWS credentials from an ID token (seed 001), from EKS
//! IRSA's token file (seed 003, option 3), and a JSON secret spread into a `.ci-secrets`
//! artifact loaded by a later job (seed 004). Each job's `script:` runs in bash as a runner
//! would run it, with `ci-secrets` on `PATH`, jobs of one file sharing a directory (the
//! artifact), against the local services.
//!
//! The AWS CLI is not installed here; an `aws` stand-in on `PATH` answers
//! `aws sts get-caller-identity` with boto3 from the LocalStack venv, reading the credentials
//! from the environment as the AWS CLI does.

use crate::ci::step;
use crate::paths::Paths;
use anyhow::{Context, Result};
use auth_oidc::testing::{E2eEnv, GitlabClaims};
use secrecy::ExposeSecret;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One job of a workflow file and whether its script succeeded.
pub(crate) struct WorkflowRun {
    pub(crate) file: String,
    pub(crate) job: String,
    pub(crate) ok: bool,
}

/// The role the IRSA job's pod is annotated with.
const IRSA_ROLE: &str = "arn:aws:iam::123456789012:role/eks-gitlab-runner";

/// Runs every job of `examples/workflows/*.yml` in file order.
pub(crate) fn run(paths: &Paths, binary: &Path, env: &E2eEnv) -> Result<Vec<WorkflowRun>> {
    let work = paths.run.join("demo-workflows");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    let bin = work.join("bin");
    std::fs::create_dir_all(&bin)?;
    std::os::unix::fs::symlink(binary, bin.join("ci-secrets"))?;
    write_aws_stand_in(&bin, &paths.venv_localstack().join("bin/python"))?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut runs = Vec::new();
    let dir = paths.root.join("examples/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    for file in files {
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let project = work.join(name.trim_end_matches(".yml"));
        std::fs::create_dir_all(&project)?;
        let text = std::fs::read_to_string(&file)?;
        let doc: Value =
            serde_saphyr::from_str(&text).with_context(|| format!("{name} does not parse"))?;
        let host = host_env(&name, env, &project)?;
        println!(
            "\n{name}: runner host environment {}",
            host.iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
        for (job, spec) in doc.as_object().into_iter().flatten() {
            let Some(script) = spec["script"].as_array() else {
                continue;
            };
            let lines: Vec<&str> = script.iter().filter_map(Value::as_str).collect();
            let mut job_env = host.clone();
            for (k, v) in spec["variables"].as_object().into_iter().flatten() {
                job_env.push((k.clone(), v.as_str().unwrap_or_default().to_owned()));
            }
            for (token, t) in spec["id_tokens"].as_object().into_iter().flatten() {
                let aud = t["aud"].as_str().unwrap_or_default();
                let minted = env.minter().mint(&GitlabClaims::new().with_audience(aud))?;
                job_env.push((token.clone(), minted.expose_secret().to_owned()));
            }
            job_env.push(("PATH".into(), path.clone()));
            job_env.push(("HOME".into(), project.display().to_string()));
            let ok = run_job(&name, job, &lines, &project, &job_env)?;
            runs.push(WorkflowRun {
                file: name.clone(),
                job: job.clone(),
                ok,
            });
        }
        if let Ok(meta) = std::fs::metadata(project.join(".ci-secrets")) {
            println!(
                "  artifact .ci-secrets: {} bytes, mode {:o}",
                meta.len(),
                meta.permissions().mode() & 0o777
            );
        }
    }
    std::fs::remove_dir_all(&work).ok();
    Ok(runs)
}

/// What the runner host gives each workflow's jobs, pointed at the local services.
fn host_env(file: &str, env: &E2eEnv, project: &Path) -> Result<Vec<(String, String)>> {
    let mut vars: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", env.aws_endpoint()),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ("CI_JOB_ID", "1001"),
        ("CI_PROJECT_ID", "42"),
        ("CI_SERVER_HOST", "gitlab.example.com"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if file.contains("irsa") {
        // EKS mounts the service account token and sets these two on the pod.
        let token = project.join("eks-token");
        let minted = env
            .minter()
            .mint(&GitlabClaims::new().with_audience("sts.amazonaws.com"))?;
        std::fs::write(&token, minted.expose_secret())?;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600))?;
        vars.push((
            "AWS_WEB_IDENTITY_TOKEN_FILE".into(),
            token.display().to_string(),
        ));
        vars.push(("AWS_ROLE_ARN".into(), IRSA_ROLE.into()));
    } else if file.contains("spread") {
        // The runner's instance role (seed 004), as LocalStack's static keys.
        vars.push(("AWS_ACCESS_KEY_ID".into(), "test".into()));
        vars.push(("AWS_SECRET_ACCESS_KEY".into(), "test".into()));
    }
    Ok(vars)
}

fn run_job(
    file: &str,
    job: &str,
    lines: &[&str],
    dir: &Path,
    env: &[(String, String)],
) -> Result<bool> {
    step(&format!("{file} / {job}"));
    let mut script = String::from("set -eo pipefail\nexec 2>&1\n");
    for line in lines {
        // Echo each line as the runner does, then run it.
        script.push_str(&format!("printf '$ %s\\n' {}\n{line}\n", shell_quote(line)));
    }
    let output = Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .context("cannot run bash")?;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        println!("  {line}");
    }
    if !output.status.success() {
        println!("  failed (exit {})", output.status.code().unwrap_or(-1));
    }
    Ok(output.status.success())
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn write_aws_stand_in(bin: &Path, python: &Path) -> Result<()> {
    let path = bin.join("aws");
    std::fs::write(
        &path,
        format!(
            r#"#!{}
"""`aws` for the demo: `aws sts get-caller-identity` with boto3, credentials from the
environment as the AWS CLI reads them. Anything else is refused."""
import json, sys
import boto3

if sys.argv[1:] != ["sts", "get-caller-identity"]:
    sys.exit("this demo's aws stand-in only answers: aws sts get-caller-identity")
answer = boto3.client("sts").get_caller_identity()
answer.pop("ResponseMetadata", None)
print(json.dumps(answer, indent=4))
"#,
            python.display()
        ),
    )?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}
