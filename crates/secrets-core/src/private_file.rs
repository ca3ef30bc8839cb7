//! The one writer of private files in the workspace: 0600 files, created exclusively under a
//! temporary name, written in full, synced and then put in place atomically, never through a
//! symlink; and 0700 directories.
//!
//! Secret files ([`crate::materialise::SecretFiles`]), the CLI's `--output` and `$GITHUB_ENV`
//! and the xtask's state files all go through here.

use std::io::{self, Write};
use std::path::Path;

/// What [`write()`] does when something already exists at the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Existing {
    /// Refuse with [`io::ErrorKind::AlreadyExists`]: the target is neither replaced nor
    /// followed.
    Refuse,
    /// Replace a regular file atomically; a symlink at the target is refused, not followed.
    Replace,
}

/// Writes `bytes` to `path` as a 0600 file. The bytes go to a fresh temporary file in the same
/// directory first, so `path` never shows a partial file and nothing is left on failure.
pub fn write(path: &Path, bytes: &[u8], existing: Existing) -> io::Result<()> {
    if existing == Existing::Replace {
        refuse_symlink(path)?;
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".ci-secrets-")
        .permissions(file_permissions())
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    match existing {
        Existing::Refuse => tmp.persist_noclobber(path),
        Existing::Replace => tmp.persist(path),
    }
    .map(drop)
    .map_err(|e| e.error)
}

/// Appends `bytes` to `path` in one write (`O_APPEND`), creating it 0600 when missing; a
/// symlink at `path` is refused (`O_NOFOLLOW`). For files another process owns and reads,
/// such as `$GITHUB_ENV`.
pub fn append(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options
            .mode(0o600)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits());
    }
    #[cfg(not(unix))]
    refuse_symlink(path)?;
    options.open(path)?.write_all(bytes)
}

/// Creates `dir` (and missing parents) 0700.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// A fresh 0700 directory in `parent` named `prefix` and a random suffix, removed on drop.
pub fn temp_dir_in(parent: &Path, prefix: &str) -> io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(dir_permissions())
        .tempdir_in(parent)
}

fn refuse_symlink(path: &Path) -> io::Result<()> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is a symlink; refusing to follow it",
        ));
    }
    Ok(())
}

#[cfg(unix)]
fn dir_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o700)
}

#[cfg(unix)]
fn file_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o600)
}

#[cfg(not(unix))]
fn dir_permissions() -> std::fs::Permissions {
    std::fs::metadata(std::env::temp_dir())
        .map(|m| m.permissions())
        .unwrap_or_else(|_| unreachable!("the temporary directory exists"))
}

#[cfg(not(unix))]
fn file_permissions() -> std::fs::Permissions {
    dir_permissions()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn write_is_private_atomic_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        write(&path, b"one", Existing::Refuse).unwrap();
        assert_eq!(mode(&path), 0o600);
        let err = write(&path, b"two", Existing::Refuse).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"one");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&path, b"three", Existing::Replace).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"three");
        assert_eq!(mode(&path), 0o600, "a replaced file is 0600 again");
        assert_eq!(names(dir.path()), ["out"]);
    }

    #[test]
    fn symlinks_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        for existing in [Existing::Refuse, Existing::Replace] {
            assert!(write(&link, b"x", existing).is_err(), "{existing:?}");
        }
        assert!(append(&link, b"x").is_err());
        assert!(!outside.exists());
        assert_eq!(names(dir.path()), ["link"], "no temporary left");
    }

    #[test]
    fn append_creates_0600_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env");
        append(&path, b"a\n").unwrap();
        append(&path, b"b\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"a\nb\n");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn directories_are_0700() {
        let parent = tempfile::tempdir().unwrap();
        let nested = parent.path().join("a/b");
        create_dir(&nested).unwrap();
        assert_eq!(mode(&nested), 0o700);
        let tmp = temp_dir_in(parent.path(), "p-").unwrap();
        assert_eq!(mode(tmp.path()), 0o700);
    }
}
