//! `cargo xtask bench`: our resolver against GitLab Runner's algorithm and job-script CLI
//! calls, on loopback with injected latency; writes `docs/benchmarks.md` and its plots.
//!
//! `cargo xtask bench --quick` (the last step of `cargo xtask test`) runs W1, W4 and the
//! provider workloads W6-W8 once at d = 0 for the library and the reproduction, over plain
//! HTTP and over TLS, and fails when a request count (or over TLS a connection or handshake
//! count) is not the expected one. `cargo xtask bench --providers` measures W6-W8 alone and
//! rewrites their sections of the report (`--transport` as for the rest).
//!
//! The full run builds `ci-secrets` and this tool in release mode and re-runs itself from the
//! release build, so the library contender is measured optimised. Every workload runs over
//! plain HTTP and over TLS as deployed (`transport.rs`, `deployed.rs`); `--transport tls`
//! measures only the TLS rows.

mod azure_runner;
mod contender;
mod deployed;
mod docs_section;
mod masking;
mod providers;
mod providers_tls;
mod report;
mod transport;
mod workload;

pub use transport::Selection;

use crate::paths::Paths;
use crate::services::{self, UpOutcome};
use anyhow::{Context as _, Result, bail};
use auth_oidc::testing::{E2eEnv, GitlabClaims};
use contender::{Contender, Ctx, Sample};
use loopback_proxy::{Proxy, ProxyConfig};
use secrecy::ExposeSecret as _;
use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use transport::Transport;
use workload::Workload;

/// Set on the release re-run, so it does not build and re-run again.
const IN_RELEASE_VAR: &str = "CI_SECRETS_BENCH_IN_RELEASE";
/// One-way delays measured by the full run, in milliseconds.
const DELAYS_MS: [u64; 3] = [0, 5, 25];
/// Timed runs per cell.
const RUNS: usize = 5;
/// Timed runs of the job-script contender (each `aws` call starts a Python interpreter,
/// about half a second).
const SCRIPT_RUNS: usize = 3;
/// The most secrets the reproduction and the script run at d > 0 (and the script at all).
const SLOW_CAP: usize = 100;
/// The pinned AWS CLI for the script contender, in its own venv.
const AWSCLI_PINS: &[&str] = &["awscli==1.44.24"];

/// One cell of the results: a workload, a contender, a delay.
#[derive(Debug, Clone)]
pub struct Cell {
    pub transport: Transport,
    pub workload: String,
    pub secrets: usize,
    pub contender: Contender,
    pub delay_ms: u64,
    pub samples: Vec<Sample>,
    /// The counts this contender should cost (`None`: not asserted).
    pub expected: Option<BTreeMap<String, u64>>,
    /// Request-count problems seen.
    pub mismatches: Vec<String>,
}

/// Everything the report needs.
#[derive(Debug, Default)]
pub struct Results {
    pub cells: Vec<Cell>,
    /// Peak RSS of `ci-secrets resolve` per workload at d = 0, in KiB.
    pub cli_rss_kib: Vec<(String, u64)>,
    /// `ci-secrets check` on a 1000-secret `.gitlab-ci.yml`: the wall times.
    pub check_times: Vec<Duration>,
    /// How long the whole run took.
    pub total: Duration,
    /// Notes on what was capped or skipped.
    pub notes: Vec<String>,
    /// Each workload's one-line description.
    pub descriptions: BTreeMap<String, String>,
    /// `exec` output masking (`masking.rs`).
    pub masking: Option<masking::MaskingResults>,
    /// W6-W8 (`providers.rs`).
    pub providers: Option<providers::ProviderResults>,
    /// The rows over TLS and what is measured only there (`deployed.rs`).
    pub deployed: deployed::Deployed,
}

/// `cargo xtask bench [--quick] [--masking] [--providers] [--transport both|plain|tls]`.
pub fn run(
    paths: &Paths,
    quick: bool,
    masking_only: bool,
    providers_only: bool,
    selection: Selection,
) -> Result<()> {
    if !quick && cfg!(debug_assertions) && std::env::var_os(IN_RELEASE_VAR).is_none() {
        return rerun_in_release(paths, masking_only, providers_only, selection);
    }
    let started = Instant::now();
    println!("==> cargo xtask services up");
    let outcome = services::up(paths)?;
    let result = if providers_only {
        measure_providers(paths, quick, selection)
    } else if selection.has_tls() && !masking_only && !transport::trusts_bench_ca(paths) {
        let mut args = vec!["bench", "--transport", selection.arg()];
        if quick {
            args.push("--quick");
        }
        transport::reexec_trusting_ca(paths, &args)
    } else {
        measure(paths, quick, masking_only, selection, started)
    };
    if outcome == UpOutcome::Started {
        println!("\n==> cargo xtask services down (bench started them)");
        services::down(paths)?;
    }
    result
}

/// Builds `ci-secrets` and this tool in release mode (one cargo invocation, so features are
/// unified once) and runs the bench from there.
fn rerun_in_release(
    paths: &Paths,
    masking_only: bool,
    providers_only: bool,
    selection: Selection,
) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    println!("==> cargo build --release -p ci-secrets -p xtask (the measured binaries)");
    let status = Command::new(&cargo)
        .current_dir(&paths.root)
        .args(["build", "--release", "-p", "ci-secrets", "-p", "xtask"])
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("the release build failed ({status})");
    }
    let exe = paths.target.join("release/xtask");
    let mut command = Command::new(&exe);
    command
        .args(["bench", "--transport", selection.arg()])
        .args(masking_only.then_some("--masking"))
        .args(providers_only.then_some("--providers"))
        .env(IN_RELEASE_VAR, "1");
    // The measured processes start as a job's would: without the library paths `cargo run`
    // added for this tool (the dynamic loader searched ~50 directories for each library).
    let inherited = std::env::var("LD_LIBRARY_PATH").unwrap_or_default();
    match without_cargo_paths(&inherited, &paths.target) {
        Some(kept) => command.env("LD_LIBRARY_PATH", kept),
        None => command.env_remove("LD_LIBRARY_PATH"),
    };
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    if !status.success() {
        bail!("the release bench failed ({status})");
    }
    Ok(())
}

/// `LD_LIBRARY_PATH` without the directories cargo adds for `cargo run` (the target
/// directory's and the toolchain's); `None` when nothing else is left.
fn without_cargo_paths(value: &str, target: &Path) -> Option<String> {
    let kept: Vec<&str> = value
        .split(':')
        .filter(|dir| {
            !dir.is_empty()
                && !Path::new(dir).starts_with(target)
                && !dir.contains("/.rustup/toolchains/")
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join(":"))
}

/// `--providers`: W6-W8 alone, over the selected transports; writes their sections of
/// docs/benchmarks.md (not with `--quick`). Over TLS it first re-runs itself trusting the
/// bench's CA (the Google client reads the system trust store).
fn measure_providers(paths: &Paths, quick: bool, selection: Selection) -> Result<()> {
    if selection.has_tls() && !transport::trusts_bench_ca(paths) {
        let mut args = vec!["bench", "--providers", "--transport", selection.arg()];
        if quick {
            args.push("--quick");
        }
        return transport::reexec_trusting_ca(paths, &args);
    }
    let tls = if selection.has_tls() {
        Some(transport::Tls::create(paths)?)
    } else {
        None
    };
    let env = E2eEnv::from_file(&paths.env_file()).context("loading the services' env file")?;
    let command = match selection {
        Selection::Both => "cargo xtask bench --providers".to_owned(),
        other => format!("cargo xtask bench --providers --transport {}", other.arg()),
    };
    let mut mismatches = Vec::new();
    if selection.transports().contains(&Transport::Plain) {
        let r = providers::measure(&env, quick, None)?;
        mismatches.extend(r.mismatches());
        if !quick {
            providers::write_section(&paths.root, &r, &command)?;
            println!("\nwrote the providers section of docs/benchmarks.md");
        }
    }
    if let Some(tls) = &tls {
        let r = providers::measure(&env, quick, Some(tls))?;
        mismatches.extend(r.mismatches());
        if !quick {
            providers_tls::write_section(&paths.root, &r, &command)?;
            println!("\nwrote the providers' TLS section of docs/benchmarks.md");
        }
    }
    if !mismatches.is_empty() {
        bail!(
            "request or connection counts differ from the expected ones:\n  {}",
            mismatches.join("\n  ")
        );
    }
    println!(
        "provider workloads: request counts, and over TLS connection and handshake counts, as expected"
    );
    Ok(())
}

fn socket_addr(url: &str) -> Result<SocketAddr> {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .with_context(|| format!("{url} is not http://<ip>:<port>"))
}

fn measure(
    paths: &Paths,
    quick: bool,
    masking_only: bool,
    selection: Selection,
    started: Instant,
) -> Result<()> {
    // The CA file first: the AWS SDK reads it when it builds its first client.
    let tls = if selection.has_tls() && !masking_only {
        Some(transport::Tls::create(paths)?)
    } else {
        None
    };
    let env = E2eEnv::from_file(&paths.env_file()).context("loading the services' env file")?;
    let work = paths.xtask.join("bench");
    fs::create_dir_all(work.join("home"))?;

    println!("\n==> seeding the bench's secrets");
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()?;
    let t = Instant::now();
    let (vault_paths, aws_secrets) = match (quick, masking_only) {
        (true, _) => (10, 20),
        (false, true) => (25, 50),
        (false, false) => (250, 500),
    };
    let v = workload::seed_vault(
        &http,
        env.vault_addr(),
        env.vault_root_token().expose_secret(),
        vault_paths,
    )?;
    let a = workload::seed_aws(
        &paths.venv_localstack().join("bin/python"),
        env.aws_endpoint(),
        &paths.service_home(),
        aws_secrets,
    )?;
    println!(
        "OpenBao: {}, LocalStack: {} ({:.1}s)",
        if v { "seeded" } else { "already seeded" },
        if a { "seeded" } else { "already seeded" },
        t.elapsed().as_secs_f64()
    );

    let contenders: Vec<Contender> = if quick {
        vec![Contender::Library, Contender::Reproduction]
    } else {
        Contender::ALL.to_vec()
    };
    let vault_addr = socket_addr(env.vault_addr())?;
    let aws_addr = socket_addr(env.aws_endpoint())?;
    let ctx = Ctx {
        runtime: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?,
        vault_proxy: Proxy::start(vault_addr, ProxyConfig::default())?,
        aws_proxy: Proxy::start(aws_addr, ProxyConfig::default())?,
        transport: Transport::Plain,
        ca_file: None,
        cli: (!quick).then(|| paths.target.join("release/ci-secrets")),
        bao: (!quick).then(|| paths.venv_bao().join("bin/bao")),
        aws_cli: if quick || masking_only {
            None
        } else {
            Some(ensure_awscli(paths)?)
        },
        work: work.clone(),
    };
    if let Some(cli) = &ctx.cli
        && !cli.is_file()
    {
        bail!("{} is missing: run `cargo xtask bench`", cli.display());
    }
    let tls_ctx = match &tls {
        Some(tls) => Some(Ctx {
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?,
            vault_proxy: tls.vault_front(vault_addr)?,
            aws_proxy: tls.aws_front(aws_addr)?,
            transport: Transport::Tls,
            ca_file: Some(tls.ca_file().to_owned()),
            cli: ctx.cli.clone(),
            bao: ctx.bao.clone(),
            aws_cli: ctx.aws_cli.clone(),
            work: work.clone(),
        }),
        None => None,
    };

    let workloads = Workload::all(quick);
    let delays: &[u64] = if quick { &[0] } else { &DELAYS_MS };
    let mut results = Results {
        descriptions: workloads
            .iter()
            .map(|w| (w.name.clone(), w.description.clone()))
            .collect(),
        ..Results::default()
    };
    let minter = env.minter();
    let mint = || -> Result<(String, String)> {
        let vault = minter.mint(&GitlabClaims::new())?;
        let aws = minter.mint(&GitlabClaims::new().with_audience("sts.amazonaws.com"))?;
        Ok((
            vault.expose_secret().to_owned(),
            aws.expose_secret().to_owned(),
        ))
    };
    // `exec` output masking: W5-100 (100 secrets) from the release build, or W4 and the
    // debug build with `--quick`.
    let run_masking = || -> Result<masking::MaskingResults> {
        println!("\n==> exec output masking");
        let all = Workload::all(quick);
        let name = if quick { "W4" } else { "W5-100" };
        let w = all
            .iter()
            .find(|w| w.name == name)
            .context("no masking workload")?;
        let cli = match &ctx.cli {
            Some(cli) => cli.clone(),
            None => debug_cli(paths)?,
        };
        let (vj, aj) = mint()?;
        masking::run(
            &ctx,
            &cli,
            w,
            &w.payload(&ctx.vault_proxy.url(), &vj, &aj).to_string(),
            quick,
        )
    };
    if masking_only {
        let m = run_masking()?;
        masking::write_section(&paths.root, &m)?;
        println!("\nwrote the masking section of docs/benchmarks.md");
        return Ok(());
    }

    for c in [Some(&ctx), tls_ctx.as_ref()].into_iter().flatten() {
        if !selection.transports().contains(&c.transport) {
            continue;
        }
        println!("\n==> over {}", c.transport.label());
        let cells = measure_cells(c, &workloads, &contenders, delays, quick, &mint)?;
        match c.transport {
            Transport::Plain => results.cells.extend(cells),
            Transport::Tls => results.deployed.cells.extend(cells),
        }
    }

    let mut mismatches: Vec<String> = results
        .cells
        .iter()
        .chain(&results.deployed.cells)
        .flat_map(|c| {
            c.mismatches.iter().map(move |m| {
                format!(
                    "{} {} over {} d={}ms: {m}",
                    c.workload,
                    c.contender.label(),
                    c.transport.label(),
                    c.delay_ms
                )
            })
        })
        .collect();

    if quick {
        if selection.transports().contains(&Transport::Plain) {
            run_masking()?;
            println!("exec output masking: bytes and masks as expected");
            mismatches.extend(providers::measure(&env, true, None)?.mismatches());
        }
        if let Some(tls) = &tls {
            mismatches.extend(providers::measure(&env, true, Some(tls))?.mismatches());
        }
        if !mismatches.is_empty() {
            bail!(
                "request or connection counts differ from the expected ones:\n  {}",
                mismatches.join("\n  ")
            );
        }
        println!(
            "\nbench --quick: request counts, and over TLS connection and handshake counts, as \
             expected ({:.1}s)",
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }

    if let Some(tls_ctx) = &tls_ctx {
        let all = Workload::all(false);
        deployed::extras(tls_ctx, &all, &mint, &mut results.deployed)?;
    }
    let providers_tls = match &tls {
        Some(tls) => Some(providers::measure(&env, false, Some(tls))?),
        None => None,
    };
    // Written after the rest of the report (which rewrites the file).
    let write_providers_tls = || -> Result<()> {
        if let Some(r) = &providers_tls {
            let command = match selection {
                Selection::Both => "cargo xtask bench".to_owned(),
                other => format!("cargo xtask bench --transport {}", other.arg()),
            };
            providers_tls::write_section(&paths.root, r, &command)?;
        }
        Ok(())
    };
    mismatches.extend(
        providers_tls
            .iter()
            .flat_map(providers::ProviderResults::mismatches),
    );
    if !selection.transports().contains(&Transport::Plain) {
        results.deployed.total = started.elapsed();
        deployed::write_section(&paths.root, &results)?;
        write_providers_tls()?;
        println!(
            "\nwrote the TLS section of docs/benchmarks.md ({:.0}s in all)",
            started.elapsed().as_secs_f64()
        );
        if !mismatches.is_empty() {
            bail!(
                "request or connection counts differ from the expected ones:\n  {}",
                mismatches.join("\n  ")
            );
        }
        return Ok(());
    }

    println!("\n==> ci-secrets peak RSS (/usr/bin/time -f %M), each workload at d = 0");
    ctx.vault_proxy.set_delay(Duration::ZERO);
    ctx.aws_proxy.set_delay(Duration::ZERO);
    for w in &workloads {
        let (vj, aj) = mint()?;
        let payload = w.payload(&ctx.vault_proxy.url(), &vj, &aj).to_string();
        let kib = cli_peak_rss(&ctx, &payload)?;
        println!("  {:<8} {:>6} KiB", w.name, kib);
        results.cli_rss_kib.push((w.name.clone(), kib));
    }

    println!("\n==> ci-secrets check on a generated 1000-secret .gitlab-ci.yml");
    let yml = work.join("gitlab-ci-1000.yml");
    fs::write(&yml, workload::gitlab_ci_yaml(1000))?;
    results.check_times = time_check(ctx.cli.as_deref().context("no ci-secrets")?, &yml)?;
    let mut sorted = results.check_times.clone();
    sorted.sort();
    println!(
        "  median {:.1} ms over {} runs",
        sorted[sorted.len() / 2].as_secs_f64() * 1000.0,
        sorted.len()
    );

    results.masking = Some(run_masking()?);
    results.providers = Some(providers::measure(&env, false, None)?);

    results.notes = vec![
        format!(
            "The reproduction runs W5 above {SLOW_CAP} secrets only at d = 0; the job script \
             never runs above {SLOW_CAP} secrets (each `aws` call starts a Python interpreter, \
             about 0.5 s, so W5-1000 would take minutes per run)."
        ),
        format!(
            "Timed runs per cell: {RUNS}; the job script {SCRIPT_RUNS} (1 at {SLOW_CAP} secrets); \
             the reproduction 3 at W5-1000 (d = 0 only)."
        ),
    ];
    results.total = started.elapsed();
    results.deployed.total = results.total;
    report::write(paths, &results)?;
    if tls_ctx.is_some() {
        deployed::write_section(&paths.root, &results)?;
    }
    write_providers_tls()?;
    println!(
        "\nwrote docs/benchmarks.md and docs/benchmarks/*.svg ({:.0}s in all)",
        started.elapsed().as_secs_f64()
    );
    mismatches.extend(
        results
            .providers
            .iter()
            .flat_map(providers::ProviderResults::mismatches),
    );
    if !mismatches.is_empty() {
        bail!(
            "request counts differ from the expected ones (see the report):\n  {}",
            mismatches.join("\n  ")
        );
    }
    Ok(())
}

/// Every workload at every delay for every contender over `ctx`'s transport (a warm-up
/// first, untimed, in a full run); each run's counts checked.
fn measure_cells(
    ctx: &Ctx,
    workloads: &[Workload],
    contenders: &[Contender],
    delays: &[u64],
    quick: bool,
    mint: &dyn Fn() -> Result<(String, String)>,
) -> Result<Vec<Cell>> {
    let mut all = Vec::new();
    if !quick {
        println!("\n==> warm-up (untimed): each contender once on W4 at d = 0");
        let w4 = workloads.iter().find(|w| w.name == "W4").context("no W4")?;
        let (vj, aj) = mint()?;
        let payload = w4.payload(&ctx.vault_proxy.url(), &vj, &aj).to_string();
        for &c in contenders {
            ctx.run(c, w4, &payload)
                .with_context(|| format!("warm-up of {}", c.label()))?;
        }
    }

    for &delay in delays {
        let d = Duration::from_millis(delay);
        ctx.vault_proxy.set_delay(d);
        ctx.aws_proxy.set_delay(d);
        for w in workloads {
            let mut cells: Vec<Cell> = Vec::new();
            for &c in contenders {
                let runs = runs_for(c, w, delay, quick);
                if runs == 0 {
                    continue;
                }
                cells.push(Cell {
                    transport: ctx.transport,
                    workload: w.name.clone(),
                    secrets: w.secrets(),
                    contender: c,
                    delay_ms: delay,
                    samples: Vec::new(),
                    expected: expected_for(c, w),
                    mismatches: Vec::new(),
                });
            }
            let most = cells
                .iter()
                .map(|c| runs_for(c.contender, w, delay, quick))
                .max()
                .unwrap_or(0);
            print!("{} at d = {delay} ms:", w.name);
            for iteration in 0..most {
                let (vj, aj) = mint()?;
                let payload = w.payload(&ctx.vault_proxy.url(), &vj, &aj).to_string();
                // Alternate: each iteration runs every contender once, starting with a
                // different one each time.
                let n = cells.len();
                for k in 0..n {
                    let cell = &mut cells[(iteration + k) % n];
                    if iteration >= runs_for(cell.contender, w, delay, quick) {
                        continue;
                    }
                    let sample = ctx.run(cell.contender, w, &payload).with_context(|| {
                        format!("{} on {} at d = {delay} ms", cell.contender.label(), w.name)
                    })?;
                    check_counts(cell, w, &sample);
                    cell.samples.push(sample);
                }
                print!(" {}", iteration + 1);
                use std::io::Write as _;
                let _ = std::io::stdout().flush();
            }
            println!();
            for cell in &cells {
                let mut walls: Vec<Duration> = cell.samples.iter().map(|s| s.wall).collect();
                walls.sort();
                println!(
                    "  {:<34} median {:>9.1} ms  requests {:>5}  connections {:>5}{}",
                    cell.contender.label(),
                    walls[walls.len() / 2].as_secs_f64() * 1000.0,
                    cell.samples[0].vault.requests + cell.samples[0].aws.requests,
                    cell.samples[0].vault.connections + cell.samples[0].aws.connections,
                    if cell.mismatches.is_empty() {
                        String::new()
                    } else {
                        format!("  MISMATCH: {}", cell.mismatches.join("; "))
                    }
                );
            }
            all.extend(cells);
        }
    }
    Ok(all)
}

/// How many timed runs `contender` gets on `workload` at `delay_ms`.
fn runs_for(contender: Contender, workload: &Workload, delay_ms: u64, quick: bool) -> usize {
    if quick {
        return 1;
    }
    let n = workload.secrets();
    match contender {
        Contender::Library | Contender::Cli => RUNS,
        Contender::Reproduction if n > SLOW_CAP && delay_ms > 0 => 0,
        Contender::Reproduction if n > SLOW_CAP => 3,
        Contender::Reproduction => RUNS,
        Contender::Script if n > SLOW_CAP => 0,
        Contender::Script if n == SLOW_CAP => 1,
        Contender::Script => SCRIPT_RUNS,
    }
}

fn expected_for(contender: Contender, workload: &Workload) -> Option<BTreeMap<String, u64>> {
    match contender {
        Contender::Library | Contender::Cli => Some(workload.expected_ours()),
        Contender::Reproduction => Some(workload.expected_reproduction()),
        Contender::Script => None,
    }
}

/// Compares the reported counts and the proxies' counts with the expected ones.
fn check_counts(cell: &mut Cell, workload: &Workload, sample: &Sample) {
    let Some(expected) = &cell.expected else {
        return;
    };
    let mut problems = Vec::new();
    if let Some(reported) = &sample.reported {
        let reported: BTreeMap<String, u64> = reported
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if &reported != expected {
            problems.push(format!(
                "report.requests {reported:?}, expected {expected:?}"
            ));
        }
    }
    let (vault, aws) = Workload::split_by_server(expected);
    if sample.vault.requests != vault {
        problems.push(format!(
            "the Vault proxy saw {} requests, expected {vault}",
            sample.vault.requests
        ));
    }
    if sample.aws.requests != aws {
        problems.push(format!(
            "the LocalStack proxy saw {} requests, expected {aws}",
            sample.aws.requests
        ));
    }
    if cell.transport == Transport::Tls {
        deployed::check_connections(cell.contender, workload, sample, &mut problems);
    }
    for p in problems {
        if !cell.mismatches.contains(&p) {
            cell.mismatches.push(p);
        }
    }
}

/// Peak RSS of one `ci-secrets resolve` run, in KiB, from `/usr/bin/time -f %M`.
fn cli_peak_rss(ctx: &Ctx, payload: &str) -> Result<u64> {
    let cli = ctx.cli.as_deref().context("no ci-secrets")?;
    let file = ctx.work.join("payload.json");
    contender::write_private(&file, payload)?;
    let out = ctx.work.join("rss.txt");
    let inner = ctx.cli_command(cli, &file);
    let mut command = Command::new("/usr/bin/time");
    command.args(["-f", "%M", "-o"]).arg(&out).arg(cli);
    command.args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => command.env(k, v),
            None => command.env_remove(k),
        };
    }
    let output = command
        .output()
        .context("cannot run /usr/bin/time (apt-get install time)")?;
    if !output.status.success() {
        bail!(
            "ci-secrets under /usr/bin/time failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = fs::read_to_string(&out)?;
    text.lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .with_context(|| format!("no RSS in {}", out.display()))
}

/// `ci-secrets check --ci-config <yml>`: one untimed run, then [`RUNS`] timed ones.
fn time_check(cli: &Path, yml: &Path) -> Result<Vec<Duration>> {
    let mut times = Vec::new();
    for i in 0..=RUNS {
        let start = Instant::now();
        let output = Command::new(cli)
            .args(["check", "--ci-config"])
            .arg(yml)
            .output()
            .context("cannot run ci-secrets check")?;
        let wall = start.elapsed();
        if !output.status.success() {
            bail!(
                "ci-secrets check failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        if i > 0 {
            times.push(wall);
        }
    }
    Ok(times)
}

/// The AWS CLI in `target/xtask/venv-awscli`, installed once (a marker file records the pins).
fn ensure_awscli(paths: &Paths) -> Result<PathBuf> {
    let venv = paths.xtask.join("venv-awscli");
    let marker = venv.join(".xtask-installed");
    let want = AWSCLI_PINS.join("\n") + "\n";
    let aws = venv.join("bin/aws");
    if fs::read_to_string(&marker).is_ok_and(|t| t == want) && aws.is_file() {
        return Ok(aws);
    }
    println!(
        "installing the AWS CLI ({}) into {} (once)",
        AWSCLI_PINS.join(" "),
        paths.show(&venv)
    );
    if venv.exists() {
        fs::remove_dir_all(&venv)?;
    }
    let python = std::env::var("CI_SECRETS_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let status = Command::new(&python)
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .with_context(|| format!("cannot run `{python} -m venv`"))?;
    if !status.success() {
        bail!("`{python} -m venv {}` failed ({status})", venv.display());
    }
    let output = Command::new(venv.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
        ])
        .args(AWSCLI_PINS)
        .output()
        .context("cannot run pip")?;
    if !output.status.success() {
        bail!(
            "pip install {} failed: {}",
            AWSCLI_PINS.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    fs::write(&marker, want)?;
    Ok(aws)
}

/// The debug `ci-secrets` (built if missing), for `--quick`.
fn debug_cli(paths: &Paths) -> Result<PathBuf> {
    let cli = paths.target.join("debug/ci-secrets");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(&cargo)
        .current_dir(&paths.root)
        .args(["build", "--quiet", "-p", "ci-secrets"])
        .status()
        .context("cannot run cargo")?;
    if !status.success() || !cli.is_file() {
        bail!("building ci-secrets failed ({status})");
    }
    Ok(cli)
}

/// Median, min and max of the samples' wall times.
pub fn spread(samples: &[Sample]) -> (Duration, Duration, Duration) {
    let mut walls: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
    walls.sort();
    (walls[walls.len() / 2], walls[0], walls[walls.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_library_paths_are_dropped_and_the_others_kept() {
        let target = Path::new("/work/main/target");
        let cargo_added = "/work/main/target/release/deps:/work/main/target/release:\
                           /root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/lib";
        assert_eq!(without_cargo_paths(cargo_added, target), None);
        assert_eq!(
            without_cargo_paths(&format!("{cargo_added}:/opt/lib::/usr/local/lib"), target),
            Some("/opt/lib:/usr/local/lib".to_owned())
        );
        assert_eq!(without_cargo_paths("", target), None);
    }
}
