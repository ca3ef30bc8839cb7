//! `cargo xtask demo`: the seed documents' jobs resolved by `ci-secrets` against the local
//! services, with what each produced (values masked), the requests made and the time taken.

use crate::ci::{cargo, shell, step};
use crate::paths::Paths;
use crate::services::{self, UpOutcome};
use anyhow::{Context, Result, bail};
use auth_oidc::testing::{E2eEnv, GitlabClaims};
use secrecy::ExposeSecret;
use secrets_core::gitlab_ci::CiConfig;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use xshell::cmd;

/// The cross-account ARN in seed 000; the demo points it at the seeded secret's real ARN.
const SEED_SHARED_ARN: &str =
    "arn:aws:secretsmanager:us-east-1:987654321098:secret:shared-api-keys-AbCdEf";

/// `cargo xtask demo`.
pub fn run(paths: &Paths) -> Result<()> {
    step("cargo xtask services up");
    let outcome = services::up(paths)?;
    let result = demo(paths);
    if outcome == UpOutcome::Started {
        step("cargo xtask services down");
        services::down(paths)?;
    } else {
        println!("\nservices were already up before `demo`: leaving them up");
    }
    result
}

struct JobRun {
    file: String,
    job: String,
    ok: bool,
}

fn demo(paths: &Paths) -> Result<()> {
    step("cargo build -p ci-secrets");
    let sh = shell(paths)?;
    let cargo = cargo();
    cmd!(sh, "{cargo} build --quiet -p ci-secrets").run()?;
    resolve_examples(paths, &paths.target.join("debug/ci-secrets"))
}

/// Resolves every example job with `binary` against the running services; fails when any
/// job fails.
pub fn resolve_examples(paths: &Paths, binary: &Path) -> Result<()> {
    let env = E2eEnv::from_file(&paths.env_file())?;
    let fakes = cloud_fakes::env::FakesEnv::from_file(&paths.env_file())?;
    let minter = env.minter();
    // What a GitLab job would have in its environment, pointed at the local services; each
    // job also gets exactly the ID tokens it declares, minted with their `aud`.
    let base_env: Vec<(String, String)> = [
        ("VAULT_SERVER_URL", env.vault_addr()),
        ("VAULT_AUTH_ROLE", "ci"),
        ("AWS_ENDPOINT_URL", env.aws_endpoint()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("CI_JOB_ID", "1001"),
        ("CI_PROJECT_ID", "42"),
        ("CI_SERVER_HOST", "gitlab.example.com"),
        ("CLOUDSDK_API_ENDPOINT_OVERRIDES_STS", fakes.gcp_sts_url()),
        (
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER",
            fakes.gcp_secretmanager_url(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    println!(
        "job environment: VAULT_SERVER_URL={} VAULT_AUTH_ROLE=ci AWS_ENDPOINT_URL={}, static keys for \
         the default chain, CLOUDSDK_API_ENDPOINT_OVERRIDES_{{STS,SECRETMANAGER}}={} (the Google \
         fakes), HTTPS_PROXY and SSL_CERT_FILE for the Azure job (the Azure fake), and each \
         job's id_tokens minted by the local issuer",
        env.vault_addr(),
        env.aws_endpoint(),
        fakes.gcp_sts_url()
    );

    let work = paths.run.join("demo");
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .with_context(|| format!("cannot clear {}", work.display()))?;
    }
    std::fs::create_dir_all(&work)?;
    let mut runs = Vec::new();
    for file in example_files(&paths.root.join("examples/gitlab-ci"))? {
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let mut text = std::fs::read_to_string(&file)?;
        // The Azure fake answers only to the real host names, over TLS. The job reaches it
        // as a job behind a corporate proxy would: `HTTPS_PROXY` names the fakes' CONNECT
        // proxy (which tunnels only the Azure names to the fake) and `SSL_CERT_FILE` the
        // test CA. The shipped binary resolves no name itself and has no override.
        let azure_env = if text.contains("azure_key_vault:") {
            let proxy = fakes.azure_proxy_url().with_context(|| {
                format!(
                    "{name}: the env file has no {} (restart the services: cargo xtask services down; cargo xtask services up)",
                    cloud_fakes::env::keys::AZURE_PROXY_URL
                )
            })?;
            println!(
                "\n({name}: HTTPS_PROXY={proxy} (the fakes' CONNECT proxy to the Azure fake), \
                 SSL_CERT_FILE={} (the fakes' test CA), NO_PROXY=127.0.0.1,localhost)",
                fakes.azure_ca().display()
            );
            vec![
                ("HTTPS_PROXY".to_owned(), proxy.to_owned()),
                (
                    "SSL_CERT_FILE".to_owned(),
                    fakes.azure_ca().display().to_string(),
                ),
                ("NO_PROXY".to_owned(), "127.0.0.1,localhost".to_owned()),
            ]
        } else {
            Vec::new()
        };
        if text.contains(SEED_SHARED_ARN) {
            text = text.replace(SEED_SHARED_ARN, env.shared_secret_arn());
            println!("\n({name}: the seed's example ARN is replaced by the seeded secret's ARN)");
        }
        let local = work.join(&name);
        std::fs::write(&local, &text)?;
        let config =
            CiConfig::from_yaml(&text).with_context(|| format!("{name} does not parse"))?;
        for job in config.job_names() {
            if !config.job(job).is_ok_and(|j| j.has_secrets()) {
                continue;
            }
            let files_dir = work.join(format!("{}-{job}", name.trim_end_matches(".yml")));
            let mut job_env = base_env.clone();
            for token in config.job(job)?.id_tokens() {
                let aud = token.aud.first().map_or("", String::as_str);
                let minted = minter.mint(&GitlabClaims::new().with_audience(aud))?;
                job_env.push((token.name.clone(), minted.expose_secret().to_owned()));
            }
            if name.starts_with("gitlab-secrets-manager") {
                job_env.extend(crate::seed_gitlab_sm::demo_env(&env)?);
            }
            job_env.extend(azure_env.iter().cloned());
            let ok = run_job(binary, &local, &name, job, &files_dir, &job_env)?;
            runs.push(JobRun {
                file: name.clone(),
                job: job.to_owned(),
                ok,
            });
        }
    }
    std::fs::remove_dir_all(&work).ok();
    for w in crate::demo_workflows::run(paths, binary, &env)? {
        runs.push(JobRun {
            file: w.file,
            job: w.job,
            ok: w.ok,
        });
    }

    println!("\nsummary:");
    for run in &runs {
        println!(
            "  {:<4} {} / {}",
            if run.ok { "ok" } else { "FAIL" },
            run.file,
            run.job
        );
    }
    let failed = runs.iter().filter(|r| !r.ok).count();
    if failed > 0 {
        bail!("{failed} of {} example jobs failed to resolve", runs.len());
    }
    println!("all {} example jobs resolved", runs.len());
    Ok(())
}

fn example_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

fn run_job(
    binary: &Path,
    config: &Path,
    name: &str,
    job: &str,
    files_dir: &Path,
    job_env: &[(String, String)],
) -> Result<bool> {
    step(&format!(
        "ci-secrets resolve --ci-config {name} --job {job}"
    ));
    let started = Instant::now();
    let output = Command::new(binary)
        .args(["resolve", "--format", "json", "--job", job, "--ci-config"])
        .arg(config)
        .arg("--files-dir")
        .arg(files_dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(job_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .context("cannot run ci-secrets")?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        println!(
            "  failed (exit {}) after {} ms:\n{}",
            output.status.code().unwrap_or(-1),
            elapsed.as_millis(),
            indent(&String::from_utf8_lossy(&output.stderr))
        );
        return Ok(false);
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("ci-secrets printed no JSON")?;
    for var in doc["variables"].as_array().into_iter().flatten() {
        let key = var["key"].as_str().unwrap_or_default();
        let value = var["value"].as_str().unwrap_or_default();
        if var["file"].as_bool() == Some(true) {
            let size = std::fs::metadata(value).map(|m| m.len()).unwrap_or(0);
            println!("  {key:<28} file {value} ({size} bytes, mode 0600)");
        } else {
            println!(
                "  {key:<28} {} ({} characters, masked)",
                "*".repeat(8),
                value.chars().count()
            );
        }
    }
    let requests: Vec<String> = doc["report"]["requests"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!(
        "  requests: {}; {} ms end to end ({} ms resolving)",
        requests.join(" "),
        elapsed.as_millis(),
        doc["report"]["duration_ms"]
    );
    for note in doc["report"]["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["notes"].as_array().into_iter().flatten())
    {
        println!("  note: {}", note.as_str().unwrap_or_default());
    }
    Ok(true)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}
