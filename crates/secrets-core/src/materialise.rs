//! Resolved secrets as job variables (runner-semantics §3) and as private files.

use crate::error::{Error, ErrorKind};
use crate::payload::Secret;
use crate::private_file::{self, Existing};
use crate::value::SecretValue;
use crate::variables::JobVariable;
use std::fmt;
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

#[cfg(target_os = "linux")]
mod memory;
#[cfg(target_os = "linux")]
mod sweep;
#[cfg(target_os = "linux")]
pub use sweep::sweep_stale;

/// Where a process's file variables live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FileBacking {
    /// 0600 files in a private 0700 directory (see [`SecretFiles::create`]). Any process can
    /// open the path, but a process killed with SIGKILL leaves the directory behind until the
    /// next start sweeps it ([`sweep_stale`]).
    #[default]
    Directory,
    /// Linux only: sealed read-only anonymous memory files at `/proc/self/fd/N`, inherited by
    /// the child, gone with the processes however they end. Only processes that inherit the
    /// descriptor can open the path: not a program that closes inherited descriptors before
    /// starting others (Go's `os/exec`, Python's `subprocess`, `sudo`), nor another
    /// container or a daemon handed the path (`docker run -v "$FILE":...`).
    Memory,
}

/// Secret files, removed when dropped unless kept: 0600 files in a private directory, or
/// sealed memory files ([`FileBacking::Memory`]).
///
/// The directory is created 0700; each file 0600, exclusively (a pre-existing file or
/// symlink at the target is refused, never followed), written in full under a temporary name
/// and then linked into place atomically ([`crate::private_file::write`]).
pub struct SecretFiles {
    dir: PathBuf,
    owned_dir: Option<tempfile::TempDir>,
    written: Vec<PathBuf>,
    #[cfg(target_os = "linux")]
    memory: Option<Vec<memory::MemoryFile>>,
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
    /// A fresh 0700 directory in [`default_parent`], marked as this process's so that a later
    /// start can sweep it if this process is killed before removing it.
    pub fn create() -> Result<Self, Error> {
        Self::create_in(default_parent())
    }

    /// A fresh 0700 directory inside `parent`, marked as this process's.
    pub fn create_in(parent: impl AsRef<Path>) -> Result<Self, Error> {
        let parent = parent.as_ref();
        #[cfg(target_os = "linux")]
        let prefix = sweep::own_prefix();
        #[cfg(not(target_os = "linux"))]
        let prefix = "ci-secrets-".to_owned();
        let dir = private_file::temp_dir_in(parent, &prefix)
            .map_err(|e| io_error("creating a private directory", parent, e))?;
        Ok(Self {
            dir: dir.path().to_owned(),
            owned_dir: Some(dir),
            written: Vec::new(),
            #[cfg(target_os = "linux")]
            memory: None,
            keep: false,
        })
    }

    /// Sealed memory files instead of a directory ([`FileBacking::Memory`]); Linux only.
    pub fn in_memory() -> Result<Self, Error> {
        #[cfg(target_os = "linux")]
        return Ok(Self {
            dir: PathBuf::from("/proc/self/fd"),
            owned_dir: None,
            written: Vec::new(),
            memory: Some(Vec::new()),
            keep: false,
        });
        #[cfg(not(target_os = "linux"))]
        Err(Error::new(
            ErrorKind::InvalidConfig,
            "memory-backed file variables need Linux (memfd_create)",
        )
        .with_fix("use the directory backing"))
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
                private_file::create_dir(&dir)
                    .map_err(|e| io_error("creating the files directory", &dir, e))?;
            }
            Err(e) => return Err(io_error("inspecting the files directory", &dir, e)),
        }
        Ok(Self {
            dir,
            owned_dir: None,
            written: Vec::new(),
            #[cfg(target_os = "linux")]
            memory: None,
            keep: false,
        })
    }

    /// The directory (`/proc/self/fd` for memory files).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The files written so far.
    pub fn files(&self) -> &[PathBuf] {
        &self.written
    }

    /// Writes `value` to `<dir>/<key>` (0600, exclusive, atomic), or to a sealed memory file,
    /// and returns the path.
    pub fn write(&mut self, key: &str, value: &SecretValue) -> Result<PathBuf, Error> {
        if !is_safe_file_name(key) {
            return Err(Error::new(
                ErrorKind::InvalidSpec,
                "the name cannot be used as a file name (only letters, digits and `_`)",
            )
            .with_variable(key)
            .with_fix("rename the secret or set `file: false`"));
        }
        #[cfg(target_os = "linux")]
        if let Some(memory) = &mut self.memory {
            let file = memory::MemoryFile::create(key, value.expose().as_bytes()).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidConfig,
                    format!("creating a memory file: {e}"),
                )
                .with_variable(key)
                .with_fix("use the directory backing for file variables")
            })?;
            let path = file.path();
            memory.push(file);
            self.written.push(path.clone());
            return Ok(path);
        }
        let target = self.dir.join(key);
        private_file::write(&target, value.expose().as_bytes(), Existing::Refuse).map_err(|e| {
            let err = if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::new(
                    ErrorKind::InvalidConfig,
                    format!(
                        "{} already exists; refusing to replace or follow it",
                        target.display()
                    ),
                )
                .with_fix("use a fresh --files-dir, or remove the file")
            } else {
                io_error("writing", &target, e)
            };
            err.with_variable(key)
        })?;
        self.written.push(target.clone());
        Ok(target)
    }

    /// Keeps the files and the directory; returns the directory. Memory files stay open until
    /// the process exits.
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        if let Some(dir) = self.owned_dir.take() {
            let _ = dir.keep();
        }
        #[cfg(target_os = "linux")]
        if let Some(memory) = self.memory.take() {
            std::mem::forget(memory);
        }
        self.dir.clone()
    }

    /// Removes the files (and the directory, when this created it) now.
    pub fn cleanup(mut self) {
        self.remove_all();
    }

    fn remove_all(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(memory) = &mut self.memory {
            memory.clear();
            self.written.clear();
            return;
        }
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

/// Where [`SecretFiles::create`] makes its directory: `$XDG_RUNTIME_DIR` (a per-user tmpfs,
/// emptied at logout) when it is set to a private directory of this user, else the system
/// temporary directory (`$TMPDIR`).
pub fn default_parent() -> PathBuf {
    if let Some(dir) = crate::Environment::capture()
        .non_empty("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        && dir.is_absolute()
        && is_private_dir_of_ours(&dir)
    {
        return dir;
    }
    std::env::temp_dir()
}

/// The start-up sweep: removes this tool's stale directories ([`sweep_stale`]) from every
/// place [`SecretFiles::create`] may use. Returns those removed.
pub fn sweep_default_parents() -> Vec<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        let mut parents = vec![default_parent(), std::env::temp_dir()];
        parents.dedup();
        parents.iter().flat_map(|p| sweep_stale(p)).collect()
    }
    #[cfg(not(target_os = "linux"))]
    Vec::new()
}

#[cfg(unix)]
fn is_private_dir_of_ours(dir: &Path) -> bool {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::symlink_metadata(dir).is_ok_and(|m| {
        m.is_dir()
            && m.uid() == nix::unistd::geteuid().as_raw()
            && m.permissions().mode() & 0o077 == 0
    })
}

#[cfg(not(unix))]
fn is_private_dir_of_ours(_: &Path) -> bool {
    false
}

fn io_error(action: &str, path: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        format!("{action} {}: {e}", path.display()),
    )
}

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
    fn created_directories_are_marked_as_ours() {
        let parent = tempfile::tempdir().unwrap();
        let files = SecretFiles::create_in(parent.path()).unwrap();
        let name = files
            .dir()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let pid = std::process::id();
        #[cfg(target_os = "linux")]
        assert!(name.starts_with(&format!("ci-secrets-p{pid}s")), "{name}");
        assert!(sweep_default_parents().iter().all(|p| p != files.dir()));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn memory_files_leave_nothing_on_disk() {
        let mut files = SecretFiles::in_memory().unwrap();
        let path = files
            .write("CERT", &SecretValue::new("canary-mem"))
            .unwrap();
        assert!(path.starts_with("/proc/self/fd/"), "{}", path.display());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "canary-mem");
        assert!(files.write("../x", &SecretValue::new("v")).is_err());
        drop(files);
        assert!(
            std::fs::read_to_string(&path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
                || std::fs::read_to_string(&path).is_ok_and(|t| t != "canary-mem")
        );
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
