//! The job's variables and the runner's lookup rules.

use crate::payload::null_as_default;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

/// One entry of the job payload's `variables` list.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobVariable {
    /// The name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub key: String,
    /// The value (for file-type variables, the file's contents).
    #[serde(default, deserialize_with = "null_as_default")]
    pub value: String,
    /// Whether the value may be shown.
    #[serde(default, deserialize_with = "null_as_default")]
    pub public: bool,
    /// Whether the value is masked in job logs.
    #[serde(default, deserialize_with = "null_as_default")]
    pub masked: bool,
    /// Whether `$` references in the value are left unexpanded.
    #[serde(default, deserialize_with = "null_as_default")]
    pub raw: bool,
    /// Whether the variable is file-type: the environment holds a path to the value.
    #[serde(default, deserialize_with = "null_as_default")]
    pub file: bool,
}

impl JobVariable {
    /// A plain (non-file, public, unmasked) variable.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            public: true,
            ..Self::default()
        }
    }
}

impl fmt::Debug for JobVariable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("JobVariable");
        d.field("key", &self.key);
        if self.public && !self.masked {
            d.field("value", &self.value);
        } else {
            d.field("value", &crate::redact::Redacted(Some(&self.value)));
        }
        d.field("public", &self.public)
            .field("masked", &self.masked)
            .field("raw", &self.raw)
            .field("file", &self.file)
            .finish()
    }
}

/// The job's variables with the runner's lookup rules: the last definition of a name wins,
/// and a file-type variable reads as the path of its file.
#[derive(Debug, Clone, Default)]
pub struct Variables {
    list: Vec<JobVariable>,
    file_dir: Option<PathBuf>,
}

impl Variables {
    /// Wraps a list in payload order.
    pub fn new(list: Vec<JobVariable>) -> Self {
        Self {
            list,
            file_dir: None,
        }
    }

    /// Sets the directory file-type variables are written to; their lookups return
    /// `<dir>/<KEY>`. Without it, `$RUNNER_TEMP_PROJECT_DIR` from the variables is used, then
    /// `$CI_PROJECT_DIR.tmp`, as the runner lays out its builds.
    pub fn with_file_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.file_dir = Some(dir.into());
        self
    }

    /// Appends a variable; it overrides earlier ones of the same name.
    pub fn push(&mut self, variable: JobVariable) {
        self.list.push(variable);
    }

    /// The variables in order.
    pub fn as_slice(&self) -> &[JobVariable] {
        &self.list
    }

    /// The variable a lookup of `key` finds: the last one with that name.
    pub fn find(&self, key: &str) -> Option<&JobVariable> {
        self.list.iter().rev().find(|v| v.key == key)
    }

    /// The value a job sees for `key`: the value, or the file path for file-type variables.
    pub fn get(&self, key: &str) -> Option<Cow<'_, str>> {
        let var = self.find(key)?;
        if !var.file {
            return Some(Cow::Borrowed(&var.value));
        }
        Some(Cow::Owned(
            self.file_path(&var.key).to_string_lossy().into_owned(),
        ))
    }

    /// Where a file-type variable named `key` lives.
    pub fn file_path(&self, key: &str) -> PathBuf {
        self.file_dir().join(key)
    }

    fn file_dir(&self) -> PathBuf {
        if let Some(dir) = &self.file_dir {
            return dir.clone();
        }
        if let Some(dir) = self
            .plain("RUNNER_TEMP_PROJECT_DIR")
            .filter(|d| !d.is_empty())
        {
            return PathBuf::from(dir);
        }
        let project = self.plain("CI_PROJECT_DIR").unwrap_or_default();
        PathBuf::from(format!("{project}.tmp"))
    }

    fn plain(&self, key: &str) -> Option<&str> {
        self.find(key).map(|v| v.value.as_str())
    }

    /// Expands `$NAME` and `${NAME}` in `input` with these variables (Go `os.Expand` with the
    /// runner's lookup: `$$` is `$`, the shell's special parameters are empty).
    pub fn expand(&self, input: &str) -> String {
        crate::expand::expand_with(input, |name| self.get(name).map(Cow::into_owned))
    }

    /// The variables as the runner sees them (`GetAllVariables`): each value not marked raw
    /// expanded once against these variables. Secret fields, feature flags and
    /// `SECRETS_RETRIEVAL_ATTEMPTS` are read from this list.
    pub fn expanded(&self) -> Self {
        let list = self
            .list
            .iter()
            .map(|v| {
                let mut v = v.clone();
                if !v.raw {
                    v.value = self.expand(&v.value);
                }
                v
            })
            .collect();
        Self {
            list,
            file_dir: self.file_dir.clone(),
        }
    }

    /// The file directory, if one was set explicitly.
    pub fn explicit_file_dir(&self) -> Option<&Path> {
        self.file_dir.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_definition_wins_and_files_read_as_paths() {
        let mut vars = Variables::new(vec![
            JobVariable::new("A", "first"),
            JobVariable::new("A", "second"),
            JobVariable {
                key: "CERT".into(),
                value: "-----BEGIN".into(),
                file: true,
                ..JobVariable::default()
            },
            JobVariable::new("CI_PROJECT_DIR", "/builds/group/project"),
        ]);
        assert_eq!(vars.get("A").as_deref(), Some("second"));
        assert_eq!(
            vars.get("CERT").as_deref(),
            Some("/builds/group/project.tmp/CERT")
        );
        vars.push(JobVariable::new("RUNNER_TEMP_PROJECT_DIR", "/tmp/x"));
        assert_eq!(vars.get("CERT").as_deref(), Some("/tmp/x/CERT"));
        let vars = vars.with_file_dir("/secrets");
        assert_eq!(vars.get("CERT").as_deref(), Some("/secrets/CERT"));
        assert_eq!(vars.get("MISSING"), None);
        assert_eq!(vars.expand("${A}-$CERT-$MISSING"), "second-/secrets/CERT-");
    }

    #[test]
    fn debug_hides_masked_values() {
        let var = JobVariable {
            key: "TOKEN".into(),
            value: "canary-value".into(),
            masked: true,
            ..JobVariable::default()
        };
        assert!(!format!("{var:?}").contains("canary"));
        let public = JobVariable::new("CI_JOB_ID", "1001");
        assert!(format!("{public:?}").contains("1001"));
    }
}
