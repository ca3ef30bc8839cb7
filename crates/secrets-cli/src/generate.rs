//! `ci-secrets completions SHELL` and `ci-secrets man`: shell completions and the man page,
//! generated from the clap definition so they never drift from `--help`.

use crate::cli::{Cli, CompletionsArgs, Shell};
use crate::exit;
use crate::input::CliError;
use clap::CommandFactory;
use std::io::Write;

/// The version `--version` prints: the package version and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CI_SECRETS_BUILD_COMMIT"),
    ")"
);

/// Writes the completion script for a shell to stdout.
pub fn completions(args: &CompletionsArgs) -> Result<u8, CliError> {
    let mut out = Vec::new();
    write_completions(args.shell, &mut out);
    emit(&out)
}

/// Writes the man page (roff) to stdout.
pub fn man() -> Result<u8, CliError> {
    let mut out = Vec::new();
    write_man(&mut out)?;
    emit(&out)
}

/// The completion script for `shell`.
pub fn write_completions(shell: Shell, out: &mut Vec<u8>) {
    let mut command = Cli::command();
    let name = command.get_name().to_owned();
    match shell {
        Shell::Bash => clap_complete::generate(clap_complete::Shell::Bash, &mut command, name, out),
        Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut command, name, out),
        Shell::Fish => clap_complete::generate(clap_complete::Shell::Fish, &mut command, name, out),
    }
}

/// The man page `ci-secrets.1`.
pub fn write_man(out: &mut Vec<u8>) -> Result<(), CliError> {
    clap_mangen::Man::new(Cli::command())
        .render(out)
        .map_err(|e| CliError::internal(format!("rendering the man page: {e}")))
}

fn emit(bytes: &[u8]) -> Result<u8, CliError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::internal(format!("writing to stdout: {e}")))?;
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_name_every_subcommand() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            write_completions(shell, &mut out);
            let text = String::from_utf8(out).unwrap();
            for sub in ["resolve", "exec", "check", "doctor"] {
                assert!(text.contains(sub), "{shell:?} completions lack {sub}");
            }
            assert!(text.contains("--ci-config"), "{shell:?}");
        }
    }

    #[test]
    fn the_man_page_has_the_sections_and_exit_codes() {
        let mut out = Vec::new();
        write_man(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH ci-secrets"),
            "{text:.200}"
        );
        assert!(text.contains(".SH NAME"));
        assert!(text.contains("Exit codes"));
        assert!(text.contains("resolve"));
    }

    #[test]
    fn the_version_names_the_commit() {
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")));
        assert!(VERSION.contains("(commit "));
        assert!(!env!("CI_SECRETS_BUILD_COMMIT").is_empty());
    }
}
