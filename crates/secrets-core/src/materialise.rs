//! Resolved secrets as job variables (runner-semantics §3) and as private files.

use crate::error::{Error, ErrorKind};
use crate::payload::Secret;
use crate::value::SecretValue;
use crate::variables::JobVariable;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A resolved secret as the runner turns it into a variable: `File` as the secret says
/// (default true), `Masked` and `Raw` always true, never public.
#[derive(Debug)]
pub struct SecretVariable {
    /// The variable name (the key under `secrets:`).
    pub key: String,
    /// The value.
    pub value: SecretValue,
    /// Whether the variable is file-type.
    pub file: bool,
    /// Whether the value joins the log masker's list (always true, as in the runner).
    pub masked: bool,
    /// Whether `$` in the value is left alone (always true, as in the runner).
    pub raw: bool,
}

impl SecretVariable {
    /// The variable the runner makes of `secret` resolved to `value`.
    pub fn new(key: impl Into<String>, secret: &Secret, value: SecretValue) -> Self {
        Self {
            key: key.into(),
            value,
            file: secret.is_file(),
            masked: true,
            raw: true,
        }
    }

    /// The runner's variable, value included. Use only where the value leaves the process.
    pub fn to_job_variable(&self) -> JobVariable {
        JobVariable {
            key: self.key.clone(),
            value: self.value.expose().to_owned(),
            public: false,
            masked: self.masked,
            raw: self.raw,
            file: self.file,
        }
    }
}

/// The variable list the runner hands to the executor: the job's variables, then the secrets.
/// Lookups take the last definition, so a secret overrides a job variable of the same name.
pub fn runner_variables(job: &[JobVariable], secrets: &[SecretVariable]) -> Vec<JobVariable> {
    job.iter()
        .cloned()
        .chain(secrets.iter().map(SecretVariable::to_job_variable))
        .collect()
}

/// Whether `key` can name a file in the secrets directory: a variable name made of ASCII
/// letters, digits and `_`, so nothing can escape the directory.
pub fn is_safe_file_name(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 255
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A private directory of secret files, removed (files and all) when dropped unless kept.
///
/// The directory is created 0700; each file 0600, exclusively (a pre-existing file or
/// symlink at the target is refused, never followed), written in full under a temporary name
/// and then linked into place atomically.
pub struct SecretFiles {
    dir: PathBuf,
    owned_dir: Option<tempfile::TempDir>,
    written: Vec<PathBuf>,
    keep: bool,
}

impl fmt::Debug for SecretFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretFiles")
            .field("dir", &self.dir)
            .field("files", &self.written.len())
            .field("keep", &self.keep)
            .finish()
    }
}

impl SecretFiles {
    /// A fresh 0700 directory under the system temporary directory.
    pub fn create() -> Result<Self, Error> {
        Self::create_in(std::env::temp_dir())
    }

    /// A fresh 0700 directory inside `parent`.
    pub fn create_in(parent: impl AsRef<Path>) -> Result<Self, Error> {
        let parent = parent.as_ref();
        let dir = tempfile::Builder::new()
            .prefix("ci-secrets-")
            .permissions(private_dir_permissions())
            .tempdir_in(parent)
            .map_err(|e| io_error("creating a private directory", parent, e))?;
        Ok(Self {
            dir: dir.path().to_owned(),
            owned_dir: Some(dir),
            written: Vec::new(),
            keep: false,
        })
    }

    /// Uses `dir`, creating it 0700 when missing. An existing directory must not be a symlink
    /// nor writable by group or others. Only the files written here are removed on drop.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        match std::fs::symlink_metadata(&dir) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    format!(
                        "the files directory {} is a symlink; refusing to follow it",
                        dir.display()
                    ),
                ));
            }
            Ok(meta) if !meta.is_dir() => {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    format!("the files directory {} is not a directory", dir.display()),
                ));
            }
            Ok(meta) => check_private(&dir, &meta)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut builder = std::fs::DirBuilder::new();
                builder.recursive(true);
                set_private_mode(&mut builder);
                builder
                    .create(&dir)
                    .map_err(|e| io_error("creating the files directory", &dir, e))?;
            }
            Err(e) => return Err(io_error("inspecting the files directory", &dir, e)),
        }
        Ok(Self {
            dir,
            owned_dir: None,
            written: Vec::new(),
            keep: false,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The files written so far.
    pub fn files(&self) -> &[PathBuf] {
        &self.written
    }

    /// Writes `value` to `<dir>/<key>` (0600, exclusive, atomic) and returns the path.
    pub fn write(&mut self, key: &str, value: &SecretValue) -> Result<PathBuf, Error> {
        if !is_safe_file_name(key) {
            return Err(Error::new(
                ErrorKind::InvalidSpec,
                "the name cannot be used as a file name (only letters, digits and `_`)",
            )
            .with_variable(key)
            .with_fix("rename the secret or set `file: false`"));
        }
        let target = self.dir.join(key);
        let mut tmp = tempfile::Builder::new()
            .prefix(".ci-secrets-")
            .permissions(private_file_permissions())
            .tempfile_in(&self.dir)
            .map_err(|e| io_error("creating a file", &self.dir, e).with_variable(key))?;
        tmp.write_all(value.expose().as_bytes())
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| io_error("writing", &target, e).with_variable(key))?;
        tmp.persist_noclobber(&target).map_err(|e| {
            let err = if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                Error::new(
                    ErrorKind::InvalidConfig,
                    format!(
                        "{} already exists; refusing to replace or follow it",
                        target.display()
                    ),
                )
                .with_fix("use a fresh --files-dir, or remove the file")
            } else {
                io_error("placing", &target, e.error)
            };
            err.with_variable(key)
        })?;
        self.written.push(target.clone());
        Ok(target)
    }

    /// Keeps the files and the directory; returns the directory.
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        if let Some(dir) = self.owned_dir.take() {
            let _ = dir.keep();
        }
        self.dir.clone()
    }

    /// Removes the files (and the directory, when this created it) now.
    pub fn cleanup(mut self) {
        self.remove_all();
    }

    fn remove_all(&mut self) {
        for file in self.written.drain(..) {
            if let Err(e) = std::fs::remove_file(&file)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %file.display(), error = %e, "could not remove a secret file");
            }
        }
        if let Some(dir) = self.owned_dir.take()
            && let Err(e) = dir.close()
        {
            tracing::warn!(error = %e, "could not remove the secrets directory");
        }
    }
}

impl Drop for SecretFiles {
    fn drop(&mut self) {
        if !self.keep {
            self.remove_all();
        }
    }
}

fn io_error(action: &str, path: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        format!("{action} {}: {e}", path.display()),
    )
}

#[cfg(unix)]
fn private_dir_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o700)
}

#[cfg(unix)]
fn private_file_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o600)
}

#[cfg(not(unix))]
fn private_dir_permissions() -> std::fs::Permissions {
    std::fs::metadata(std::env::temp_dir())
        .map(|m| m.permissions())
        .unwrap_or_else(|_| unreachable!("the temporary directory exists"))
}

#[cfg(not(unix))]
fn private_file_permissions() -> std::fs::Permissions {
    private_dir_permissions()
}

#[cfg(unix)]
fn set_private_mode(builder: &mut std::fs::DirBuilder) {
    use std::os::unix::fs::DirBuilderExt;
    builder.mode(0o700);
}

#[cfg(not(unix))]
fn set_private_mode(_: &mut std::fs::DirBuilder) {}

#[cfg(unix)]
fn check_private(dir: &Path, meta: &std::fs::Metadata) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            format!(
                "the files directory {} is writable by group or others",
                dir.display()
            ),
        )
        .with_fix("use a private directory (chmod 700) or omit --files-dir"));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path, _: &std::fs::Metadata) -> Result<(), Error> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_are_private_and_removed_on_drop() {
        let parent = tempfile::tempdir().unwrap();
        let mut files = SecretFiles::create_in(parent.path()).unwrap();
        let dir = files.dir().to_owned();
        assert_eq!(mode(&dir), 0o700);
        let path = files
            .write("DB_PASSWORD", &SecretValue::new("canary\nline"))
            .unwrap();
        assert_eq!(path, dir.join("DB_PASSWORD"));
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "canary\nline");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary left"
        );
        drop(files);
        assert!(!dir.exists());
    }

    #[test]
    fn keep_leaves_everything_in_place() {
        let parent = tempfile::tempdir().unwrap();
        let mut files = SecretFiles::create_in(parent.path()).unwrap();
        let path = files.write("A", &SecretValue::new("x")).unwrap();
        let dir = files.keep();
        assert!(path.exists());
        assert!(dir.exists());
    }

    #[test]
    fn refuses_existing_files_symlinks_and_escaping_names() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("given");
        let mut files = SecretFiles::in_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        std::fs::write(dir.join("EXISTING"), "old").unwrap();
        let outside = parent.path().join("outside");
        std::os::unix::fs::symlink(&outside, dir.join("LINK")).unwrap();

        let err = files
            .write("EXISTING", &SecretValue::new("new"))
            .unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.join("EXISTING")).unwrap(),
            "old"
        );
        let err = files.write("LINK", &SecretValue::new("new")).unwrap_err();
        assert!(err.to_string().starts_with("LINK"), "{err}");
        assert!(!outside.exists(), "the symlink was not followed");
        for bad in ["../x", "a/b", ".", "..", "", "A-B"] {
            let err = files.write(bad, &SecretValue::new("v")).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidSpec, "{bad}");
        }
        files.write("OK_1", &SecretValue::new("v")).unwrap();
        drop(files);
        assert!(dir.exists(), "a given directory stays");
        assert!(!dir.join("OK_1").exists(), "but our files go");
        assert!(dir.join("EXISTING").exists(), "and other files stay");
    }

    #[test]
    fn refuses_shared_or_symlinked_directories() {
        let parent = tempfile::tempdir().unwrap();
        let shared = parent.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(
            SecretFiles::in_dir(&shared)
                .unwrap_err()
                .to_string()
                .contains("writable by group")
        );
        let link = parent.path().join("link");
        std::os::unix::fs::symlink(parent.path(), &link).unwrap();
        assert!(
            SecretFiles::in_dir(&link)
                .unwrap_err()
                .to_string()
                .contains("symlink")
        );
    }

    #[test]
    fn runner_variables_append_secrets_last() {
        let job = vec![
            JobVariable::new("DB_PASSWORD", "from-ci"),
            JobVariable::new("OTHER", "o"),
        ];
        let secret = Secret {
            file: Some(false),
            ..Secret::default()
        };
        let secrets = vec![
            SecretVariable::new("DB_PASSWORD", &secret, SecretValue::new("from-vault")),
            SecretVariable::new("CERT", &Secret::default(), SecretValue::new("pem")),
        ];
        let all = runner_variables(&job, &secrets);
        let vars = crate::Variables::new(all.clone());
        assert_eq!(vars.get("DB_PASSWORD").as_deref(), Some("from-vault"));
        let cert = vars.find("CERT").unwrap();
        assert!(cert.file && cert.masked && cert.raw && !cert.public);
        let db = vars.find("DB_PASSWORD").unwrap();
        assert!(!db.file && db.masked && db.raw);
        assert_eq!(all.len(), 4);
    }
}
