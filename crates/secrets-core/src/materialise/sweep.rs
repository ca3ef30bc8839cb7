//! Ownership marks on the private directories, and the start-up sweep of stale ones.
//!
//! A directory made by [`super::SecretFiles::create`] is named
//! `ci-secrets-p<pid>s<start>-<random>`, where `<start>` is the owning process's start time
//! (`/proc/<pid>/stat`, clock ticks since boot), so a reused pid is told apart. The sweep
//! removes only directories that carry such a mark, belong to this user, are mode 0700 and
//! not a symlink, and whose owner is gone; anything else is left alone.

use std::path::{Path, PathBuf};

/// The prefix of every marked directory.
const MARKED: &str = "ci-secrets-p";

/// The name prefix for a directory owned by this process.
pub(super) fn own_prefix() -> String {
    let pid = std::process::id();
    format!("{MARKED}{pid}s{}-", start_time(pid).unwrap_or(0))
}

/// The owner a directory name marks: pid and start time.
fn owner(name: &str) -> Option<(u32, u64)> {
    let rest = name.strip_prefix(MARKED)?;
    let (pid, rest) = rest.split_once('s')?;
    let (start, _random) = rest.split_once('-')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(pid) || !all_digits(start) {
        return None;
    }
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`), or `None` when there
/// is no such process.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or `)`.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process that made a directory is gone (or its pid now names another process).
fn owner_gone(pid: u32, start: u64) -> bool {
    match start_time(pid) {
        // Present but unreadable is not proof of absence.
        None => !Path::new(&format!("/proc/{pid}")).exists(),
        Some(now) => now != start,
    }
}

/// Removes the stale private directories in `parent` (see the module docs); returns those
/// removed. Errors are logged and skipped: a sweep never fails the run.
pub fn sweep_stale(parent: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    // Without /proc no owner can be proved gone.
    if !Path::new("/proc/self/stat").exists() {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let uid = nix::unistd::geteuid().as_raw();
    let mut removed = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some((pid, start)) = name.to_str().and_then(owner) else {
            continue;
        };
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let ours = meta.is_dir() && meta.uid() == uid && meta.permissions().mode() & 0o777 == 0o700;
        if !ours || !owner_gone(pid, start) {
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), pid, "removed a stale secrets directory");
                removed.push(path);
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a stale secrets directory");
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn private_dir(parent: &Path, name: &str) -> PathBuf {
        let dir = parent.join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(dir.join("SECRET"), "canary").unwrap();
        dir
    }

    #[test]
    fn names_carry_the_owner() {
        let prefix = own_prefix();
        let (pid, start) = owner(&format!("{prefix}Ab12Cd")).unwrap();
        assert_eq!(pid, std::process::id());
        assert_eq!(Some(start), start_time(pid));
        assert!(start > 0);
        for bad in [
            "ci-secrets-abc",
            "ci-secrets-p12-x",
            "ci-secrets-ps1-x",
            "ci-secrets-p1s-x",
            "ci-secrets-p1x2s3-x",
            "other-p1s2-x",
        ] {
            assert_eq!(owner(bad), None, "{bad}");
        }
    }

    #[test]
    fn sweeps_only_provably_stale_directories_of_ours() {
        let parent = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let my_start = start_time(me).unwrap();
        // A pid far above any pid_max: no such process.
        let gone = private_dir(parent.path(), "ci-secrets-p999999999s5-aaaaaa");
        // Our pid with another start time: the pid was reused, the owner is gone.
        let reused = private_dir(
            parent.path(),
            &format!("ci-secrets-p{me}s{}-bbbbbb", my_start + 1),
        );
        let alive = private_dir(
            parent.path(),
            &format!("ci-secrets-p{me}s{my_start}-cccccc"),
        );
        let unmarked = private_dir(parent.path(), "ci-secrets-dddddd");
        let shared = private_dir(parent.path(), "ci-secrets-p999999999s5-eeeeee");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = parent.path().join("ci-secrets-p999999999s5-ffffff");
        std::fs::write(&file, "not a directory").unwrap();
        let target = private_dir(parent.path(), "target");
        let link = parent.path().join("ci-secrets-p999999999s5-gggggg");
        std::os::unix::fs::symlink(&target, &link).unwrap();

        let mut removed = sweep_stale(parent.path());
        removed.sort();
        let mut expected = vec![gone.clone(), reused.clone()];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(!gone.exists() && !reused.exists());
        for kept in [&alive, &unmarked, &shared, &file, &target] {
            assert!(kept.exists(), "{} is kept", kept.display());
        }
        assert!(target.join("SECRET").exists(), "a symlink is not followed");
        assert!(std::fs::symlink_metadata(&link).is_ok());
    }
}
