//! `exec` output masking: throughput of a child writing 1 GiB under `ci-secrets exec` (100
//! secrets masked), `exec --no-mask` and plain `cat`, in one run, and the latency a short
//! line gains. `--quick` writes a few MiB and checks bytes and mask counts only.

use super::contender::{Ctx, write_private};
use super::workload::Workload;
use anyhow::{Context as _, Result, bail};
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The block the child writes repeatedly: 64 MiB (1 MiB with `--quick`).
const BLOCK_MIB: usize = 64;
/// Times the child writes the block: 16 × 64 MiB = 1 GiB (4 with `--quick`).
const REPEATS: usize = 16;
/// A secret planted once in this many bytes of the block, on average.
const PLANT_EVERY: usize = 64 * 1024;
/// Timed runs per contender.
const RUNS: usize = 3;
/// Short lines timed per contender (after [`WARM_LINES`] untimed ones).
const LINES: usize = 400;
const WARM_LINES: usize = 20;
/// The markers around the section in docs/benchmarks.md.
pub const BEGIN: &str = "<!-- masking: begin -->";
pub const END: &str = "<!-- masking: end -->";

/// How the child's output reaches the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `ci-secrets exec -- child`.
    Exec,
    /// `ci-secrets exec --no-mask -- child`.
    NoMask,
    /// `sh -c 'child | cat'` (throughput) or the child alone (latency).
    Cat,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Exec, Mode::NoMask, Mode::Cat];

    pub fn label(self) -> &'static str {
        match self {
            Mode::Exec => "ci-secrets exec (masking)",
            Mode::NoMask => "ci-secrets exec --no-mask",
            Mode::Cat => "plain cat",
        }
    }
}

/// What the masking bench measured.
#[derive(Debug, Clone)]
pub struct MaskingResults {
    pub workload: String,
    pub secrets: usize,
    /// Bytes the child wrote per run.
    pub bytes: u64,
    /// Secret values in them.
    pub planted: usize,
    /// Per mode, bytes per second of each timed run (first byte to end of stream).
    pub throughput: Vec<(Mode, Vec<f64>)>,
    /// Per mode, the round trips of a short line through `cat` under it.
    pub latency: Vec<(Mode, Vec<Duration>)>,
}

/// The block and what masking it must give.
struct Block {
    path: PathBuf,
    len: usize,
    masked_len: usize,
    planted: usize,
}

/// Log-like lines with the workload's values planted every [`PLANT_EVERY`] bytes or so, and
/// near misses (a value's first half) in between.
fn write_block(dir: &Path, values: &[String], mib: usize) -> Result<Block> {
    let target = mib * 1024 * 1024;
    let mut text = Vec::with_capacity(target + 4096);
    let (mut planted, mut saved, mut line) = (0usize, 0usize, 0usize);
    let mut next_plant = PLANT_EVERY / 2;
    while text.len() < target {
        line += 1;
        if text.len() >= next_plant {
            let value = &values[planted % values.len()];
            writeln!(text, "{line:08} INFO using credential {value} for upload")?;
            planted += 1;
            saved += value.len() - secrets_core::masker::MASK.len();
            next_plant += PLANT_EVERY;
        } else if line % 97 == 0 {
            let value = &values[line % values.len()];
            let half = &value[..value.len() / 2];
            writeln!(text, "{line:08} DEBUG near miss {half}... not a secret")?;
        } else {
            writeln!(
                text,
                "{line:08} INFO step {} downloading chunk {} of artifact build-{}.tar.gz [{:>3}%]",
                line % 13,
                line % 1000,
                line % 77,
                line % 101
            )?;
        }
    }
    let path = dir.join(format!("masking-block-{mib}m.log"));
    fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    Ok(Block {
        path,
        len: text.len(),
        masked_len: text.len() - saved,
        planted,
    })
}

/// Runs the bench with `cli` on `workload` (its payload JSON in `payload`).
pub fn run(
    ctx: &Ctx,
    cli: &Path,
    workload: &Workload,
    payload: &str,
    quick: bool,
) -> Result<MaskingResults> {
    let payload_file = ctx.work.join("masking-payload.json");
    write_private(&payload_file, payload)?;
    let values: Vec<String> = workload.expected_values().into_values().collect();
    let (mib, repeats, runs) = if quick {
        (1, 4, 1)
    } else {
        (BLOCK_MIB, REPEATS, RUNS)
    };
    let block = write_block(&ctx.work, &values, mib)?;
    let files: Vec<&Path> = std::iter::repeat_n(block.path.as_path(), repeats).collect();
    let bytes = (block.len * repeats) as u64;
    println!(
        "{}: {} secrets, the child writes {:.0} MiB with {} values in it",
        workload.name,
        workload.secrets(),
        bytes as f64 / (1024.0 * 1024.0),
        block.planted * repeats
    );

    let mut throughput: Vec<(Mode, Vec<f64>)> =
        Mode::ALL.iter().map(|&m| (m, Vec::new())).collect();
    for run in 0..runs {
        for k in 0..Mode::ALL.len() {
            let (mode, samples) = &mut throughput[(run + k) % Mode::ALL.len()];
            let mut command = match mode {
                Mode::Exec | Mode::NoMask => {
                    let mut c = exec(ctx, cli, &payload_file, *mode == Mode::NoMask);
                    c.arg("cat").args(&files);
                    c
                }
                Mode::Cat => {
                    let mut c = Command::new("sh");
                    c.args(["-c", r#"cat "$@" | cat"#, "sh"]).args(&files);
                    c
                }
            };
            let (got, rate, masks) = drain(&mut command, quick)
                .with_context(|| format!("{} writing {bytes} bytes", mode.label()))?;
            let want = if *mode == Mode::Exec {
                (block.masked_len * repeats) as u64
            } else {
                bytes
            };
            if got != want {
                bail!(
                    "{}: {got} bytes came out, expected {want} (a mask missed or misplaced)",
                    mode.label()
                );
            }
            if let Some(masks) = masks {
                let want = if *mode == Mode::Exec {
                    block.planted * repeats
                } else {
                    0
                };
                if masks != want {
                    bail!(
                        "{}: {masks} [MASKED] in the output, expected {want}",
                        mode.label()
                    );
                }
            }
            samples.push(rate);
        }
    }

    let lines = if quick { 5 } else { LINES };
    let mut latency = Vec::new();
    for mode in Mode::ALL {
        let command = match mode {
            Mode::Exec | Mode::NoMask => {
                let mut c = exec(ctx, cli, &payload_file, mode == Mode::NoMask);
                c.arg("cat");
                c
            }
            Mode::Cat => Command::new("cat"),
        };
        let times = round_trips(command, lines)
            .with_context(|| format!("{}: short lines", mode.label()))?;
        latency.push((mode, times));
    }

    let results = MaskingResults {
        workload: workload.name.clone(),
        secrets: workload.secrets(),
        bytes,
        planted: block.planted * repeats,
        throughput,
        latency,
    };
    if !quick {
        print!("{}", summary(&results));
    }
    let _ = fs::remove_file(&block.path);
    Ok(results)
}

fn exec(ctx: &Ctx, cli: &Path, payload: &Path, no_mask: bool) -> Command {
    let mut command = Command::new(cli);
    command
        .args(["--quiet", "exec", "--job-payload"])
        .arg(payload);
    if no_mask {
        command.arg("--no-mask");
    }
    command.arg("--");
    ctx.tool_env(&mut command);
    command
}

/// Runs `command`, reading its stdout to the end: the bytes, bytes per second from the first
/// byte to the end, and (when `count` is set) how many `[MASKED]` came out.
fn drain(command: &mut Command, count: bool) -> Result<(u64, f64, Option<usize>)> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start it")?;
    let mut out = child.stdout.take().context("no stdout")?;
    let mut buf = vec![0u8; 1 << 20];
    let mut all = Vec::new();
    let mut total = 0u64;
    let mut first = None;
    loop {
        let n = out.read(&mut buf)?;
        if n == 0 {
            break;
        }
        first.get_or_insert_with(Instant::now);
        total += n as u64;
        if count {
            all.extend_from_slice(&buf[..n]);
        }
    }
    let elapsed = first.map(|f| f.elapsed()).unwrap_or_default();
    let status = child.wait()?;
    if !status.success() {
        bail!("it failed ({status})");
    }
    let masks = count.then(|| {
        all.windows(secrets_core::masker::MASK.len())
            .filter(|w| *w == secrets_core::masker::MASK)
            .count()
    });
    Ok((total, total as f64 / elapsed.as_secs_f64().max(1e-9), masks))
}

/// Writes `lines` short lines to `command` (a `cat`), one at a time, timing each round trip.
fn round_trips(mut command: Command, lines: usize) -> Result<Vec<Duration>> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start it")?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let mut stdout = child.stdout.take().context("no stdout")?;
    let mut times = Vec::with_capacity(lines);
    let mut buf = [0u8; 256];
    for i in 0..WARM_LINES + lines {
        let line = format!("short line {i:06}\n");
        let start = Instant::now();
        stdin.write_all(line.as_bytes())?;
        let mut got = 0;
        while got < line.len() {
            let n = stdout.read(&mut buf[got..])?;
            if n == 0 {
                bail!("the output ended early");
            }
            got += n;
        }
        let rtt = start.elapsed();
        if &buf[..got] != line.as_bytes() {
            bail!("the line came back changed");
        }
        if i >= WARM_LINES {
            times.push(rtt);
        }
    }
    drop(stdin);
    let status = child.wait()?;
    if !status.success() {
        bail!("it failed ({status})");
    }
    Ok(times)
}

fn median_f(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut s = samples.to_vec();
    s.sort();
    let i = ((s.len() as f64 - 1.0) * p).round() as usize;
    s[i.min(s.len() - 1)]
}

fn rate_of(r: &MaskingResults, mode: Mode) -> f64 {
    r.throughput
        .iter()
        .find(|(m, _)| *m == mode)
        .map_or(0.0, |(_, s)| median_f(s))
}

fn latency_of(r: &MaskingResults, mode: Mode) -> (Duration, Duration) {
    r.latency
        .iter()
        .find(|(m, _)| *m == mode)
        .map_or((Duration::ZERO, Duration::ZERO), |(_, s)| {
            (percentile(s, 0.5), percentile(s, 0.99))
        })
}

fn summary(r: &MaskingResults) -> String {
    let mut s = String::new();
    for mode in Mode::ALL {
        let (p50, p99) = latency_of(r, mode);
        let _ = writeln!(
            s,
            "  {:<28} {:>6.2} GB/s   short line p50 {:>7.1} µs  p99 {:>7.1} µs",
            mode.label(),
            rate_of(r, mode) / 1e9,
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
    }
    let _ = writeln!(
        s,
        "  masking / --no-mask {:.2}, masking / cat {:.2}",
        rate_of(r, Mode::Exec) / rate_of(r, Mode::NoMask),
        rate_of(r, Mode::Exec) / rate_of(r, Mode::Cat)
    );
    s
}

/// The section of docs/benchmarks.md, between [`BEGIN`] and [`END`].
pub fn markdown(r: &MaskingResults) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(s, "## `exec` output masking\n");
    let _ = writeln!(
        s,
        "Measured by `cargo xtask bench` (alone: `cargo xtask bench --masking`), release build. \
         The child, `cat`, writes {:.0} MiB of log-like lines ({} of them holding one of the \
         job's values, and near misses: the first half of a value) while {} masks the {} \
         secrets of {}; the bench reads the output through a pipe and checks its length (every \
         value replaced by `[MASKED]`). Throughput counts from the first byte to the end of the \
         stream, so resolving the secrets is not in it; median of {} runs, the contenders \
         alternating. The short line is `short line NNNNNN\\n` written to `cat`'s stdin and \
         read back from its stdout, {} times.\n",
        r.bytes as f64 / (1024.0 * 1024.0),
        r.planted,
        Mode::Exec.label(),
        r.secrets,
        r.workload,
        r.throughput.first().map_or(0, |(_, s)| s.len()),
        r.latency.first().map_or(0, |(_, s)| s.len()),
    );
    let _ = writeln!(
        s,
        "| contender | throughput | short line p50 | short line p99 |\n|---|---|---|---|"
    );
    for mode in Mode::ALL {
        let (p50, p99) = latency_of(r, mode);
        let _ = writeln!(
            s,
            "| {} | {:.2} GB/s | {:.0} µs | {:.0} µs |",
            mode.label(),
            rate_of(r, mode) / 1e9,
            p50.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
    }
    let (exec50, _) = latency_of(r, Mode::Exec);
    let (raw50, _) = latency_of(r, Mode::NoMask);
    let (cat50, _) = latency_of(r, Mode::Cat);
    let exec_rate = rate_of(r, Mode::Exec);
    let vs_raw = exec_rate / rate_of(r, Mode::NoMask);
    let verdict = |met: bool| if met { "met" } else { "missed" };
    let why = if vs_raw > 1.0 {
        " A ratio above 1 says the masking stage is not the bottleneck: a pipeline of two pipes \
         (child, `ci-secrets`, reader) moves bytes faster here than the one pipe of \
         `--no-mask`, as plain `cat`'s two pipes (`cat | cat`) do too."
    } else {
        ""
    };
    let micros = |a: Duration, b: Duration| (a.as_secs_f64() - b.as_secs_f64()) * 1e6;
    let _ = writeln!(
        s,
        "\nMasking runs at {vs_raw:.2}× the throughput of `--no-mask` and {:.2}× that of plain \
         `cat`. Targets: at least 1 GB/s ({}), at most 10 % slower than `--no-mask` ({}).{why} A \
         short line takes {:+.0} µs (median) against `--no-mask` and {:+.0} µs against plain \
         `cat`.\n",
        exec_rate / rate_of(r, Mode::Cat),
        verdict(exec_rate >= 1e9),
        verdict(vs_raw >= 0.9),
        micros(exec50, raw50),
        micros(exec50, cat50),
    );
    let _ = writeln!(s, "{END}");
    s
}

/// Puts the section into docs/benchmarks.md: in place of the previous one, or at the end.
pub fn write_section(root: &Path, r: &MaskingResults) -> Result<()> {
    super::docs_section::write(root, BEGIN, END, &markdown(r), &[])
}
