//! A `reqwest` client for one provider server, from settings every provider shares.

use crate::Failure;
use crate::server_name::TlsServerName;
use secrets_core::{ErrorKind, ResolveContext};
use std::fmt;
use std::net::SocketAddr;

/// A proxy and how to show it (its URL without credentials).
#[derive(Clone)]
pub struct ShownProxy {
    /// The proxy.
    pub proxy: reqwest::Proxy,
    /// The setting and the URL without credentials, for messages.
    pub shown: String,
}

impl fmt::Debug for ShownProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// Client settings; the defaults are the system trust store, verification on, the
/// `HTTP(S)_PROXY` variables reqwest reads, and no client certificate.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct ClientSettings {
    /// Trust only these roots (empty: the system trust store).
    pub ca_certs: Vec<reqwest::Certificate>,
    /// The client certificate and key for mutual TLS.
    pub identity: Option<reqwest::Identity>,
    /// Accept any server certificate.
    pub skip_verify: bool,
    /// One proxy for every request, in place of `HTTP(S)_PROXY`/`NO_PROXY`.
    pub proxy: Option<ShownProxy>,
    /// The `User-Agent`.
    pub user_agent: String,
    /// Host names resolved to fixed addresses.
    pub resolve: Vec<(String, Vec<SocketAddr>)>,
    /// Verify server certificates against this name (over the same roots and presenting the
    /// same client certificate, which it carries) instead of the URL's host; ignored with
    /// `skip_verify`.
    pub tls_server_name: Option<TlsServerName>,
}

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSettings")
            .field("ca_certs", &self.ca_certs.len())
            .field("identity", &self.identity.as_ref().map(|_| "<redacted>"))
            .field("skip_verify", &self.skip_verify)
            .field("proxy", &self.proxy)
            .field("user_agent", &self.user_agent)
            .field("resolve", &self.resolve)
            .field("tls_server_name", &self.tls_server_name)
            .finish()
    }
}

impl ClientSettings {
    /// Settings with a `User-Agent` and otherwise the defaults.
    pub fn new(user_agent: impl Into<String>) -> Self {
        Self {
            user_agent: user_agent.into(),
            ..Self::default()
        }
    }

    /// A client with the resolution's timeouts. Redirects are followed (at most 3), never
    /// from https to http: requests carry tokens.
    pub fn build(&self, ctx: &ResolveContext, server: &str) -> Result<reqwest::Client, Failure> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(ctx.connect_timeout)
            .timeout(ctx.request_timeout)
            .user_agent(self.user_agent.clone())
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let downgrade = attempt.url().scheme() != "https"
                    && attempt.previous().iter().any(|u| u.scheme() == "https");
                if downgrade || attempt.previous().len() > 3 {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            }));
        match &self.tls_server_name {
            Some(name) if !self.skip_verify => {
                builder = builder.tls_backend_preconfigured(name.client_config());
            }
            _ => {
                if !self.ca_certs.is_empty() {
                    builder = builder.tls_certs_only(self.ca_certs.iter().cloned());
                }
                if let Some(identity) = &self.identity {
                    builder = builder.identity(identity.clone());
                }
                if self.skip_verify {
                    builder = builder.tls_danger_accept_invalid_certs(true);
                }
            }
        }
        if let Some(proxy) = &self.proxy {
            tracing::debug!(proxy = proxy.shown.as_str(), "requests go through a proxy");
            builder = builder.proxy(proxy.proxy.clone());
        }
        for (name, addrs) in &self.resolve {
            builder = builder.resolve_to_addrs(name, addrs);
        }
        builder.build().map_err(|e| {
            Failure::new(
                ErrorKind::InvalidConfig,
                format!("cannot set up an HTTP client for {server}: {e}"),
            )
        })
    }
}
