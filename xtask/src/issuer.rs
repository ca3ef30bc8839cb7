//! `xtask issuer-serve`: the local OIDC issuer as a foreground process.

use anyhow::{Context as _, Result};
use auth_oidc::testing::{Issuer, IssuerKey};
use std::path::Path;

/// Serves the issuer for `key` on `127.0.0.1:port` until killed.
pub fn serve(port: u16, key: &Path) -> Result<()> {
    let key = IssuerKey::from_pem_file(key)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the Tokio runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
        let issuer = Issuer::new(format!("http://127.0.0.1:{port}"), &key);
        println!(
            "OIDC issuer {} serving kid {} (discovery at /.well-known/openid-configuration)",
            issuer.base_url(),
            key.kid()
        );
        tokio::select! {
            served = issuer.serve(listener) => served.context("the issuer stopped"),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
