//! How a Rust runner embeds the resolver: job payload in, job variables out, files cleaned up.
//!
//! ```sh
//! cargo run -p secrets-resolver --example runner_embedding -- examples/payloads/vault-and-aws.json
//! ```
//!
//! The "executor" here is a stand-in: a shell that lists what it received (names and flags),
//! then carelessly echoes the first secret. Its output goes through the resolution's masker,
//! as a runner's job trace would, so the log shows `[MASKED]`. File-type secrets are written
//! 0600 into a private directory for the job and removed when it ends, as the runner's build
//! directory would be.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example prints"
)]

use secrets_core::JobPayload;
use secrets_core::materialise::SecretFiles;
use secrets_resolver::{ResolveOptions, Resolver};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: runner_embedding <job-payload.json>");
        return ExitCode::from(2);
    };
    let payload = match std::fs::read_to_string(&path).map(|t| JobPayload::from_json(&t)) {
        Ok(Ok(payload)) => payload,
        Ok(Err(e)) => {
            eprintln!(
                "{path}: not a job payload (line {} column {})",
                e.line(),
                e.column()
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(2);
        }
    };

    // 1. Resolve, with the runner's options read from the job's variables.
    let resolver = match Resolver::builder().with_default_providers() {
        Ok(builder) => builder
            .with_options(ResolveOptions::from_job_variables(&payload.variables))
            .build(),
        Err(e) => {
            eprintln!("configuring providers: {e}");
            return ExitCode::from(2);
        }
    };
    // The resolution returns as soon as every value is there; the Vault token's revoke may
    // still be in flight. It finishes on its own; `close` (step 5) waits for it.
    let mut resolution = match resolver.resolve_payload(&payload).await {
        Ok(resolution) => resolution,
        Err(failure) => {
            // Every failed secret with its reason; the job fails, nothing was materialised.
            eprintln!("{failure}");
            return ExitCode::from(1);
        }
    };

    // 2. The runner's variable list: job variables, then secrets (which win).
    let variables = resolution.runner_variables(&payload.variables);

    // 3. The executor: file-type variables become files, the environment holds their path.
    let mut files = match SecretFiles::create() {
        Ok(files) => files,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let mut job = std::process::Command::new("sh");
    job.arg("-c").arg(
        r#"for v in $SECRET_NAMES; do eval "val=\$$v"; if [ -f "$val" ]; then echo "$v: file ($(wc -c < "$val") bytes)"; cat "$val"; echo; else echo "$v: variable (${#val} characters): $val"; fi; done"#,
    );
    job.env_clear();
    let mut names = Vec::new();
    for var in &variables {
        let value = if var.file && resolution.variables.iter().any(|s| s.key == var.key) {
            match files.write(
                &var.key,
                &secrets_core::SecretValue::new(var.value.as_str()),
            ) {
                Ok(path) => path.display().to_string(),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(1);
                }
            }
        } else {
            var.value.clone()
        };
        job.env(&var.key, value);
        if resolution.variables.iter().any(|s| s.key == var.key) {
            names.push(var.key.clone());
        }
    }
    job.env("SECRET_NAMES", names.join(" "));

    // 4. The job log: every value of the resolution masked, as the runner masks its trace.
    // (A runner filters each of the job's streams through its own `masker.stream()`.)
    let masker = resolution.masker();
    job.stdout(std::process::Stdio::piped());
    let status = job.spawn().and_then(|mut child| {
        if let Some(mut out) = child.stdout.take() {
            let mut trace = masker.writer(std::io::stdout());
            std::io::copy(&mut out, &mut trace)?;
            trace.finish()?;
        }
        child.wait()
    });

    // 5. Clean up: the files go with the job; wait for the revoke (it overlapped the job),
    // after which the report counts it too.
    files.cleanup();
    resolution.close().await;
    println!("requests: {:?}", resolution.report.requests);
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}
