//! File variables without a file on disk (Linux): each value in an anonymous memory file
//! (`memfd_create`), sealed read-only, reached by the child at `/proc/self/fd/N` through a
//! descriptor it inherits. The memory goes with the last process holding the descriptor,
//! however it ends (SIGKILL and OOM kills included).

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

/// One sealed memory file; closed (and freed, once the child has gone too) on drop.
pub(super) struct MemoryFile {
    fd: OwnedFd,
}

impl MemoryFile {
    /// A memory file named after `key` holding `bytes`: mode 0400, sealed against writes,
    /// growth, shrinking and new seals, open read-only at offset 0 on a descriptor that
    /// survives `exec` (no `FD_CLOEXEC`), so the child inherits it.
    pub(super) fn create(key: &str, bytes: &[u8]) -> io::Result<Self> {
        use nix::fcntl::{FcntlArg, FdFlag, OFlag, SealFlag, fcntl};
        use nix::sys::memfd::{MFdFlags, memfd_create};
        use nix::sys::stat::{Mode, fchmod};

        let writable = memfd_create(
            format!("ci-secrets-{key}").as_str(),
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )?;
        let mut file = std::fs::File::from(writable);
        file.write_all(bytes)?;
        fchmod(&file, Mode::S_IRUSR)?;
        fcntl(
            &file,
            FcntlArg::F_ADD_SEALS(
                SealFlag::F_SEAL_WRITE
                    | SealFlag::F_SEAL_GROW
                    | SealFlag::F_SEAL_SHRINK
                    | SealFlag::F_SEAL_SEAL,
            ),
        )?;
        // A read-only description of its own, at offset 0: the child cannot write through
        // it, and reading the inherited descriptor directly starts at the beginning.
        let fd = nix::fcntl::open(
            format!("/proc/self/fd/{}", file.as_raw_fd()).as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        drop(file);
        fcntl(&fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
        Ok(Self { fd })
    }

    /// The path the child opens: its own copy of the descriptor.
    pub(super) fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn sealed_read_only_and_inheritable() {
        let file = MemoryFile::create("CERT", b"canary-memory").unwrap();
        let path = file.path();
        assert!(path.starts_with("/proc/self/fd"));
        assert_eq!(std::fs::read(&path).unwrap(), b"canary-memory");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o400);
        let flags = nix::fcntl::fcntl(&file.fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_eq!(flags & nix::libc::FD_CLOEXEC, 0, "the child inherits it");
        let seals = nix::fcntl::fcntl(&file.fd, nix::fcntl::FcntlArg::F_GET_SEALS).unwrap();
        assert_ne!(seals & nix::libc::F_SEAL_WRITE, 0);
        // Even a writable re-open cannot change it.
        let mut perms = meta.permissions();
        perms.set_mode(0o600);
        std::fs::set_permissions(&path, perms).unwrap();
        if let Ok(mut reopened) = std::fs::OpenOptions::new().write(true).open(&path) {
            assert!(reopened.write_all(b"x").is_err(), "sealed against writes");
        }
        assert_eq!(std::fs::read(&path).unwrap(), b"canary-memory");
    }
}
