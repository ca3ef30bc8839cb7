//! `include:` of local files, merged the way GitLab merges them: each included file (with its
//! own includes applied first) in the order listed, then the including file on top; mappings
//! merge deeply, any other value is replaced by the later definition. A file included twice
//! counts once, so cycles end. Remote, project, template and component includes need GitLab
//! to fetch them: they are reported as warnings, not followed.

use super::{CiConfig, deep_merge};
use crate::error::{Error, ErrorKind};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

/// At most this many files make one configuration (GitLab's limit is 150).
pub const MAX_INCLUDED_FILES: usize = 150;

/// One entry of `include:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Include {
    /// `include: path.yml` or `include: {local: path.yml}`: a file of the same repository,
    /// its path relative to the repository root.
    Local {
        /// The path as written.
        path: String,
        /// Why following it may differ from GitLab (`rules:` or `inputs:` not evaluated).
        caveat: Option<String>,
    },
    /// `remote`, `project`, `template` or `component`: only GitLab can fetch it.
    Elsewhere {
        /// The include keyword.
        kind: &'static str,
        /// What it names.
        reference: String,
    },
}

/// A `.gitlab-ci.yml` with its local includes merged in, and what could not be followed.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The merged configuration.
    pub config: CiConfig,
    /// The files read, relative to the repository root, the including file first.
    pub files: Vec<String>,
    /// Includes not followed, and includes followed without evaluating their `rules:`.
    pub warnings: Vec<String>,
}

impl CiConfig {
    /// The `include:` entries, in order; an error for a malformed `include:`.
    pub fn includes(&self) -> Result<Vec<Include>, Error> {
        let Some(include) = self.root.get("include") else {
            return Ok(Vec::new());
        };
        let entries = match include {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        entries.into_iter().map(parse_include).collect()
    }

    /// Reads the `.gitlab-ci.yml` at `path` and follows its local includes, whose paths are
    /// relative to `project_dir` (the repository root, usually `path`'s directory).
    pub fn load(path: &Path, project_dir: &Path) -> Result<LoadedConfig, Error> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(ErrorKind::InvalidConfig, format!("cannot read it: {e}"))
                .with_reference(origin.clone())
        })?;
        let main = lexical_relative(
            &path
                .strip_prefix(project_dir)
                .unwrap_or(path)
                .to_string_lossy(),
        );
        Self::from_yaml_in(&text, &origin, main, project_dir)
    }

    /// Parses `text` (read from `origin`, for messages) and follows its local includes,
    /// relative to `project_dir`.
    pub fn from_yaml_with_includes(
        text: &str,
        origin: &str,
        project_dir: &Path,
    ) -> Result<LoadedConfig, Error> {
        Self::from_yaml_in(text, origin, None, project_dir)
    }

    fn from_yaml_in(
        text: &str,
        origin: &str,
        main: Option<String>,
        project_dir: &Path,
    ) -> Result<LoadedConfig, Error> {
        let config = Self::from_yaml(text).map_err(|e| e.with_reference(origin))?;
        let mut loader = Loader {
            project_dir,
            seen: main.iter().cloned().collect(),
            files: vec![main.unwrap_or_else(|| origin.to_owned())],
            warnings: Vec::new(),
        };
        let root = loader.merge(config, origin)?;
        Ok(LoadedConfig {
            config: CiConfig { root },
            files: loader.files,
            warnings: loader.warnings,
        })
    }
}

struct Loader<'a> {
    project_dir: &'a Path,
    seen: HashSet<String>,
    files: Vec<String>,
    warnings: Vec<String>,
}

impl Loader<'_> {
    /// `config`'s includes merged in order, then `config` itself on top.
    fn merge(&mut self, config: CiConfig, origin: &str) -> Result<Map<String, Value>, Error> {
        let includes = config.includes().map_err(|e| e.with_reference(origin))?;
        let mut merged = Map::new();
        for include in includes {
            match include {
                Include::Elsewhere { kind, reference } => self.warnings.push(format!(
                    "{origin}: `include: {kind}: {reference}` is not followed (only GitLab can \
                     fetch it); jobs, variables and defaults from it are missing"
                )),
                Include::Local { path, caveat } => {
                    if let Some(included) = self.local(&path, origin)? {
                        if let Some(caveat) = caveat {
                            self.warnings
                                .push(format!("{origin}: include {path} followed; {caveat}"));
                        }
                        deep_merge(&mut merged, included);
                    }
                }
            }
        }
        let mut root = config.root;
        root.shift_remove("include");
        deep_merge(&mut merged, root);
        Ok(merged)
    }

    /// The merged content of one local include, or `None` when it was already included or
    /// cannot be followed here (a wildcard or a variable in its path).
    fn local(&mut self, path: &str, origin: &str) -> Result<Option<Map<String, Value>>, Error> {
        let fail = |message: String, fix: &str| {
            Error::new(ErrorKind::InvalidSpec, message)
                .with_reference(format!("{origin}: include {path}"))
                .with_fix(fix)
        };
        if path.contains('*') || path.contains('$') {
            self.warnings.push(format!(
                "{origin}: include {path} is not followed (wildcards and variables in include \
                 paths are not expanded here)"
            ));
            return Ok(None);
        }
        if !(path.ends_with(".yml") || path.ends_with(".yaml")) {
            return Err(fail(
                "the included file does not have a YAML extension".into(),
                "name local includes *.yml or *.yaml, as GitLab requires",
            ));
        }
        let Some(relative) = lexical_relative(path) else {
            return Err(fail(
                "the path leaves the repository".into(),
                "local includes are paths inside the repository, relative to its root",
            ));
        };
        if !self.seen.insert(relative.clone()) {
            return Ok(None);
        }
        if self.files.len() >= MAX_INCLUDED_FILES {
            return Err(fail(
                format!("more than {MAX_INCLUDED_FILES} files are included"),
                "include fewer files (GitLab's limit is 150)",
            ));
        }
        self.files.push(relative.clone());
        let file = self.project_dir.join(&relative);
        let text = std::fs::read_to_string(&file).map_err(|e| {
            fail(
                format!("cannot read {}: {e}", file.display()),
                "local include paths are relative to the repository root; pass the root with \
                 the configuration's directory, or fix the path",
            )
        })?;
        let config = CiConfig::from_yaml(&text).map_err(|e| e.with_reference(&relative))?;
        self.merge(config, &relative).map(Some)
    }
}

fn parse_include(entry: &Value) -> Result<Include, Error> {
    let err = |message: &str| {
        Error::new(ErrorKind::InvalidSpec, message.to_owned()).with_reference("include")
    };
    let text = |key: &str, v: &Value| -> Result<String, Error> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Array(items) => Ok(items
                .iter()
                .map(|i| i.as_str().unwrap_or("?"))
                .collect::<Vec<_>>()
                .join(", ")),
            _ => Err(err(&format!("include:{key} should be a string"))),
        }
    };
    match entry {
        Value::String(s) if s.starts_with("https://") || s.starts_with("http://") => {
            Ok(Include::Elsewhere {
                kind: "remote",
                reference: s.clone(),
            })
        }
        Value::String(s) => Ok(Include::Local {
            path: s.clone(),
            caveat: None,
        }),
        Value::Object(map) => {
            if let Some(local) = map.get("local") {
                let caveat = ["rules", "inputs"]
                    .iter()
                    .filter(|k| map.contains_key(**k))
                    .map(|k| format!("its `{k}:` is not evaluated"))
                    .reduce(|a, b| format!("{a}, {b}"));
                let Value::String(path) = local else {
                    return Err(err("include:local should be a string"));
                };
                return Ok(Include::Local {
                    path: path.clone(),
                    caveat,
                });
            }
            for kind in ["remote", "project", "template", "component"] {
                if let Some(v) = map.get(kind) {
                    let mut reference = text(kind, v)?;
                    if let Some(file) = map.get("file") {
                        reference = format!("{reference} file {}", text("file", file)?);
                    }
                    return Ok(Include::Elsewhere { kind, reference });
                }
            }
            Err(err(
                "an include needs one of local, remote, project, template or component",
            ))
        }
        _ => Err(err("include config should be a string, a hash or an array")),
    }
}

/// `path` relative to the repository root with `.` and `..` resolved, or `None` when it
/// climbs out. A leading `/` means the root, as in GitLab.
fn lexical_relative(path: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for component in PathBuf::from(path.trim_start_matches('/')).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        dir
    }

    fn load(dir: &tempfile::TempDir) -> Result<LoadedConfig, Error> {
        CiConfig::load(&dir.path().join(".gitlab-ci.yml"), dir.path())
    }

    fn variable(config: &CiConfig, job: &str, key: &str) -> Option<String> {
        let job = config.job(job).expect("job");
        job.variables()
            .iter()
            .rev()
            .find(|v| v.key == key)
            .map(|v| v.value.clone())
    }

    #[test]
    fn local_includes_merge_under_the_including_file() {
        let dir = repo(&[
            (
                ".gitlab-ci.yml",
                "include:\n  - ci/vault.yml\n  - local: /ci/aws.yml\nvariables:\n  VAULT_SERVER_URL: https://main.example\n\
                 deploy:\n  variables:\n    STAGE: main\n",
            ),
            (
                "ci/vault.yml",
                "variables:\n  VAULT_SERVER_URL: https://included.example\n  VAULT_AUTH_ROLE: ci\n\
                 deploy:\n  id_tokens:\n    VAULT_ID_TOKEN:\n      aud: https://vault.example\n  \
                 secrets:\n    DB_PASSWORD:\n      vault: db/password@secret\n  variables:\n    STAGE: vault\n    KEEP: yes-kept\n",
            ),
            (
                "ci/aws.yml",
                "aws_job:\n  secrets:\n    KEY:\n      aws_secrets_manager: app/key\n",
            ),
        ]);
        let loaded = load(&dir).expect("loads");
        assert_eq!(
            loaded.files,
            [".gitlab-ci.yml", "ci/vault.yml", "ci/aws.yml"]
        );
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let config = &loaded.config;
        assert!(config.job_names().contains(&"aws_job"));
        let deploy = config.job("deploy").expect("deploy");
        assert!(
            deploy.has_secrets(),
            "the job's secrets come from the included file"
        );
        assert_eq!(deploy.id_tokens()[0].name, "VAULT_ID_TOKEN");
        // Mappings merge deeply; the including file wins.
        assert_eq!(variable(config, "deploy", "STAGE").as_deref(), Some("main"));
        assert_eq!(
            variable(config, "deploy", "KEEP").as_deref(),
            Some("yes-kept")
        );
        assert_eq!(
            variable(config, "deploy", "VAULT_SERVER_URL").as_deref(),
            Some("https://main.example")
        );
        assert_eq!(
            variable(config, "deploy", "VAULT_AUTH_ROLE").as_deref(),
            Some("ci")
        );
    }

    #[test]
    fn nested_repeated_and_cyclic_includes_are_read_once() {
        let dir = repo(&[
            (".gitlab-ci.yml", "include: [a.yml, b.yml]\n"),
            ("a.yml", "include: b.yml\na_job:\n  script: [a]\n"),
            (
                "b.yml",
                "include: [a.yml, .gitlab-ci.yml]\nb_job:\n  script: [b]\n",
            ),
        ]);
        let loaded = load(&dir).expect("loads");
        assert_eq!(loaded.files, [".gitlab-ci.yml", "a.yml", "b.yml"]);
        assert_eq!(loaded.config.job_names(), ["b_job", "a_job"]);
    }

    #[test]
    fn includes_only_gitlab_can_fetch_are_reported_not_followed() {
        let dir = repo(&[(
            ".gitlab-ci.yml",
            "include:\n  - https://example.com/ci.yml\n  - project: group/templates\n    file: [/a.yml, /b.yml]\n  \
             - template: Auto-DevOps.gitlab-ci.yml\n  - component: gitlab.com/org/c@1.0\n  \
             - local: ci/*.yml\n  - local: $DIR/x.yml\njob:\n  script: [x]\n",
        )]);
        let loaded = load(&dir).expect("loads");
        assert_eq!(loaded.config.job_names(), ["job"]);
        let warnings = loaded.warnings.join("\n");
        for expected in [
            "remote: https://example.com/ci.yml",
            "project: group/templates file /a.yml, /b.yml",
            "template: Auto-DevOps.gitlab-ci.yml",
            "component: gitlab.com/org/c@1.0",
            "ci/*.yml is not followed",
            "$DIR/x.yml is not followed",
        ] {
            assert!(warnings.contains(expected), "{expected} in {warnings}");
        }
    }

    #[test]
    fn rules_on_a_local_include_are_followed_with_a_warning() {
        let dir = repo(&[
            (
                ".gitlab-ci.yml",
                "include:\n  - local: extra.yml\n    rules:\n      - if: $CI_COMMIT_TAG\n",
            ),
            ("extra.yml", "extra:\n  script: [x]\n"),
        ]);
        let loaded = load(&dir).expect("loads");
        assert_eq!(loaded.config.job_names(), ["extra"]);
        assert!(
            loaded.warnings[0].contains("`rules:` is not evaluated"),
            "{:?}",
            loaded.warnings
        );
    }

    #[test]
    fn bad_includes_fail_naming_the_file_and_the_include() {
        let cases = [
            ("include: ../outside.yml\n", "leaves the repository"),
            ("include: missing.yml\n", "cannot read"),
            ("include: notes.txt\n", "YAML extension"),
            ("include: broken.yml\n", "malformed"),
            ("include: 42\n", "include config should be"),
            ("include:\n  - file: x.yml\n", "needs one of local"),
        ];
        for (main, expected) in cases {
            let dir = repo(&[(".gitlab-ci.yml", main), ("broken.yml", "a: [")]);
            let err = load(&dir).expect_err(main).to_string();
            assert!(err.contains(expected), "{main}: {err}");
            if !main.contains("42") && !main.contains("file:") {
                assert!(
                    err.contains(".gitlab-ci.yml") || err.contains("broken.yml"),
                    "{err}"
                );
            }
        }
    }

    #[test]
    fn paths_resolve_inside_the_repository() {
        assert_eq!(lexical_relative("/ci/a.yml").as_deref(), Some("ci/a.yml"));
        assert_eq!(lexical_relative("./ci/../b.yml").as_deref(), Some("b.yml"));
        assert_eq!(lexical_relative("ci/../../b.yml"), None);
        assert_eq!(lexical_relative("/"), None);
    }
}
