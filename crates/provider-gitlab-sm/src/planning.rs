//! Offline checks and grouping: each secret is checked without I/O (inline auth, URL,
//! engine, path), then grouped by identity (OpenBao URL, login path, role, JWT); each
//! identity reads each distinct path once. The plan and the live path both use this.

use provider_http::Failure;
use provider_http::tls::{display_url, display_url_text};
use provider_vault::{EngineKind, go_join};
use reqwest::Url;
use secrets_core::payload::GitlabSecretsManagerSecret;
use secrets_core::{Error, ErrorKind, Secret};

/// One secret of a group.
#[derive(Debug)]
pub(crate) struct Planned<'a> {
    /// Its position in the request list.
    pub(crate) index: usize,
    /// The variable it becomes.
    pub(crate) variable: &'a str,
    /// Its reference text.
    pub(crate) reference: String,
    /// The engine (kv-v2 in every payload GitLab builds).
    pub(crate) engine: EngineKind,
    /// The path read, relative to `/v1/`.
    pub(crate) logical: String,
    /// The field taken from the answer.
    pub(crate) field: &'a str,
}

/// Who reads: the OpenBao URL, the inline login path, the role and the JWT.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct IdentityKey<'a> {
    pub(crate) url: &'a str,
    pub(crate) auth_path: String,
    pub(crate) role: &'a str,
    pub(crate) jwt: &'a str,
}

/// The secrets of one identity, in request order.
#[derive(Debug)]
pub(crate) struct Group<'a> {
    pub(crate) key: IdentityKey<'a>,
    pub(crate) server: Url,
    pub(crate) members: Vec<Planned<'a>>,
}

impl Group<'_> {
    /// The distinct paths in first-use order, and for each member the index of its path.
    pub(crate) fn distinct_paths(&self) -> (Vec<&str>, Vec<usize>) {
        let mut paths: Vec<&str> = Vec::new();
        let at = self
            .members
            .iter()
            .map(|m| match paths.iter().position(|p| *p == m.logical) {
                Some(i) => i,
                None => {
                    paths.push(&m.logical);
                    paths.len() - 1
                }
            })
            .collect();
        (paths, at)
    }
}

/// The reference text: the OpenBao URL without credentials, the engine path, the path and
/// the field. Never the JWT.
pub(crate) fn reference(g: &GitlabSecretsManagerSecret) -> String {
    format!(
        "gitlab_secrets_manager {} {} {} field {}",
        display_url_text(&g.server.url),
        if g.engine.path.is_empty() {
            "(no engine path)"
        } else {
            &g.engine.path
        },
        g.path,
        g.field
    )
}

/// The login path sent in `X-Vault-Inline-Auth-Path`: `inline_auth.path`, or
/// `auth/<auth_mount>/login` when it is empty (payloads of older GitLab versions).
pub(crate) fn auth_path(g: &GitlabSecretsManagerSecret) -> String {
    let inline = &g.server.inline_auth;
    if inline.path.is_empty() && !inline.auth_mount.is_empty() {
        go_join(&["auth", &inline.auth_mount, "login"])
    } else {
        inline.path.clone()
    }
}

/// The inline-auth problems of a payload, all of them, as the runner joins them.
fn inline_auth_problems(g: &GitlabSecretsManagerSecret) -> Vec<&'static str> {
    let inline = &g.server.inline_auth;
    let mut problems = Vec::new();
    if inline.path.is_empty()
        && inline.auth_mount.is_empty()
        && inline.jwt.is_empty()
        && inline.role.is_empty()
    {
        problems.push("inline auth is required");
    }
    if inline.path.is_empty() && inline.auth_mount.is_empty() {
        problems.push("inline auth path is required");
    }
    if inline.jwt.is_empty() {
        problems.push("inline auth JWT is required");
    }
    if inline.role.is_empty() {
        problems.push("inline auth role is required");
    }
    problems
}

/// A secret checked without I/O: its parsed URL and its planned read.
fn check<'a>(
    index: usize,
    variable: &'a str,
    secret: &'a Secret,
) -> Result<(IdentityKey<'a>, Url, Planned<'a>), Error> {
    let Some(g) = secret.gitlab_secrets_manager.as_deref() else {
        return Err(Error::new(
            ErrorKind::InvalidSpec,
            "not a gitlab_secrets_manager secret",
        )
        .with_variable(variable));
    };
    let reference = reference(g);
    let fail = |f: Failure| f.to_core(variable, &reference);
    let problems = inline_auth_problems(g);
    if !problems.is_empty() {
        return Err(fail(
            Failure::new(
                ErrorKind::InvalidSpec,
                format!("configuring inline auth: {}", problems.join("; ")),
            )
            .with_fix(
                "GitLab builds this payload (server.inline_auth.path, jwt and role): check that \
                 the secrets manager is active for the project or group, or, with --ci-config, \
                 set GITLAB_SECRETS_MANAGER_ID_TOKEN (or an id_tokens entry)",
            ),
        ));
    }
    let url = parse_url(&g.server.url).map_err(fail)?;
    let engine = EngineKind::from_name(&g.engine.name).ok_or_else(|| {
        fail(
            Failure::new(
                ErrorKind::InvalidSpec,
                format!("unknown secret engine {:?}", g.engine.name),
            )
            .with_fix("GitLab Secrets Manager uses engine kv-v2"),
        )
    })?;
    if g.path.is_empty() {
        return Err(fail(
            Failure::new(ErrorKind::InvalidSpec, "the secret path is empty")
                .with_fix("GitLab sends path explicit/<name>; check the secret's name"),
        ));
    }
    let logical = engine.logical_path(&g.engine.path, &g.path);
    let key = IdentityKey {
        url: &g.server.url,
        auth_path: auth_path(g),
        role: &g.server.inline_auth.role,
        jwt: g.server.inline_auth.jwt.expose(),
    };
    let planned = Planned {
        index,
        variable,
        reference,
        engine,
        logical,
        field: &g.field,
    };
    Ok((key, url, planned))
}

/// A parsed OpenBao URL.
pub(crate) fn parse_url(raw: &str) -> Result<Url, Failure> {
    let fix = "GitLab sends its OpenBao URL as server.url; with --ci-config set \
               GITLAB_SECRETS_MANAGER_URL, e.g. https://openbao.example.com:8200";
    if raw.trim().is_empty() {
        return Err(
            Failure::new(ErrorKind::InvalidConfig, "the OpenBao URL is empty").with_fix(fix),
        );
    }
    let url = Url::parse(raw.trim()).map_err(|e| {
        Failure::new(
            ErrorKind::InvalidConfig,
            format!("the OpenBao URL is not a valid URL ({e})"),
        )
        .with_fix(fix)
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(Failure::new(
            ErrorKind::InvalidConfig,
            format!(
                "the OpenBao URL {} is not an http(s) URL with a host",
                display_url(&url)
            ),
        )
        .with_fix(fix));
    }
    Ok(url)
}

/// Checks every secret and groups the valid ones by identity, in request order; the
/// failures by request index.
pub(crate) fn group<'a>(
    secrets: impl IntoIterator<Item = (&'a str, &'a Secret)>,
) -> (Vec<Group<'a>>, Vec<(usize, Error)>) {
    let mut groups: Vec<Group<'a>> = Vec::new();
    let mut failed = Vec::new();
    for (index, (variable, secret)) in secrets.into_iter().enumerate() {
        match check(index, variable, secret) {
            Ok((key, server, planned)) => match groups.iter_mut().find(|g| g.key == key) {
                Some(g) => g.members.push(planned),
                None => groups.push(Group {
                    key,
                    server,
                    members: vec![planned],
                }),
            },
            Err(e) => failed.push((index, e)),
        }
    }
    (groups, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(json: serde_json::Value) -> Secret {
        serde_json::from_value(serde_json::json!({ "gitlab_secrets_manager": json })).unwrap()
    }

    fn payload(name: &str) -> serde_json::Value {
        serde_json::json!({
            "server": {"url": "https://bao.example:8200", "inline_auth": {
                "path": "group_12/project_34/auth/pipeline_jwt/login",
                "jwt": "a.b.c", "role": "all_pipelines"}},
            "engine": {"name": "kv-v2", "path": "group_12/project_34/secrets/kv"},
            "path": format!("explicit/{name}"), "field": "value"
        })
    }

    #[test]
    fn the_four_inline_auth_errors_are_joined() {
        let s = secret(serde_json::json!({"server": {"url": "https://bao"}}));
        let (groups, failed) = group([("DB", &s)]);
        assert!(groups.is_empty());
        let err = &failed[0].1;
        assert_eq!(err.kind(), ErrorKind::InvalidSpec);
        let text = err.to_string();
        for part in [
            "inline auth is required",
            "inline auth path is required",
            "inline auth JWT is required",
            "inline auth role is required",
        ] {
            assert!(text.contains(part), "{text}");
        }
        assert!(text.contains("DB"), "{text}");
    }

    #[test]
    fn an_auth_mount_stands_in_for_an_empty_path() {
        let mut p = payload("A");
        p["server"]["inline_auth"]["path"] = "".into();
        p["server"]["inline_auth"]["auth_mount"] = "gitlab_rails_jwt".into();
        let s = secret(p);
        let (groups, failed) = group([("A", &s)]);
        assert!(failed.is_empty());
        assert_eq!(groups[0].key.auth_path, "auth/gitlab_rails_jwt/login");
    }

    #[test]
    fn one_read_per_distinct_path_per_identity() {
        let (a, b) = (secret(payload("A")), secret(payload("B")));
        let (groups, _) = group([("A1", &a), ("B", &b), ("A2", &a)]);
        assert_eq!(groups.len(), 1);
        let (paths, at) = groups[0].distinct_paths();
        assert_eq!(
            paths,
            [
                "group_12/project_34/secrets/kv/data/explicit/A",
                "group_12/project_34/secrets/kv/data/explicit/B"
            ]
        );
        assert_eq!(at, [0, 1, 0]);
    }
}
