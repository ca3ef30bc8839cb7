//! Starting the fakes: the Google listener (plain HTTP) and the Azure listener (TLS).

use crate::counts::Counters;
use crate::fixture::Fixture;
use crate::tls::{Pki, TlsListener};
use crate::{azure, gcp};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use std::io;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The admin routes, on both listeners: `GET /_fake/health`, `GET /_fake/info` (the
/// listeners' addresses), `GET /_fake/requests`, `POST /_fake/reset`.
fn admin(counters: Counters, gcp: SocketAddr, azure: SocketAddr, proxy: SocketAddr) -> Router {
    let info = serde_json::json!({
        "gcp_url": format!("http://{gcp}"),
        "azure_addr": azure.to_string(),
        "azure_proxy_url": format!("http://{proxy}"),
    });
    Router::new()
        .route("/_fake/health", get(|| async { "ok\n" }))
        .route(
            "/_fake/info",
            get(move || {
                let info = info.clone();
                async move { Json(info) }
            }),
        )
        .route(
            "/_fake/requests",
            get(|State(c): State<Counters>| async move { Json(c.document()) }),
        )
        .route("/_fake/faults", post(set_fault))
        .route(
            "/_fake/reset",
            post(|State(c): State<Counters>| async move {
                c.reset();
                Json(c.document())
            }),
        )
        .with_state(counters)
}

/// `POST /_fake/faults` with `{"kind": "<count kind>", "status": 429|5xx, "count": n}`.
async fn set_fault(
    State(counters): State<Counters>,
    Json(body): Json<serde_json::Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let kind = body["kind"].as_str().and_then(crate::Kind::from_name);
    let status = body["status"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| *s == 429 || (500..600).contains(s));
    let count = body["count"]
        .as_u64()
        .map_or(Some(1), |n| u32::try_from(n).ok());
    match (kind, status, count) {
        (Some(kind), Some(status), Some(count)) => {
            counters.set_fault(kind, status, count);
            Json(counters.document()).into_response()
        }
        _ => (
            axum::http::StatusCode::BAD_REQUEST,
            "expected {\"kind\": <a count kind>, \"status\": 429 or 5xx, \"count\": n}\n",
        )
            .into_response(),
    }
}

/// The TLS names: Entra's host, every vault's host, a wildcard for the rest, and loopback.
pub fn tls_names(fixture: &Fixture) -> Vec<String> {
    let mut names = vec![
        azure::LOGIN_HOST.to_owned(),
        format!("*{}", azure::VAULT_SUFFIX),
    ];
    for vault in &fixture.azure.vaults {
        names.push(format!(
            "{}{}",
            vault.name.to_ascii_lowercase(),
            azure::VAULT_SUFFIX
        ));
    }
    names.extend(["localhost".to_owned(), "127.0.0.1".to_owned()]);
    names
}

/// Why the fakes could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The TLS material could not be made.
    #[error(transparent)]
    Pki(#[from] crate::tls::PkiError),
}

/// The running fakes; stopped when dropped.
#[derive(Debug)]
pub struct RunningFakes {
    gcp_addr: SocketAddr,
    azure_addr: SocketAddr,
    azure_proxy_addr: SocketAddr,
    ca_pem: String,
    counters: Counters,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningFakes {
    /// Binds `gcp` (plain HTTP) and `azure` (TLS) and serves `fixture` on them. Port 0 picks a
    /// free port. A `CONNECT` proxy to the Azure listener ([`crate::connect`]) listens on a
    /// free port of `azure`'s address.
    pub async fn start(
        fixture: Fixture,
        gcp: SocketAddr,
        azure: SocketAddr,
    ) -> Result<Self, StartError> {
        let pki = Pki::generate(&tls_names(&fixture))?;
        Self::start_with(fixture, gcp, azure, pki).await
    }

    /// [`start`](Self::start) with a given PKI (made from [`tls_names`]), so the caller can
    /// publish the CA before anything is served.
    pub async fn start_with(
        fixture: Fixture,
        gcp: SocketAddr,
        azure: SocketAddr,
        pki: Pki,
    ) -> Result<Self, StartError> {
        let acceptor = pki.acceptor()?;
        let counters = Counters::default();
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })
        };
        let gcp_listener = bind(gcp).await?;
        let azure_listener = bind(azure).await?;
        let gcp_addr = gcp_listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr: gcp, source })?;
        let azure_addr = azure_listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: azure,
                source,
            })?;
        let proxy_bind = SocketAddr::new(azure.ip(), 0);
        let proxy_listener = bind(proxy_bind).await?;
        let azure_proxy_addr = proxy_listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: proxy_bind,
                source,
            })?;
        let tls =
            TlsListener::new(azure_listener, acceptor).map_err(|source| StartError::Bind {
                addr: azure,
                source,
            })?;

        let gcp_app = admin(counters.clone(), gcp_addr, azure_addr, azure_proxy_addr).merge(
            gcp::router(gcp::GcpState::new(fixture.gcp.clone(), counters.clone())),
        );
        let azure_app =
            admin(counters.clone(), gcp_addr, azure_addr, azure_proxy_addr).merge(azure::router(
                azure::AzureState::new(fixture.azure.clone(), counters.clone()),
            ));
        let tasks = vec![
            tokio::spawn(async move {
                let _ = axum::serve(gcp_listener, gcp_app).await;
            }),
            tokio::spawn(crate::connect::serve(proxy_listener, azure_addr)),
            tokio::spawn(async move {
                let _ = axum::serve(tls, azure_app).await;
            }),
        ];
        Ok(Self {
            gcp_addr,
            azure_addr,
            azure_proxy_addr,
            ca_pem: pki.ca_pem,
            counters,
            tasks,
        })
    }

    /// `http://127.0.0.1:<port>`: STS, Secret Manager and IAM Credentials.
    pub fn gcp_url(&self) -> String {
        format!("http://{}", self.gcp_addr)
    }

    /// The Google listener's address.
    pub fn gcp_addr(&self) -> SocketAddr {
        self.gcp_addr
    }

    /// The Azure TLS listener's address: resolve `login.microsoftonline.com` and
    /// `<vault>.vault.azure.net` to it.
    pub fn azure_addr(&self) -> SocketAddr {
        self.azure_addr
    }

    /// `http://127.0.0.1:<port>`: the `CONNECT` proxy to the Azure listener, for `HTTPS_PROXY`.
    pub fn azure_proxy_url(&self) -> String {
        format!("http://{}", self.azure_proxy_addr)
    }

    /// The test CA, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The shared request counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Waits until a listener task ends (it does not, unless it fails).
    pub async fn wait(mut self) {
        if let Some(task) = self.tasks.pop() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningFakes {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
