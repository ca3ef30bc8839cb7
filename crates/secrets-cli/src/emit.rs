//! Where rendered output goes: stdout, a private file (`--output`), or `$GITHUB_ENV`.

use crate::env::ProcessEnv;
use crate::input::CliError;
use crate::output::Rendered;
use std::path::Path;
use zeroize::Zeroizing;

/// Prints `rendered`, or writes it to `output` (0600, written then renamed into place); the
/// `github` format's environment part goes to `$GITHUB_ENV` when it is set and there is no
/// `output`.
pub fn emit(rendered: &Rendered, output: Option<&Path>, env: &ProcessEnv) -> Result<(), CliError> {
    if let Some(env_part) = &rendered.github_env {
        match (output, env.get("GITHUB_ENV")) {
            (None, Some(github_env)) => {
                append_file(Path::new(github_env), env_part)?;
                print!("{}", *rendered.main);
            }
            (Some(path), _) => write_private(
                path,
                &Zeroizing::new(format!("{}{}", *rendered.main, **env_part)),
            )?,
            (None, None) => print!("{}{}", *rendered.main, **env_part),
        }
    } else {
        match output {
            Some(path) => write_private(path, &rendered.main)?,
            None => print!("{}", *rendered.main),
        }
    }
    Ok(())
}

/// Writes `text` to `path` with mode 0600 through the shared private-file writer.
pub fn write_private(path: &Path, text: &str) -> Result<(), CliError> {
    use secrets_core::private_file::{Existing, write};
    write(path, text.as_bytes(), Existing::Replace)
        .map_err(|e| CliError::config(format!("writing {}: {e}", path.display())))
}

/// Appends `text` to `path` (for `$GITHUB_ENV`), creating it 0600.
pub fn append_file(path: &Path, text: &str) -> Result<(), CliError> {
    secrets_core::private_file::append(path, text.as_bytes())
        .map_err(|e| CliError::config(format!("appending to {}: {e}", path.display())))
}
