//! The offline half of a resolution, shared by the live path and the plan: each secret
//! checked without I/O, grouped by identity (server, namespace, auth path, role, ID token),
//! and each identity's distinct API paths.

use crate::engine::{EngineKind, login_path};
use crate::server::parse_server_url;
use provider_http::Failure;
use provider_http::tls::display_url_text;
use secrets_core::payload::VaultSecret;
use secrets_core::{Error, ErrorKind, Secret};
use std::borrow::Cow;
use std::collections::HashMap;

/// One secret that passed the offline checks.
pub(crate) struct Planned<'a> {
    pub(crate) index: usize,
    pub(crate) variable: &'a str,
    pub(crate) reference: String,
    pub(crate) engine: EngineKind,
    pub(crate) logical: String,
    pub(crate) field: &'a str,
}

/// Who logs in where. Holds the ID token (after expansion), so it has no `Debug`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct IdentityKey<'a> {
    pub(crate) url: &'a str,
    pub(crate) namespace: Option<&'a str>,
    pub(crate) login_path: String,
    pub(crate) role: Option<Cow<'a, str>>,
    pub(crate) jwt: Cow<'a, str>,
}

/// The secrets of one identity.
pub(crate) struct Group<'a> {
    pub(crate) key: IdentityKey<'a>,
    pub(crate) auth_path: &'a str,
    pub(crate) server: reqwest::Url,
    pub(crate) members: Vec<Planned<'a>>,
}

impl Group<'_> {
    /// The distinct logical paths in first-use order, and each member's index into them.
    pub(crate) fn distinct_paths(&self) -> (Vec<&str>, Vec<usize>) {
        let mut paths: Vec<&str> = Vec::new();
        let mut path_of = Vec::with_capacity(self.members.len());
        for m in &self.members {
            let at = paths
                .iter()
                .position(|p| *p == m.logical)
                .unwrap_or_else(|| {
                    paths.push(&m.logical);
                    paths.len() - 1
                });
            path_of.push(at);
        }
        (paths, path_of)
    }
}

/// An auth-data value as text: strings borrowed, other JSON as the runner's `%s` gives it.
pub(crate) fn data_text(value: &serde_json::Value) -> Cow<'_, str> {
    match value {
        serde_json::Value::String(s) => Cow::Borrowed(s),
        serde_json::Value::Null => Cow::Borrowed(""),
        other => Cow::Owned(other.to_string()),
    }
}

fn show(s: &str) -> &str {
    if s.is_empty() { "(empty)" } else { s }
}

/// `vault kv-v2 mount ops path production/db field password at https://... namespace team1`,
/// the server URL without credentials.
pub(crate) fn reference(v: &VaultSecret) -> String {
    let mut out = format!(
        "vault {} mount {} path {} field {} at {}",
        show(&v.engine.name),
        show(&v.engine.path),
        show(&v.path),
        show(&v.field),
        show(&display_url_text(v.server.url.trim_end_matches('/'))),
    );
    if let Some(ns) = v.server.namespace.as_deref().filter(|n| !n.is_empty()) {
        out.push_str(" namespace ");
        out.push_str(ns);
    }
    out
}

/// Checks one secret offline: its identity, auth path, server and plan, or its error.
fn check<'a>(
    index: usize,
    variable: &'a str,
    secret: &'a Secret,
) -> Result<(IdentityKey<'a>, &'a str, reqwest::Url, Planned<'a>), Error> {
    let Some(v) = secret.vault.as_deref() else {
        return Err(Error::new(
            ErrorKind::InvalidSpec,
            "the secret has no `vault` entry but was given to the Vault provider",
        )
        .with_variable(variable));
    };
    let reference = reference(v);
    let fail = |e: Failure| e.to_core(variable, &reference);

    let server = parse_server_url(&v.server.url).map_err(fail)?;
    let auth = &v.server.auth;
    if auth.name != "jwt" {
        return Err(fail(
            Failure::new(
                ErrorKind::InvalidConfig,
                format!("factory for auth method {:?} is not registered", auth.name),
            )
            .with_fix("only the `jwt` auth method is supported (GitLab sends `jwt`)"),
        ));
    }
    let Some(jwt) = auth.data.get("jwt") else {
        return Err(fail(
            Failure::new(
                ErrorKind::InvalidConfig,
                "missing required auth method configuration key \"jwt\"",
            )
            .with_fix("give the secret a `token:` or define `id_tokens:` in the job"),
        ));
    };
    let role = auth
        .data
        .get("role")
        .map(data_text)
        .filter(|r| !r.is_empty());
    let Some(engine) = EngineKind::from_name(&v.engine.name) else {
        return Err(fail(
            Failure::new(
                ErrorKind::InvalidConfig,
                format!(
                    "factory for secret engine {:?} is not registered",
                    v.engine.name
                ),
            )
            .with_fix("set `engine:name` to kv-v2, kv-v1 or generic"),
        ));
    };
    let logical = engine.logical_path(&v.engine.path, &v.path);
    let key = IdentityKey {
        url: v.server.url.as_str(),
        namespace: v.server.namespace.as_deref().filter(|n| !n.is_empty()),
        login_path: login_path(&auth.path),
        role,
        jwt: data_text(jwt),
    };
    let planned = Planned {
        index,
        variable,
        reference,
        engine,
        logical,
        field: v.field.as_str(),
    };
    Ok((key, auth.path.as_str(), server, planned))
}

/// Checks and groups `secrets` (variable, entry) by identity, in order: the groups, and the
/// secrets that failed the checks with their errors.
pub(crate) fn group<'a>(
    secrets: impl IntoIterator<Item = (&'a str, &'a Secret)>,
) -> (Vec<Group<'a>>, Vec<(usize, Error)>) {
    let mut groups: Vec<Group<'a>> = Vec::new();
    let mut failed = Vec::new();
    let mut group_of: HashMap<IdentityKey<'a>, usize> = HashMap::new();
    for (index, (variable, secret)) in secrets.into_iter().enumerate() {
        match check(index, variable, secret) {
            Err(e) => failed.push((index, e)),
            Ok((key, auth_path, server, planned)) => match group_of.get(&key) {
                Some(&g) => groups[g].members.push(planned),
                None => {
                    group_of.insert(key.clone(), groups.len());
                    groups.push(Group {
                        key,
                        auth_path,
                        server,
                        members: vec![planned],
                    });
                }
            },
        }
    }
    (groups, failed)
}
