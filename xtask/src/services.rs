//! `cargo xtask services up|down|status`.

use crate::install;
use crate::paths::Paths;
use crate::procs;
use crate::seed_vault;
use anyhow::{Context as _, Result, bail};
use auth_oidc::testing::{E2eEnv, IssuerKey, keys};
use reqwest::blocking::Client;
use std::ffi::OsStr;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The longest the servers may take to become healthy (LocalStack: 20-30 s cold).
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How often to probe while waiting.
const POLL: Duration = Duration::from_millis(250);
/// How often to say what is still awaited.
const WAIT_REPORT: Duration = Duration::from_secs(10);
/// LocalStack's default account.
const AWS_ACCOUNT: &str = "000000000000";

/// The services, in start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    OpenBao,
    LocalStack,
    Issuer,
    /// The GCP and Azure fakes (`crate::fakes`); its URL is the Google listener's.
    CloudFakes,
}

impl Service {
    const ALL: [Self; 4] = [
        Self::OpenBao,
        Self::LocalStack,
        Self::Issuer,
        Self::CloudFakes,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::OpenBao => "openbao",
            Self::LocalStack => "localstack",
            Self::Issuer => "issuer",
            Self::CloudFakes => "cloud-fakes",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// A string every process of this service has in its command line (guards against
    /// signalling a recycled pid).
    fn cmdline_marker(self) -> &'static str {
        match self {
            Self::OpenBao => "bao",
            Self::LocalStack => "localstack",
            Self::Issuer => "issuer-serve",
            Self::CloudFakes => "fakes-serve",
        }
    }

    /// `Ok(())` when healthy, else why not.
    fn probe(self, http: &Client, url: &str) -> Result<(), String> {
        let get = |path: &str| {
            http.get(format!("{url}{path}"))
                .send()
                .map_err(|e| format!("GET {path}: {}", short_error(&e)))
        };
        match self {
            Self::OpenBao => {
                let response = get("/v1/sys/health")?;
                match response.status().as_u16() {
                    200 => Ok(()),
                    code => Err(format!("GET /v1/sys/health: HTTP {code}")),
                }
            }
            Self::LocalStack => {
                let body: serde_json::Value = get("/_localstack/health")?
                    .json()
                    .map_err(|e| format!("GET /_localstack/health: {e}"))?;
                let waiting: Vec<String> = ["secretsmanager", "sts"]
                    .into_iter()
                    .filter_map(|s| {
                        let state = body["services"][s].as_str().unwrap_or("absent");
                        (!matches!(state, "available" | "running")).then(|| format!("{s}: {state}"))
                    })
                    .collect();
                if waiting.is_empty() {
                    Ok(())
                } else {
                    Err(waiting.join(", "))
                }
            }
            Self::Issuer => {
                let body: serde_json::Value = get("/.well-known/openid-configuration")?
                    .json()
                    .map_err(|e| format!("discovery document: {e}"))?;
                if body["issuer"] == url {
                    Ok(())
                } else {
                    Err(format!("discovery says issuer {}", body["issuer"]))
                }
            }
            Self::CloudFakes => crate::fakes::probe(http, url),
        }
    }
}

fn short_error(err: &reqwest::Error) -> &'static str {
    if err.is_connect() {
        "connection refused"
    } else if err.is_timeout() {
        "timed out"
    } else {
        "request failed"
    }
}

/// One started service, as recorded in `services.pids` (`name pid url log`).
#[derive(Debug, Clone)]
struct Record {
    service: Service,
    pid: u32,
    url: String,
    log: PathBuf,
}

impl Record {
    fn line(&self) -> String {
        format!(
            "{} {} {} {}",
            self.service.name(),
            self.pid,
            self.url,
            self.log.display()
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let mut fields = line.split_whitespace();
        let service = Service::from_name(fields.next()?)?;
        let pid = fields.next()?.parse().ok()?;
        let url = fields.next()?.to_owned();
        let log = PathBuf::from(fields.next()?);
        Some(Self {
            service,
            pid,
            url,
            log,
        })
    }

    /// Live members of its process group whose command line is this service's.
    fn live_members(&self) -> Vec<u32> {
        procs::group_members(&[self.pid])
            .into_iter()
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    String::from_utf8_lossy(&c).contains(self.service.cmdline_marker())
                })
            })
            .collect()
    }
}

fn load_records(paths: &Paths) -> Result<Option<Vec<Record>>> {
    let file = paths.pids_file();
    let text = match fs::read_to_string(&file) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", file.display())),
    };
    let records: Vec<Record> = text.lines().filter_map(Record::parse).collect();
    Ok((!records.is_empty()).then_some(records))
}

fn http_client() -> Result<Client> {
    Client::builder()
        .timeout(Duration::from_secs(3))
        .connect_timeout(Duration::from_secs(1))
        .no_proxy()
        .build()
        .context("cannot build the HTTP client")
}

/// Why each recorded service is not usable (empty when all are alive and healthy).
fn problems(http: &Client, records: &[Record]) -> Vec<String> {
    let mut problems = Vec::new();
    for service in Service::ALL {
        match records.iter().find(|r| r.service == service) {
            None => problems.push(format!("{} not recorded", service.name())),
            Some(r) if r.live_members().is_empty() => {
                problems.push(format!("{} (pid {}) is not running", service.name(), r.pid));
            }
            Some(r) => {
                if let Err(why) = service.probe(http, &r.url) {
                    problems.push(format!("{} unhealthy: {why}", service.name()));
                }
            }
        }
    }
    problems
}

/// What `up` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpOutcome {
    /// Started and seeded a new set.
    Started,
    /// A healthy set was already running; nothing was started.
    AlreadyUp,
}

/// `services up`.
pub fn up(paths: &Paths) -> Result<UpOutcome> {
    let started_at = Instant::now();
    let http = http_client()?;
    if let Some(records) = load_records(paths)? {
        let problems = problems(&http, &records);
        if problems.is_empty() && paths.env_file().is_file() {
            let pids: Vec<String> = records.iter().map(|r| r.pid.to_string()).collect();
            println!(
                "services are already up (pids {}); nothing started",
                pids.join(" ")
            );
            print_env_hint(paths);
            return Ok(UpOutcome::AlreadyUp);
        }
        println!(
            "a previous run is recorded but not usable ({}); stopping it first",
            problems.join("; ")
        );
        stop_records(paths, &records)?;
    }

    install::ensure_tools(paths)?;
    for dir in [
        paths.run.clone(),
        paths.logs(),
        paths.service_home(),
        paths.localstack_state(),
    ] {
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let key = load_or_create_key(&paths.issuer_key())?;

    let ports = procs::free_ports(5)?;
    let mut children: Vec<(Record, Child)> = Vec::new();
    let spawned = spawn_all(paths, &ports, &mut children);
    let records: Vec<Record> = children.iter().map(|(r, _)| r.clone()).collect();
    // Record the pids first, so that `down` finds them even if this process dies now.
    let recorded = write_private(
        &paths.pids_file(),
        &records.iter().map(|r| r.line() + "\n").collect::<String>(),
    );

    let result = spawned
        .and(recorded)
        .and_then(|()| wait_ready(&http, &mut children))
        .and_then(|()| seed_and_write_env(paths, &http, &key, &records));
    if let Err(err) = result {
        eprintln!("services up failed: {err:#}");
        for (record, _) in &children {
            procs::print_tail(&record.log, 25);
        }
        eprintln!("stopping what was started");
        let pgids: Vec<u32> = records.iter().map(|r| r.pid).collect();
        let survivors = procs::stop_groups(&pgids);
        for (_, child) in &mut children {
            let _ = child.wait();
        }
        let _ = fs::remove_file(paths.pids_file());
        if !survivors.is_empty() {
            eprintln!("could not stop pids {survivors:?}");
        }
        return Err(err);
    }

    println!("services up in {:.1}s:", started_at.elapsed().as_secs_f64());
    for r in &records {
        println!(
            "  {:<11} {:<24} pid {:<7} log {}",
            r.service.name(),
            r.url,
            r.pid,
            paths.show(&r.log)
        );
    }
    print_env_hint(paths);
    Ok(UpOutcome::Started)
}

fn print_env_hint(paths: &Paths) {
    let env = paths.env_file();
    println!("env file: {}", env.display());
    println!(
        "  export {}={}",
        auth_oidc::testing::E2E_ENV_VAR,
        env.display()
    );
}

fn load_or_create_key(path: &Path) -> Result<IssuerKey> {
    if path.is_file() {
        if let Ok(key) = IssuerKey::from_pem_file(path) {
            return Ok(key);
        }
        println!(
            "{} is not a usable key; generating a new one",
            path.display()
        );
    }
    println!("generating the issuer's RSA key (once)");
    let key = IssuerKey::generate()?;
    key.write_pem_file(path)?;
    Ok(key)
}

fn spawn_all(paths: &Paths, ports: &[u16], children: &mut Vec<(Record, Child)>) -> Result<()> {
    let home = paths.service_home();
    let logs = paths.logs();

    // OpenBao dev server (in memory; `-dev` would write a token helper file under HOME).
    let bao_addr = format!("127.0.0.1:{}", ports[0]);
    let log = logs.join("openbao.log");
    let listen = format!("-dev-listen-address={bao_addr}");
    let child = procs::spawn_detached(
        &paths.venv_bao().join("bin/bao"),
        &[
            OsStr::new("server"),
            OsStr::new("-dev"),
            OsStr::new("-dev-root-token-id=root"),
            OsStr::new(&listen),
        ],
        [("HOME", home.as_os_str())],
        &log,
    )?;
    children.push((
        Record {
            service: Service::OpenBao,
            pid: child.id(),
            url: format!("http://{bao_addr}"),
            log,
        },
        child,
    ));

    // LocalStack in host mode, every directory it writes under the run dir.
    let ls_addr = format!("127.0.0.1:{}", ports[1]);
    let state = paths.localstack_state();
    let _ = fs::remove_dir_all(&state);
    for sub in ["fs", "config", "volume", "tmp"] {
        fs::create_dir_all(state.join(sub))?;
    }
    let log = logs.join("localstack.log");
    let envs: Vec<(&str, PathBuf)> = vec![
        ("GATEWAY_LISTEN", ls_addr.clone().into()),
        ("SERVICES", "secretsmanager,sts,iam".into()),
        ("HOME", home.clone()),
        ("FILESYSTEM_ROOT", state.join("fs")),
        ("CONFIG_DIR", state.join("config")),
        ("LOCALSTACK_VOLUME_DIR", state.join("volume")),
        ("TMPDIR", state.join("tmp")),
        ("PERSISTENCE", "0".into()),
        ("DISABLE_EVENTS", "1".into()),
        ("SKIP_SSL_CERT_DOWNLOAD", "1".into()),
        ("LOCALSTACK_CLI", "0".into()),
    ];
    let child = procs::spawn_detached(
        &paths.venv_localstack().join("bin/python"),
        &[OsStr::new("-m"), OsStr::new("localstack.runtime.main")],
        envs,
        &log,
    )?;
    children.push((
        Record {
            service: Service::LocalStack,
            pid: child.id(),
            url: format!("http://{ls_addr}"),
            log,
        },
        child,
    ));

    // The OIDC issuer: this binary, detached.
    let port = ports[2].to_string();
    let log = logs.join("issuer.log");
    let exe = issuer_binary(paths)?;
    let key = paths.issuer_key();
    let child = procs::spawn_detached(
        &exe,
        &[
            OsStr::new("issuer-serve"),
            OsStr::new("--port"),
            OsStr::new(&port),
            OsStr::new("--key"),
            key.as_os_str(),
        ],
        [("RUST_BACKTRACE", "1")],
        &log,
    )?;
    children.push((
        Record {
            service: Service::Issuer,
            pid: child.id(),
            url: format!("http://127.0.0.1:{port}"),
            log,
        },
        child,
    ));

    let issuer = format!("http://127.0.0.1:{port}");
    let (child, url, log) = crate::fakes::spawn(paths, &exe, ports[3], ports[4], &issuer)?;
    children.push((
        Record {
            service: Service::CloudFakes,
            pid: child.id(),
            url,
            log,
        },
        child,
    ));
    Ok(())
}

fn wait_ready(http: &Client, children: &mut [(Record, Child)]) -> Result<()> {
    let start = Instant::now();
    let mut next_report = start + WAIT_REPORT;
    let mut ready = vec![false; children.len()];
    loop {
        let mut waiting = Vec::new();
        for ((record, child), ready) in children.iter_mut().zip(ready.iter_mut()) {
            if *ready {
                continue;
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{} exited during start-up ({status})",
                    record.service.name()
                );
            }
            match record.service.probe(http, &record.url) {
                Ok(()) => {
                    *ready = true;
                    println!(
                        "{} ready at {} ({:.1}s)",
                        record.service.name(),
                        record.url,
                        start.elapsed().as_secs_f64()
                    );
                }
                Err(why) => waiting.push(format!("{} ({why})", record.service.name())),
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        if start.elapsed() > READY_TIMEOUT {
            bail!(
                "not ready after {}s: {}",
                READY_TIMEOUT.as_secs(),
                waiting.join(", ")
            );
        }
        if Instant::now() >= next_report {
            println!(
                "waiting for {} ({}s)",
                waiting.join(", "),
                start.elapsed().as_secs()
            );
            next_report += WAIT_REPORT;
        }
        std::thread::sleep(POLL);
    }
}

fn url_of(records: &[Record], service: Service) -> Result<&str> {
    records
        .iter()
        .find(|r| r.service == service)
        .map(|r| r.url.as_str())
        .with_context(|| format!("{} was not started", service.name()))
}

fn seed_and_write_env(
    paths: &Paths,
    http: &Client,
    key: &IssuerKey,
    records: &[Record],
) -> Result<()> {
    let vault = url_of(records, Service::OpenBao)?;
    let aws = url_of(records, Service::LocalStack)?;
    let issuer = url_of(records, Service::Issuer)?;

    let t = Instant::now();
    seed_vault::seed(http, vault, issuer).context("seeding OpenBao")?;
    println!("seeded OpenBao ({:.1}s)", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let shared_arn = seed_localstack(paths, aws).context("seeding LocalStack")?;
    println!("seeded LocalStack ({:.1}s)", t.elapsed().as_secs_f64());

    let fakes = url_of(records, Service::CloudFakes)?;
    let fake_entries = crate::fakes::env_entries(paths, http, fakes).context("cloud fakes")?;

    let pids: Vec<String> = records.iter().map(|r| r.pid.to_string()).collect();
    let mut pairs = vec![
        (keys::VAULT_ADDR, vault.to_owned()),
        (keys::VAULT_ROOT_TOKEN, seed_vault::ROOT_TOKEN.to_owned()),
        (keys::OIDC_ISSUER, issuer.to_owned()),
        (
            keys::OIDC_SIGNING_KEY,
            paths.issuer_key().display().to_string(),
        ),
        (keys::OIDC_KID, key.kid().to_owned()),
        (keys::AWS_ENDPOINT, aws.to_owned()),
        (keys::AWS_ACCOUNT, AWS_ACCOUNT.to_owned()),
        (keys::SHARED_SECRET_ARN, shared_arn),
        (keys::PIDS, pids.join(" ")),
    ];
    pairs.extend(fake_entries);
    let text = E2eEnv::render(&pairs);
    let env_file = paths.env_file();
    write_private(&env_file, &text)?;
    E2eEnv::from_file(&env_file).context("the env file just written does not load")?;
    Ok(())
}

fn seed_localstack(paths: &Paths, endpoint: &str) -> Result<String> {
    let script = paths.root.join("xtask/seed_localstack.py");
    let output = Command::new(paths.venv_localstack().join("bin/python"))
        .arg(&script)
        .args(["--endpoint", endpoint])
        .env("HOME", paths.service_home())
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}): {}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let parsed: serde_json::Value = serde_json::from_str(line)
        .with_context(|| format!("{} printed no JSON result", script.display()))?;
    parsed["shared_secret_arn"]
        .as_str()
        .map(str::to_owned)
        .context("the LocalStack seed printed no shared_secret_arn")
}

/// Writes `text` to `path` with mode 0600: a temporary file, then renamed into place.
fn write_private(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Stops the recorded process groups and removes the state files.
fn stop_records(paths: &Paths, records: &[Record]) -> Result<Vec<(Service, u32)>> {
    let mut stopped = Vec::new();
    let mut pgids = Vec::new();
    for r in records {
        if r.live_members().is_empty() {
            continue;
        }
        pgids.push(r.pid);
        stopped.push((r.service, r.pid));
    }
    let survivors = procs::stop_groups(&pgids);
    for file in [paths.env_file(), paths.pids_file()] {
        match fs::remove_file(&file) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| format!("cannot remove {}", file.display()));
            }
        }
    }
    if !survivors.is_empty() {
        bail!("pids {survivors:?} survived SIGKILL");
    }
    Ok(stopped)
}

/// `services down`.
pub fn down(paths: &Paths) -> Result<()> {
    let records = match load_records(paths)? {
        Some(records) => records,
        None => {
            let _ = fs::remove_file(paths.env_file());
            println!(
                "services are not up (no {})",
                paths.show(&paths.pids_file())
            );
            return Ok(());
        }
    };
    let stopped = stop_records(paths, &records)?;
    if stopped.is_empty() {
        println!("services had already stopped; removed their state files");
    } else {
        let list: Vec<String> = stopped
            .iter()
            .map(|(s, pid)| format!("{} (pid {pid})", s.name()))
            .collect();
        println!("stopped {}", list.join(", "));
    }
    Ok(())
}

/// `services status`.
pub fn status(paths: &Paths) -> Result<()> {
    let Some(records) = load_records(paths)? else {
        println!("services are down");
        return Ok(());
    };
    let http = http_client()?;
    let mut bad = 0;
    for r in &records {
        let members = r.live_members();
        let state = if members.is_empty() {
            bad += 1;
            "not running".to_owned()
        } else {
            match r.service.probe(&http, &r.url) {
                Ok(()) => "healthy".to_owned(),
                Err(why) => {
                    bad += 1;
                    format!("unhealthy: {why}")
                }
            }
        };
        println!(
            "{:<11} {:<24} pid {:<7} {state}",
            r.service.name(),
            r.url,
            r.pid
        );
    }
    let env = paths.env_file();
    if env.is_file() {
        println!("env file: {}", env.display());
    } else {
        bad += 1;
        println!("env file: missing (the last `up` did not finish)");
    }
    if bad > 0 {
        bail!("{bad} problem(s); `cargo xtask services down` then `up` starts afresh");
    }
    Ok(())
}

/// A copy of this binary for the detached issuer. `cargo test --workspace` may rebuild
/// `target/debug/xtask` while this process runs (then `current_exe()` names a deleted file), so
/// the running image is copied from `/proc/self/exe`, which stays readable, to a stable path.
fn issuer_binary(paths: &Paths) -> Result<PathBuf> {
    let target = paths.run.join("bin/xtask-issuer");
    fs::create_dir_all(target.parent().unwrap_or(&paths.run))
        .with_context(|| format!("cannot create {}", target.display()))?;
    let source = PathBuf::from("/proc/self/exe");
    let source = if source.exists() {
        source
    } else {
        std::env::current_exe().context("cannot find the xtask binary")?
    };
    let staged = target.with_extension("new");
    fs::copy(&source, &staged)
        .with_context(|| format!("cannot copy the xtask binary to {}", staged.display()))?;
    fs::rename(&staged, &target)
        .with_context(|| format!("cannot move the xtask binary to {}", target.display()))?;
    Ok(target)
}
