//! Where `exec` puts file-type variables, as the user chose.

use crate::input::CliError;
use clap::ValueEnum;
use secrets_core::materialise::SecretFiles;

/// `--file-backing`: where `exec` keeps file-type variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum FileBacking {
    /// 0600 files in a private 0700 directory under `$XDG_RUNTIME_DIR` or `$TMPDIR`, removed
    /// when the command exits; if `ci-secrets` is killed (SIGKILL), the next start removes it.
    #[default]
    Dir,
    /// Linux: sealed read-only memory files at `/proc/self/fd/N`, gone with the processes
    /// however they end; only for programs that open the path themselves or pass their
    /// descriptors on (not Go or Python programs that start others, `sudo`, or a path handed
    /// to another container).
    Memory,
}

impl FileBacking {
    /// The sink `exec` writes file variables into: `None` for a directory, made on the first
    /// file variable.
    pub fn sink(self) -> Result<Option<SecretFiles>, CliError> {
        Ok(match self {
            Self::Dir => None,
            Self::Memory => Some(SecretFiles::in_memory()?),
        })
    }
}
