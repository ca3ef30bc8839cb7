//! W6-W8 as deployed (issue 19): every server behind a `loopback-proxy` that terminates TLS
//! with the bench's test CA (`transport.rs`), so each new connection pays its TCP round trip
//! and its TLS 1.3 handshake round trip, and HTTP/2 where the service offers it.
//!
//! The fronts, one per host a deployed client connects to (a client pools connections per
//! host, so two services on one front would share connections they never share in
//! production):
//!
//! - GitLab Secrets Manager (OpenBao, a Go server): `h2` and `http/1.1`, before the xtask's
//!   OpenBao;
//! - Google STS and Secret Manager, two fronts (`sts.googleapis.com` and
//!   `secretmanager.googleapis.com`), `h2` and `http/1.1` (Google's front ends speak both),
//!   before the Google fake;
//! - Entra ID and Key Vault on one front, told apart by host name (the client resolves
//!   `login.microsoftonline.com` and the vault's host to it and still pools per host, so
//!   they get a connection each), `h2` and `http/1.1` (Key Vault speaks HTTP/2:
//!   Azure/azure-sdk-for-cpp#2982; Entra is taken to offer the same), before a plain-HTTP
//!   listener this module serves the Azure fake's router on: the fake's own listener is TLS,
//!   which the proxy cannot see into.
//!
//! The proxies count connections, TLS handshakes, requests and HTTP/2 streams; the checks
//! here compare them with what each algorithm must cost: see [`expected_connections`].

use super::DELAYS_MS;
use super::docs_section::{self, Anchor};
use super::providers::{
    Cell, Cloud, GSM_PATHS, ProviderResults, SECRETS, Sample, Who, Workload, counts_text, median,
    ms, sorted_walls, utc_now,
};
use super::transport::Tls;
use anyhow::{Context as _, Result};
use cloud_fakes::{Fixture, RunningFakes};
use loopback_proxy::{Protocol, Proxy};
use secrets_resolver::ResolveOptions;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

/// The section of docs/benchmarks.md these rows write.
pub const BEGIN: &str = "<!-- providers-tls: begin -->";
/// Its end.
pub const END: &str = "<!-- providers-tls: end -->";

/// What every front offers by ALPN, in order of preference.
const H2_AND_H1: &[&[u8]] = &[b"h2", b"http/1.1"];

/// The TLS fronts of W6-W8.
#[derive(Debug)]
pub struct Fronts {
    pub gsm: Proxy,
    pub gcp_sts: Proxy,
    pub gcp_sm: Proxy,
    pub azure: Proxy,
}

impl Fronts {
    /// Serves the Azure fake's router over plain HTTP on `runtime` (with `fakes`' counters,
    /// so the fake's counts by kind still hold) and starts the four fronts.
    pub fn start(
        tls: &Tls,
        runtime: &tokio::runtime::Runtime,
        fakes: &RunningFakes,
        fixture: &Fixture,
        vault: SocketAddr,
    ) -> Result<Self> {
        let state =
            cloud_fakes::azure::AzureState::new(fixture.azure.clone(), fakes.counters().clone());
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .context("binding the plain Azure listener")?;
        let azure_plain = listener.local_addr()?;
        runtime.spawn(async move {
            let _ = axum::serve(listener, cloud_fakes::azure::router(state)).await;
        });
        Ok(Self {
            gsm: tls.front(vault, H2_AND_H1)?,
            gcp_sts: tls.front(fakes.gcp_addr(), H2_AND_H1)?,
            gcp_sm: tls.front(fakes.gcp_addr(), H2_AND_H1)?,
            azure: tls.front(azure_plain, H2_AND_H1)?,
        })
    }
}

/// The connections (each with its TLS handshake) one run must open over TLS, and whether
/// every one must carry HTTP/2.
///
/// - Ours, the library: per host, one connection when a single request opens it (STS's
///   exchange, Entra's token) and the wave after it shares it as HTTP/2 streams; a wave
///   that opens a host (W6's reads, W7's accesses, W8's gets) opens one connection per
///   read in flight, up to `max_concurrency` (8): the HTTP client learns that a server
///   speaks HTTP/2 only from ALPN, at the end of the first handshake, so each request that
///   started meanwhile has begun its own (hyper's pool then drops the surplus; the first
///   answer over HTTP/2 widens the bound to `provider_http::MAX_STREAMS`). The physical
///   limit is one connection per host; the surplus costs handshakes, not round trips. W6 8,
///   W7 1 + 8, W8 1 + 8, all HTTP/2, as bounds: when a handshake completes before the next
///   request of the wave starts (a fast link, as at d = 0), that request shares it, so a run
///   may open fewer (never more).
/// - The runner's algorithm reproduced: a new connection wherever the runner makes a new
///   client. W6: the OpenBao Go client per secret brings its own transport
///   (`api.DefaultConfig`), one connection per secret. W7: per secret a new STS service
///   (`sts.NewService`, a new transport) and a new Secret Manager client (`sm.NewClient`, a
///   new gRPC connection), two connections per secret. W8: the credential and the client are
///   new per secret but use azcore's process-wide default HTTP client, so the connections
///   are reused: one to Entra and one to Key Vault in all (`azure_runner.rs`).
pub fn expected_connections(w: &Workload, who: Who) -> (u64, bool) {
    let n = SECRETS as u64;
    let bound = ResolveOptions::default().max_concurrency as u64;
    let wave = |reads: u64| reads.min(bound);
    match (w.cloud, who) {
        (Cloud::GitlabSm, Who::Library) => (wave(GSM_PATHS as u64), true),
        (Cloud::Gcp | Cloud::Azure, Who::Library) => (1 + wave(n), true),
        (Cloud::GitlabSm, Who::Reproduction) => (n, false),
        (Cloud::Gcp, Who::Reproduction) => (2 * n, false),
        (Cloud::Azure, Who::Reproduction) => (2, false),
    }
}

/// Adds to `problems` where one TLS run's connections differ from the expected ones.
pub fn check_connections(w: &Workload, who: Who, sample: &Sample, problems: &mut Vec<String>) {
    let (expected, h2) = expected_connections(w, who);
    let stats = &sample.proxy;
    // Ours (HTTP/2) at most the bound, at least one; the reproduction exactly.
    let as_expected = if h2 {
        (1..=expected).contains(&stats.connections)
    } else {
        stats.connections == expected
    };
    if !as_expected {
        problems.push(format!(
            "the proxies saw {} connections, expected {}{expected}",
            stats.connections,
            if h2 { "at most " } else { "" }
        ));
    }
    if stats.tls_handshakes != stats.connections {
        problems.push(format!(
            "the proxies saw {} connections but {} TLS handshakes",
            stats.connections, stats.tls_handshakes
        ));
    }
    if h2 {
        let h1 = sample
            .connections
            .iter()
            .filter(|c| c.protocol != Protocol::Http2)
            .count();
        if h1 > 0 {
            problems.push(format!("{h1} connection(s) did not negotiate HTTP/2"));
        }
        if stats.streams != stats.requests {
            problems.push(format!(
                "{} of {} requests came as HTTP/2 streams",
                stats.streams, stats.requests
            ));
        }
    }
}

/// Round trips of `wall` at one-way delay `delay_ms` (`—` at 0).
fn round_trips(wall_ms: f64, delay_ms: u64) -> String {
    if delay_ms == 0 {
        "—".to_owned()
    } else {
        format!("{:.1}", wall_ms / (2.0 * delay_ms as f64))
    }
}

/// `requests / connections / TLS handshakes` of a cell's first run.
fn rch(sample: &Sample) -> String {
    format!(
        "{} / {} / {}",
        sample.server_requests, sample.proxy.connections, sample.proxy.tls_handshakes
    )
}

/// The section of docs/benchmarks.md, between [`BEGIN`] and [`END`].
pub fn markdown(r: &ProviderResults, command: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(
        s,
        "## GitLab Secrets Manager, GCP Secret Manager, Azure Key Vault as deployed: TLS\n\n\
         Regenerated by `{command}` (part of the full `cargo xtask bench`), from the release \
         build, on the machine above; this run ({} UTC) took {:.0} s, {} timed runs per cell. \
         The workloads, the contenders and the request counts are those of the plain-HTTP \
         section above.\n",
        utc_now(),
        r.total.as_secs_f64(),
        r.runs
    );
    let _ = writeln!(
        s,
        "- Every server sits behind a `loopback-proxy` that terminates TLS with a certificate \
         from the bench's test CA (as in [As deployed: TLS](#as-deployed-tls)): a new \
         connection pays its TCP round trip and its TLS 1.3 handshake round trip. One front \
         per host a deployed client connects to, each offering ALPN `h2` and `http/1.1`: \
         OpenBao (W6); Google STS and Secret Manager, two fronts (W7: two hosts in \
         production, so no shared connection); Entra ID and Key Vault on one front told \
         apart by host name (W8: the client still opens a connection per host). The Azure \
         fake's router is served over plain HTTP behind its front, so the proxy counts its \
         requests and streams too.\n\
         - Trust: the bench's CA through the GitLab SM and Azure providers' CA bundle \
         settings, and through `SSL_CERT_FILE` for the Google client (the system trust \
         store; the bench re-runs itself with it set).\n\
         - The runner's algorithm reproduced pays a new connection and handshake wherever \
         the runner makes a new client: W6 one per secret (the OpenBao Go client brings its \
         own transport); W7 two per secret (a new STS service and a new Secret Manager \
         gRPC client, each with its own connection; reproduced over REST, one request each); \
         W8 none per secret: the runner makes a new credential and client per secret (so a \
         challenge, a discovery and a token request each time) but both use azcore's \
         process-wide default HTTP client, so one connection to Entra and one to Key Vault \
         serve every secret (the reproduction shares one client for the run, cold at its \
         start).\n\
         - Ours opens a host with a wave of requests in W6 (the reads), W7 and W8 (the \
         accesses and gets after the one token request): the HTTP client learns that the \
         server speaks HTTP/2 only from ALPN at the end of the first handshake, so each read \
         in flight until then (up to `max_concurrency`, 8) opens its own connection and \
         hyper's pool drops the surplus. That costs handshakes, not round trips; the limit is \
         one connection per host. The first answer over HTTP/2 widens the bound to 100 \
         streams (`provider-http`), so the remaining reads go out together: two waves.\n\
         - Where ours spends its round trips at d = 25 ms, and the limit: W6 TCP, TLS, 8 \
         reads, the other 2: 4 (limit 3, every read in the first wave); W7 STS's TCP, TLS \
         and exchange, then Secret Manager's TCP and TLS and two waves (8 + 12): 7 (limit 4: \
         Secret Manager's connection opened while STS answers, and one wave); W8 the same \
         with Entra's token and Key Vault's gets: 7 (limit 4). The runner: W6 3 per secret \
         (TCP, TLS, read): 60; W7 6 per secret (two connections, an exchange and an \
         access): 120; W8 4 per secret (challenge, discovery, token, get) and 4 once (two \
         connections): 84. The rest is CPU time.\n\
         - Checked on every run, with the request counts: connections (ours at most W6 8, \
         W7 1 + 8, W8 1 + 8, fewer when a handshake completes before the wave's next request \
         starts, each HTTP/2 with every request a stream; the runner exactly W6 20, W7 40, W8 2), \
         and TLS handshakes = connections. `cargo xtask bench --quick` checks the same counts once at \
         d = 0.\n\
         - Round trips: wall time / 2d.\n"
    );
    let d = *DELAYS_MS.last().unwrap_or(&25);
    let _ = writeln!(
        s,
        "### At d = {d} ms\n\n\
         Medians. Requests / connections / TLS handshakes from the proxies (one run).\n\n\
         | workload | ours ms | runner ms | runner / ours | ours round trips | runner round trips | ours requests / connections / handshakes | runner requests / connections / handshakes |\n\
         |---|---:|---:|---:|---:|---:|---|---|"
    );
    let find = |w: &str, who: Who, delay: u64| {
        r.cells
            .iter()
            .find(|c| c.workload.name == w && c.who == who && c.delay_ms == delay)
            .filter(|c| !c.samples.is_empty())
    };
    for w in Workload::all() {
        let (Some(ours), Some(runner)) = (
            find(w.name, Who::Library, d),
            find(w.name, Who::Reproduction, d),
        ) else {
            continue;
        };
        let (a, b) = (ms(median(&ours.samples)), ms(median(&runner.samples)));
        let _ = writeln!(
            s,
            "| {} | {a:.1} | {b:.1} | {:.1}× | {} | {} | {} | {} |",
            w.name,
            b / a,
            round_trips(a, d),
            round_trips(b, d),
            rch(&ours.samples[0]),
            rch(&runner.samples[0]),
        );
    }
    let mismatches = r.mismatches();
    let _ = writeln!(
        s,
        "\nCount checks over TLS: {}.\n",
        docs_section::count_checks(&mismatches)
    );
    let _ = writeln!(
        s,
        "### Every cell over TLS\n\n\
         | workload | contender | d (ms) | runs | wall ms: median (min-max) | round trips | requests | connections | TLS handshakes | HTTP/2 streams | in flight | counts by kind |\n\
         |---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"
    );
    for w in Workload::all() {
        for who in Who::ALL {
            for delay in DELAYS_MS {
                let Some(cell) = find(w.name, who, delay) else {
                    continue;
                };
                let _ = writeln!(s, "{}", row(cell));
            }
        }
    }
    s.push('\n');
    let _ = writeln!(s, "{END}");
    s
}

fn row(cell: &Cell) -> String {
    let walls = sorted_walls(&cell.samples);
    let first = &cell.samples[0];
    let med = ms(walls[walls.len() / 2]);
    let flag = if cell.mismatches.is_empty() {
        String::new()
    } else {
        format!(" **MISMATCH: {}**", cell.mismatches.join("; "))
    };
    format!(
        "| {} | {} | {} | {} | {med:.1} ({:.1}-{:.1}) | {} | {} | {} | {} | {} | {} | {}{flag} |",
        cell.workload.name,
        cell.who.label(),
        cell.delay_ms,
        walls.len(),
        ms(walls[0]),
        ms(walls[walls.len() - 1]),
        round_trips(med, cell.delay_ms),
        first.server_requests,
        first.proxy.connections,
        first.proxy.tls_handshakes,
        first.proxy.streams,
        first.proxy.max_in_flight,
        counts_text(&first.reported),
    )
}

/// Writes (or replaces) the section in `docs/benchmarks.md`: after the plain-HTTP providers
/// section, else before the micro-benchmarks, else at the end.
pub fn write_section(root: &Path, r: &ProviderResults, command: &str) -> Result<()> {
    let anchors = [
        Anchor::After(super::providers::END),
        Anchor::Before(super::providers::MICRO),
    ];
    docs_section::write(root, BEGIN, END, &markdown(r, command), &anchors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_connections_follow_the_runner_s_clients() {
        let [w6, w7, w8] = Workload::all();
        assert_eq!(expected_connections(&w6, Who::Library), (8, true));
        assert_eq!(expected_connections(&w6, Who::Reproduction), (20, false));
        assert_eq!(expected_connections(&w7, Who::Library), (9, true));
        assert_eq!(expected_connections(&w7, Who::Reproduction), (40, false));
        assert_eq!(expected_connections(&w8, Who::Library), (9, true));
        assert_eq!(expected_connections(&w8, Who::Reproduction), (2, false));
    }

    #[test]
    fn the_section_goes_after_the_plain_providers_section_and_replaces_itself() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("docs")).unwrap();
        let path = dir.path().join("docs/benchmarks.md");
        let plain = format!(
            "# Benchmarks\n\n{}\nplain\n{}\n\n## Micro-benchmarks\n\ny\n",
            super::super::providers::BEGIN,
            super::super::providers::END
        );
        std::fs::write(&path, plain).unwrap();
        let r = ProviderResults::default();
        write_section(dir.path(), &r, "cmd").unwrap();
        write_section(dir.path(), &r, "cmd").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches(BEGIN).count(), 1, "{text}");
        assert_eq!(text.matches(END).count(), 1, "{text}");
        let plain_end = text.find(super::super::providers::END).unwrap();
        assert!(plain_end < text.find(BEGIN).unwrap(), "{text}");
        assert!(text.find(END).unwrap() < text.find("## Micro-benchmarks").unwrap());
        // The plain section rewrites itself without dropping this one.
        super::super::providers::write_section(dir.path(), &r, "cmd").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches(BEGIN).count(), 1, "{text}");
        assert_eq!(
            text.matches(super::super::providers::BEGIN).count(),
            1,
            "{text}"
        );
        assert_eq!(text.matches(END).count(), 1, "{text}");
    }
}
