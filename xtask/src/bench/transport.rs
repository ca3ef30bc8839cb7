//! How the bench's clients reach the servers: plain HTTP on loopback (the first tables, kept
//! for comparison) or TLS as deployed.
//!
//! TLS is terminated in `loopback-proxy` (not passed through to the servers' own TLS
//! listeners) because the proxy must see the requests to count them, their streams and their
//! timing, and because LocalStack and the cloud fakes serve plain HTTP here; the client's
//! bytes still cross the delayed link before the TLS server, so every new connection pays
//! its TCP round trip and its TLS 1.3 handshake round trip. The certificate is issued for
//! `127.0.0.1` (and Azure's host names, for W8) by a test CA the bench creates on each run (`cloud_fakes::tls::Pki`), written
//! to `target/xtask/bench/tls/ca.pem`. What each front offers by ALPN follows the service it
//! stands for: Vault (OpenBao, a Go server) offers `h2` and `http/1.1`, as Go's TLS listener
//! does; AWS's query and JSON endpoints (STS, Secrets Manager) are HTTP/1.1 only.
//!
//! How each client is told to trust the CA, with the settings it honours:
//!
//! - our Vault provider and `bao`: `VAULT_CACERT` (and `BAO_CACERT`);
//! - our AWS provider (the AWS SDK for Rust's default HTTPS client): `SSL_CERT_FILE`, read
//!   once per process by `rustls-native-certs` when the SDK builds its first client. The SDK
//!   ignores `AWS_CA_BUNDLE` (awslabs/aws-sdk-rust#1362), so the bench process re-runs itself
//!   with `SSL_CERT_FILE` set before it creates any client ([`reexec_trusting_ca`]), and the
//!   CA file is written at that path before the first AWS client is built;
//! - the `aws` CLI (botocore): `AWS_CA_BUNDLE`.

use crate::paths::Paths;
use anyhow::{Context as _, Result, bail};
use cloud_fakes::tls::Pki;
use loopback_proxy::{Proxy, ProxyConfig};
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The variable the AWS SDK's trust store (`rustls-native-certs`) reads.
const SSL_CERT_FILE: &str = "SSL_CERT_FILE";

/// Plain HTTP or TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    /// Plain HTTP/1.1 on loopback, through the delaying proxies.
    Plain,
    /// TLS terminated by the delaying proxies, HTTP/2 where the service offers it.
    Tls,
}

impl Transport {
    pub fn label(self) -> &'static str {
        match self {
            Self::Plain => "plain HTTP",
            Self::Tls => "TLS",
        }
    }
}

/// Which transports a run measures (`cargo xtask bench --transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Selection {
    /// Plain HTTP and TLS.
    #[default]
    Both,
    /// Plain HTTP only (the first tables).
    Plain,
    /// TLS only: updates only the "as deployed" section of docs/benchmarks.md.
    Tls,
}

impl Selection {
    pub fn transports(self) -> Vec<Transport> {
        match self {
            Self::Both => vec![Transport::Plain, Transport::Tls],
            Self::Plain => vec![Transport::Plain],
            Self::Tls => vec![Transport::Tls],
        }
    }

    pub fn has_tls(self) -> bool {
        self != Self::Plain
    }

    pub fn arg(self) -> &'static str {
        match self {
            Self::Both => "both",
            Self::Plain => "plain",
            Self::Tls => "tls",
        }
    }
}

/// Where the bench's CA certificate is written (stable, so it can be named before the run
/// that writes it).
pub fn ca_path(paths: &Paths) -> PathBuf {
    paths.xtask.join("bench/tls/ca.pem")
}

/// Whether this process's AWS SDK trust store will read the bench's CA.
pub fn trusts_bench_ca(paths: &Paths) -> bool {
    std::env::var_os(SSL_CERT_FILE).is_some_and(|v| Path::new(&v) == ca_path(paths))
}

/// Runs this xtask again as `xtask <args>` with `SSL_CERT_FILE` at the bench's CA (see
/// the module docs), and waits for it.
pub fn reexec_trusting_ca(paths: &Paths, args: &[&str]) -> Result<()> {
    println!(
        "==> xtask {} with {SSL_CERT_FILE}={} (the AWS SDK reads it once per process)",
        args.join(" "),
        paths.show(&ca_path(paths))
    );
    // The running binary, unless a build since it started replaced it (`cargo xtask test`
    // builds the workspace with other features, which relinks target/debug/xtask; Linux then
    // names the running one "... (deleted)"): then `cargo xtask`, which builds it again.
    let exe = std::env::current_exe().context("cannot find the running xtask")?;
    let mut command = if exe.is_file() {
        Command::new(&exe)
    } else {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut c = Command::new(cargo);
        c.current_dir(&paths.root).arg("xtask");
        c
    };
    let status = command
        .args(args)
        .env(SSL_CERT_FILE, ca_path(paths))
        .status()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    if !status.success() {
        bail!("the bench failed ({status})");
    }
    Ok(())
}

/// The run's test PKI: a fresh CA (written to [`ca_path`]) and a certificate for
/// `127.0.0.1` (and Azure's host names, for the provider workloads).
pub struct Tls {
    pki: Pki,
    ca_file: PathBuf,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Creates the PKI and writes the CA certificate. Call before any AWS client exists.
    pub fn create(paths: &Paths) -> Result<Self> {
        if !trusts_bench_ca(paths) {
            bail!("{SSL_CERT_FILE} does not name the bench's CA: the bench re-runs itself first");
        }
        // Azure's host names too: the Azure front (`providers_tls.rs`) serves them.
        let pki = Pki::generate(&[
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
            cloud_fakes::azure::LOGIN_HOST.to_owned(),
            format!("*{}", cloud_fakes::azure::VAULT_SUFFIX),
        ])?;
        let ca_file = ca_path(paths);
        fs::create_dir_all(ca_file.parent().context("the CA path has a parent")?)?;
        fs::write(&ca_file, &pki.ca_pem)
            .with_context(|| format!("cannot write {}", ca_file.display()))?;
        Ok(Self { pki, ca_file })
    }

    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.pki.ca_pem
    }

    /// A TLS front for `upstream` offering `alpn` (in order of preference).
    pub fn front(&self, upstream: SocketAddr, alpn: &[&[u8]]) -> Result<Proxy> {
        let config = self.pki.server_config(alpn)?;
        Ok(Proxy::start_tls(upstream, ProxyConfig::default(), config)?)
    }

    /// A TLS front for a Vault-like server: ALPN `h2` then `http/1.1`.
    pub fn vault_front(&self, upstream: SocketAddr) -> Result<Proxy> {
        let config = self.pki.server_config(&[b"h2", b"http/1.1"])?;
        Ok(Proxy::start_tls(upstream, ProxyConfig::default(), config)?)
    }

    /// A TLS front for AWS's endpoints: `http/1.1` only.
    pub fn aws_front(&self, upstream: SocketAddr) -> Result<Proxy> {
        let config = self.pki.server_config(&[b"http/1.1"])?;
        Ok(Proxy::start_tls(upstream, ProxyConfig::default(), config)?)
    }
}

/// The trust settings a client process needs for `ca` (`None`: plain, none).
pub fn client_env(ca: Option<&Path>) -> Vec<(&'static str, Option<String>)> {
    let value = ca.map(|p| p.display().to_string());
    ["VAULT_CACERT", "BAO_CACERT", "AWS_CA_BUNDLE", SSL_CERT_FILE]
        .into_iter()
        .map(|k| (k, value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_and_client_settings() {
        assert_eq!(
            Selection::Both.transports(),
            vec![Transport::Plain, Transport::Tls]
        );
        assert!(!Selection::Plain.has_tls());
        let env = client_env(Some(Path::new("/t/ca.pem")));
        assert!(env.contains(&("VAULT_CACERT", Some("/t/ca.pem".to_owned()))));
        assert!(env.contains(&("AWS_CA_BUNDLE", Some("/t/ca.pem".to_owned()))));
        assert!(client_env(None).iter().all(|(_, v)| v.is_none()));
    }
}
