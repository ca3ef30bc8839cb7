//! Output formats. Values leave the process here and nowhere else.
//!
//! Every buffer that holds a value is a [`Zeroizing`] string built at its exact final size
//! (measured in a first pass), so it never reallocates and leaves no stray copy behind.

use crate::cli::Format;
use secrets_resolver::Report;
use serde::Serialize;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use zeroize::Zeroizing;

/// A variable as delivered: the value, or the path of the file holding it.
#[derive(Serialize)]
pub struct Delivered {
    /// The name.
    pub key: String,
    /// The value, or the file's path for file-type variables.
    #[serde(serialize_with = "expose")]
    pub value: Zeroizing<String>,
    /// Whether `value` is a path.
    pub file: bool,
    /// Whether the value should be masked.
    pub masked: bool,
    /// Whether `$` in the value must not be expanded.
    pub raw: bool,
    /// For masking: the secret itself (for file variables, the file's contents).
    #[serde(skip)]
    pub secret: Zeroizing<String>,
}

fn expose<S: serde::Serializer>(value: &Zeroizing<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(value)
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
#[derive(Default)]
pub struct Rendered {
    /// For stdout (or `--output`).
    pub main: Zeroizing<String>,
    /// For `$GITHUB_ENV`, when the format has a separate environment file part.
    pub github_env: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered")
            .field("main", &format_args!("<{} bytes>", self.main.len()))
            .field("github_env", &self.github_env.as_ref().map(|e| e.len()))
            .finish()
    }
}

/// Whether `format` carries the report (and so waits for its final request counts).
pub fn carries_report(format: Format) -> bool {
    matches!(format, Format::Json)
}

/// Renders the variables in `format`.
pub fn render(format: Format, vars: &[Delivered], report: &Report) -> Rendered {
    match format {
        Format::Dotenv => Rendered {
            main: build(|out| {
                for v in vars {
                    write!(out, "{}=", v.key)?;
                    write_dotenv_value(out, &v.value)?;
                    out.write_char('\n')?;
                }
                Ok(())
            }),
            github_env: None,
        },
        Format::Shell => Rendered {
            main: build(|out| {
                for v in vars {
                    write!(out, "export {}=", v.key)?;
                    write_shell_quoted(out, &v.value)?;
                    out.write_char('\n')?;
                }
                Ok(())
            }),
            github_env: None,
        },
        Format::Json => Rendered {
            main: json(&JsonDoc {
                variables: vars,
                report,
            }),
            github_env: None,
        },
        Format::Github => {
            let masks = build(|out| {
                for v in vars.iter().filter(|v| v.masked) {
                    for line in v.secret.lines().filter(|l| !l.trim().is_empty()) {
                        writeln!(out, "::add-mask::{line}")?;
                    }
                }
                Ok(())
            });
            let env = build(|out| {
                vars.iter()
                    .try_for_each(|v| write_github_env_entry(out, &v.key, &v.value))
            });
            Rendered {
                main: masks,
                github_env: Some(env),
            }
        }
    }
}

/// Runs `write` twice: once to measure, once into a zeroizing buffer of exactly that size.
fn build(write: impl Fn(&mut dyn fmt::Write) -> fmt::Result) -> Zeroizing<String> {
    struct Measure(usize);
    impl fmt::Write for Measure {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut measure = Measure(0);
    let _ = write(&mut measure);
    let mut out = Zeroizing::new(String::with_capacity(measure.0));
    let _ = write(&mut *out);
    debug_assert_eq!(out.len(), measure.0);
    out
}

#[derive(Serialize)]
struct JsonDoc<'a> {
    variables: &'a [Delivered],
    report: &'a Report,
}

/// Pretty JSON and a newline, measured first like [`build`].
fn json(doc: &JsonDoc<'_>) -> Zeroizing<String> {
    struct Measure(usize);
    impl std::io::Write for Measure {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut measure = Measure(0);
    let _ = serde_json::to_writer_pretty(&mut measure, doc);
    let mut bytes = Zeroizing::new(Vec::with_capacity(measure.0 + 1));
    let _ = serde_json::to_writer_pretty(&mut *bytes, doc);
    bytes.push(b'\n');
    // serde_json writes UTF-8 only; the conversion moves the buffer, it does not copy it.
    let text = String::from_utf8(std::mem::take(&mut *bytes)).unwrap_or_default();
    Zeroizing::new(text)
}

/// A dotenv value: bare when it has no special characters, else double-quoted with escapes.
#[cfg(test)]
pub fn dotenv_value(value: &str) -> String {
    let mut out = String::new();
    let _ = write_dotenv_value(&mut out, value);
    out
}

fn write_dotenv_value(out: &mut dyn fmt::Write, value: &str) -> fmt::Result {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@+=,%~^".contains(c));
    if plain {
        return out.write_str(value);
    }
    out.write_char('"')?;
    for c in value.chars() {
        match c {
            '\\' => out.write_str("\\\\")?,
            '"' => out.write_str("\\\"")?,
            '$' => out.write_str("\\$")?,
            '`' => out.write_str("\\`")?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

/// A POSIX shell single-quoted word.
#[cfg(test)]
pub fn shell_quote(value: &str) -> String {
    let mut out = String::new();
    let _ = write_shell_quoted(&mut out, value);
    out
}

fn write_shell_quoted(out: &mut dyn fmt::Write, value: &str) -> fmt::Result {
    out.write_char('\'')?;
    for (i, part) in value.split('\'').enumerate() {
        if i > 0 {
            out.write_str(r"'\''")?;
        }
        out.write_str(part)?;
    }
    out.write_char('\'')
}

/// `KEY<<DELIM\nvalue\nDELIM\n` with a random delimiter not found in the value.
fn write_github_env_entry(out: &mut dyn fmt::Write, key: &str, value: &str) -> fmt::Result {
    let delimiter = loop {
        let candidate = format!("ghadelimiter_{:016x}", RandomState::new().hash_one(key));
        if !value.contains(&candidate) {
            break candidate;
        }
    };
    write!(out, "{key}<<{delimiter}\n{value}\n{delimiter}\n")
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

    fn delivered(key: &str, value: &str) -> Delivered {
        Delivered {
            key: key.to_owned(),
            value: value.to_owned().into(),
            file: false,
            masked: true,
            raw: true,
            secret: value.to_owned().into(),
        }
    }

    #[test]
    fn every_format_builds_one_buffer_of_its_exact_size() {
        let vars = [
            delivered("A", "it's a \"canary\"\nline $x"),
            delivered("B", "plain"),
        ];
        let report = Report::default();
        for format in [Format::Dotenv, Format::Shell, Format::Json, Format::Github] {
            let rendered = render(format, &vars, &report);
            for text in std::iter::once(&rendered.main).chain(rendered.github_env.as_ref()) {
                assert_eq!(text.capacity(), text.len(), "{format:?}: no reallocation");
            }
            assert!(!format!("{rendered:?}").contains("canary"), "{format:?}");
        }
        let dotenv = render(Format::Dotenv, &vars, &report);
        assert_eq!(
            dotenv.main.as_str(),
            "A=\"it's a \\\"canary\\\"\nline \\$x\"\nB=plain\n"
        );
        let json = render(Format::Json, &vars, &report);
        let doc: serde_json::Value = serde_json::from_str(&json.main).unwrap();
        assert_eq!(doc["variables"][0]["value"], "it's a \"canary\"\nline $x");
        assert!(doc["report"].is_object());
        let github = render(Format::Github, &vars, &report);
        assert_eq!(
            github.main.as_str(),
            "::add-mask::it's a \"canary\"\n::add-mask::line $x\n::add-mask::plain\n"
        );
    }

    #[test]
    fn github_entries_use_a_heredoc() {
        let mut entry = String::new();
        write_github_env_entry(&mut entry, "K", "line1\nline2").unwrap();
        let lines: Vec<_> = entry.lines().collect();
        assert!(lines[0].starts_with("K<<ghadelimiter_"));
        assert_eq!(&lines[1..3], ["line1", "line2"]);
        assert_eq!(lines[3], &lines[0][3..]);
    }
}
