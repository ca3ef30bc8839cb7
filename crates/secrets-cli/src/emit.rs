//! Where rendered output goes: stdout, a private file (`--output`), or `$GITHUB_ENV`.

use crate::env::ProcessEnv;
use crate::input::CliError;
use crate::output::Rendered;
use std::io::Write;
use std::path::Path;

/// Prints `rendered`, or writes it to `output` (0600); the `github` format's environment part
/// goes to `$GITHUB_ENV` when it is set and there is no `output`.
pub fn emit(rendered: &Rendered, output: Option<&Path>, env: &ProcessEnv) -> Result<(), CliError> {
    if let Some(env_part) = &rendered.github_env {
        match (output, env.get("GITHUB_ENV")) {
            (None, Some(github_env)) => {
                append_file(Path::new(github_env), env_part)?;
                print!("{}", rendered.main);
            }
            (Some(path), _) => write_private(path, &format!("{}{env_part}", rendered.main))?,
            (None, None) => print!("{}{env_part}", rendered.main),
        }
    } else {
        match output {
            Some(path) => write_private(path, &rendered.main)?,
            None => print!("{}", rendered.main),
        }
    }
    Ok(())
}

/// Writes `text` to `path` with mode 0600: a new file created exclusively beside it, written,
/// then renamed over `path`, so a reader never sees a partial file and an existing file's
/// wider mode is not kept. A symlink at `path` is refused; a device or pipe is written as is.
pub fn write_private(path: &Path, text: &str) -> Result<(), CliError> {
    use std::os::unix::fs::OpenOptionsExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(CliError::config(format!(
            "{} is a symlink; refusing to follow it",
            path.display()
        )));
    }
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        // A device or a pipe (`--output /dev/stdout`): written in place, nothing to rename.
        return std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| CliError::config(format!("writing {}: {e}", path.display())));
    }
    let name = path
        .file_name()
        .ok_or_else(|| CliError::config(format!("{} is not a file name", path.display())))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CliError::config(format!("writing {}: {e}", path.display()))
    })
}

/// Appends `text` to `path` (for `$GITHUB_ENV`).
pub fn append_file(path: &Path, text: &str) -> Result<(), CliError> {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| CliError::config(format!("appending to {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .map_err(|e| CliError::internal(format!("appending to {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_files_replace_a_wider_file_with_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".ci-secrets");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, "A=1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "A=1\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(write_private(&link, "x").is_err());
        write_private(Path::new("/dev/null"), "x").unwrap();
    }
}
