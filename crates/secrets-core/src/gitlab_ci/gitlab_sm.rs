//! `gitlab_secrets_manager: {name, source}` turned into the payload GitLab's server would
//! send, from the job's predefined variables and settings in the environment.
//!
//! GitLab (EE `Ci::BuildRunnerPresenter#gitlab_secrets_manager_payload` and the
//! `SecretsManagement::{Project,Group}SecretsManager` pipeline helpers) sends:
//! `engine {kv-v2, <ns>/secrets/kv}`, `path explicit/<name>`, `field value`,
//! `server.url` = its OpenBao URL and `server.inline_auth {jwt, role all_pipelines,
//! path <ns>/auth/pipeline_jwt/login}`, with `<ns>` = `<namespace type>_<namespace id>/
//! project_<project id>` for project secrets and `group_<root group id>/group_<group id>`
//! for group secrets. The JWT is minted by Rails; here it comes from the environment.

use super::normalise::gate;
use crate::error::{Error, ErrorKind};
use crate::payload::{
    GitlabSecretsManagerSecret, GitlabSecretsManagerServer, InlineAuth, VaultEngine,
};
use serde_json::Value;

/// The OpenBao URL GitLab would send as `server.url`.
pub const URL_VAR: &str = "GITLAB_SECRETS_MANAGER_URL";
/// The JWT for inline auth (audience: the OpenBao URL). Without it, the value of the job's
/// first `id_tokens:` variable.
pub const ID_TOKEN_VAR: &str = "GITLAB_SECRETS_MANAGER_ID_TOKEN";
/// `group` (default) or `user`: the type of the project's namespace (`CI_PROJECT_NAMESPACE_ID`).
pub const NAMESPACE_TYPE_VAR: &str = "GITLAB_SECRETS_MANAGER_NAMESPACE_TYPE";
/// `full/path=id,...`: the ids of ancestor groups, which no predefined variable carries.
pub const GROUP_IDS_VAR: &str = "GITLAB_SECRETS_MANAGER_GROUP_IDS";

/// `{name, source}` of an entry that GitLab's validation accepted
/// (`entries::check_gitlab_secrets_manager`); `source` `None` means `project`.
pub(super) fn parse_gitlab_sm(body: &Value) -> Result<(String, Option<String>), String> {
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    let name = text("name").ok_or_else(|| "name can't be blank".to_owned())?;
    Ok((name, text("source")))
}

/// The payload GitLab would build for one secret.
pub(super) fn gitlab_sm_secret(
    name: &str,
    source: Option<&str>,
    first_id_token: Option<&str>,
    setting: &dyn Fn(&str) -> Option<String>,
) -> Result<GitlabSecretsManagerSecret, Error> {
    let url = gate(setting, URL_VAR, &[URL_VAR])?;
    let jwt = setting(ID_TOKEN_VAR)
        .or_else(|| first_id_token.and_then(setting))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidConfig,
                format!(
                    "no JWT for GitLab Secrets Manager: {ID_TOKEN_VAR} is not set{}",
                    match first_id_token {
                        Some(t) => format!(" and neither is the first id_tokens variable {t}"),
                        None => " and the job has no id_tokens".to_owned(),
                    }
                ),
            )
            .with_fix(format!(
                "GitLab mints this JWT itself; outside GitLab set {ID_TOKEN_VAR} to an ID token \
                 whose aud is the OpenBao URL ({url})"
            ))
        })?;
    let namespace = match source.and_then(|s| s.strip_prefix("group/")) {
        None => project_namespace(setting)?,
        Some(group) => group_namespace(group, setting)?,
    };
    Ok(GitlabSecretsManagerSecret {
        server: GitlabSecretsManagerServer {
            url,
            inline_auth: InlineAuth {
                path: format!("{namespace}/auth/pipeline_jwt/login"),
                jwt: jwt.into(),
                role: "all_pipelines".to_owned(),
                auth_mount: String::new(),
            },
        },
        engine: VaultEngine {
            name: "kv-v2".to_owned(),
            path: format!("{namespace}/secrets/kv"),
        },
        path: format!("explicit/{name}"),
        field: "value".to_owned(),
    })
}

fn required(setting: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<String, Error> {
    setting(name).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidConfig,
            format!("{name} is not set; GitLab Secrets Manager paths are built from it"),
        )
        .with_fix(format!(
            "run inside the job, or set {name} (a predefined GitLab CI variable)"
        ))
    })
}

/// `<type>_<CI_PROJECT_NAMESPACE_ID>/project_<CI_PROJECT_ID>`.
fn project_namespace(setting: &dyn Fn(&str) -> Option<String>) -> Result<String, Error> {
    let project = required(setting, "CI_PROJECT_ID")?;
    let namespace = required(setting, "CI_PROJECT_NAMESPACE_ID")?;
    let kind = setting(NAMESPACE_TYPE_VAR).unwrap_or_else(|| "group".to_owned());
    if !matches!(kind.as_str(), "group" | "user") {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!("{NAMESPACE_TYPE_VAR} is {kind:?}, not `group` or `user`"),
        ));
    }
    Ok(format!("{kind}_{namespace}/project_{project}"))
}

/// `group_<root id>/group_<group id>` for a group that is the project's namespace or one
/// of its ancestors (GitLab's rule), its ids from `CI_PROJECT_NAMESPACE_ID` or
/// [`GROUP_IDS_VAR`].
fn group_namespace(group: &str, setting: &dyn Fn(&str) -> Option<String>) -> Result<String, Error> {
    let project_ns = required(setting, "CI_PROJECT_NAMESPACE")?;
    let not_found = || {
        Error::new(
            ErrorKind::InvalidSpec,
            format!("secret source group with path '{group}' not found"),
        )
        .with_fix(format!(
            "a group secret must come from the project's group ({project_ns}) or one of its ancestors"
        ))
    };
    let is_ancestor = project_ns == group || project_ns.starts_with(&format!("{group}/"));
    if !is_ancestor {
        return Err(not_found());
    }
    let ids = setting(GROUP_IDS_VAR).unwrap_or_default();
    let id_of = |path: &str| -> Result<String, Error> {
        let listed = ids.split(',').find_map(|pair| {
            let (p, id) = pair.split_once('=')?;
            (p.trim() == path).then(|| id.trim().to_owned())
        });
        match listed {
            Some(id) => Ok(id),
            None if path == project_ns => required(setting, "CI_PROJECT_NAMESPACE_ID"),
            None => Err(Error::new(
                ErrorKind::InvalidConfig,
                format!("the id of group {path} is unknown"),
            )
            .with_fix(format!(
                "set {GROUP_IDS_VAR}={path}=<id> (more groups comma-separated)"
            ))),
        }
    };
    let root = group.split('/').next().unwrap_or(group);
    Ok(format!("group_{}/group_{}", id_of(root)?, id_of(group)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    const BASE: &[(&str, &str)] = &[
        (URL_VAR, "https://bao.example:8200"),
        ("CI_PROJECT_ID", "34"),
        ("CI_PROJECT_NAMESPACE_ID", "13"),
        ("CI_PROJECT_NAMESPACE", "top/sub"),
        ("SM_TOKEN", "a.b.c"),
        (GROUP_IDS_VAR, "top=12"),
    ];

    #[test]
    fn sources_are_validated_as_gitlab_does() {
        use crate::gitlab_ci::entries::check_gitlab_secrets_manager as check;
        for ok in ["project", "group/top", "group/top/sub.x-y_z"] {
            assert!(
                check(&serde_json::json!({"name": "DB", "source": ok})).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "invalid_format",
            "group/",
            "group/abc def",
            "groups/x",
            "Project",
        ] {
            let err = check(&serde_json::json!({"name": "DB", "source": bad})).unwrap_err();
            assert!(
                err.iter()
                    .any(|m| m.contains("group/group_full_path or 'project'")),
                "{bad}: {err:?}"
            );
        }
        let (name, source) =
            parse_gitlab_sm(&serde_json::json!({"name": "DB", "source": "project"})).unwrap();
        assert_eq!((name.as_str(), source.as_deref()), ("DB", Some("project")));
    }

    #[test]
    fn project_and_group_payloads() {
        let s = settings(BASE);
        let p = gitlab_sm_secret("DB", None, Some("SM_TOKEN"), &s).unwrap();
        assert_eq!(p.engine.path, "group_13/project_34/secrets/kv");
        assert_eq!(
            p.server.inline_auth.path,
            "group_13/project_34/auth/pipeline_jwt/login"
        );
        assert_eq!(p.server.inline_auth.jwt, "a.b.c");
        assert_eq!(p.server.inline_auth.role, "all_pipelines");
        assert_eq!(
            (p.path.as_str(), p.field.as_str()),
            ("explicit/DB", "value")
        );
        let g = gitlab_sm_secret("DB", Some("group/top/sub"), Some("SM_TOKEN"), &s).unwrap();
        assert_eq!(g.engine.path, "group_12/group_13/secrets/kv");
        let g = gitlab_sm_secret("DB", Some("group/top"), Some("SM_TOKEN"), &s).unwrap();
        assert_eq!(
            g.server.inline_auth.path,
            "group_12/group_12/auth/pipeline_jwt/login"
        );
        let err = gitlab_sm_secret("DB", Some("group/other"), Some("SM_TOKEN"), &s).unwrap_err();
        assert!(
            err.to_string()
                .contains("group with path 'other' not found")
        );
    }

    #[test]
    fn missing_settings_name_the_variable() {
        let s = settings(&BASE[1..]);
        let err = gitlab_sm_secret("DB", None, Some("SM_TOKEN"), &s).unwrap_err();
        assert!(err.to_string().contains(URL_VAR), "{err}");
        let s = settings(&BASE[..1]);
        let err = gitlab_sm_secret("DB", None, None, &s).unwrap_err();
        assert!(err.to_string().contains(ID_TOKEN_VAR), "{err}");
    }
}
