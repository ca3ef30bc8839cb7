//! Output formats. Values leave the process here and nowhere else.

use crate::cli::Format;
use secrets_resolver::Report;
use serde::Serialize;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// A variable as delivered: the value, or the path of the file holding it.
#[derive(Serialize)]
pub struct Delivered {
    /// The name.
    pub key: String,
    /// The value, or the file's path for file-type variables.
    pub value: String,
    /// Whether `value` is a path.
    pub file: bool,
    /// Whether the value should be masked.
    pub masked: bool,
    /// Whether `$` in the value must not be expanded.
    pub raw: bool,
    /// For masking: the secret itself (for file variables, the file's contents).
    #[serde(skip)]
    pub secret: String,
}

impl std::fmt::Debug for Delivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivered")
            .field("key", &self.key)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// What `resolve` prints: the main text, and for `github`, the text for `$GITHUB_ENV`.
#[derive(Debug, Default)]
pub struct Rendered {
    /// For stdout (or `--output`).
    pub main: String,
    /// For `$GITHUB_ENV`, when the format has a separate environment file part.
    pub github_env: Option<String>,
}

/// Renders the variables in `format`.
pub fn render(format: Format, vars: &[Delivered], report: &Report) -> Rendered {
    match format {
        Format::Dotenv => Rendered {
            main: vars
                .iter()
                .map(|v| format!("{}={}\n", v.key, dotenv_value(&v.value)))
                .collect(),
            github_env: None,
        },
        Format::Shell => Rendered {
            main: vars
                .iter()
                .map(|v| format!("export {}={}\n", v.key, shell_quote(&v.value)))
                .collect(),
            github_env: None,
        },
        Format::Json => {
            let doc = serde_json::json!({ "variables": vars, "report": report });
            Rendered {
                main: format!("{doc:#}\n"),
                github_env: None,
            }
        }
        Format::Github => {
            let mut masks = String::new();
            for v in vars.iter().filter(|v| v.masked) {
                for line in v.secret.lines().filter(|l| !l.trim().is_empty()) {
                    masks.push_str("::add-mask::");
                    masks.push_str(line);
                    masks.push('\n');
                }
            }
            let env = vars
                .iter()
                .map(|v| github_env_entry(&v.key, &v.value))
                .collect();
            Rendered {
                main: masks,
                github_env: Some(env),
            }
        }
    }
}

/// A dotenv value: bare when it has no special characters, else double-quoted with `\\`,
/// `\"`, `\$` and `` \` `` escaped and line breaks kept as they are, so a POSIX shell
/// (`set -a; . ./file`), docker compose and python-dotenv all read the value back.
pub fn dotenv_value(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@+=,%~^".contains(c));
    if plain {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '$' => out.push_str("\\$"),
            '`' => out.push_str("\\`"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A POSIX shell single-quoted word.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `KEY<<DELIM\nvalue\nDELIM\n` with a random delimiter not found in the value.
fn github_env_entry(key: &str, value: &str) -> String {
    let delimiter = loop {
        let candidate = format!("ghadelimiter_{:016x}", RandomState::new().hash_one(key));
        if !value.contains(&candidate) {
            break candidate;
        }
    };
    format!("{key}<<{delimiter}\n{value}\n{delimiter}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_quotes_only_when_needed() {
        assert_eq!(dotenv_value("abc-123_/x"), "abc-123_/x");
        assert_eq!(dotenv_value(""), "\"\"");
        assert_eq!(dotenv_value("a b"), "\"a b\"");
        assert_eq!(dotenv_value("l1\nl2"), "\"l1\nl2\"");
        assert_eq!(dotenv_value(r#"q"$x\"#), r#""q\"\$x\\""#);
    }

    #[test]
    fn shell_quoting_survives_single_quotes() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }

    #[test]
    fn github_entries_use_a_heredoc() {
        let entry = github_env_entry("K", "line1\nline2");
        let lines: Vec<_> = entry.lines().collect();
        assert!(lines[0].starts_with("K<<ghadelimiter_"));
        assert_eq!(&lines[1..3], ["line1", "line2"]);
        assert_eq!(lines[3], &lines[0][3..]);
    }
}
