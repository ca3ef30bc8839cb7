//! The sections of `docs/benchmarks.md` that one measurement rewrites, between its markers.

use anyhow::{Context as _, Result};
use std::path::Path;

/// Where a section goes when the file does not have it yet, tried in order; the end of the
/// file when none is found.
#[derive(Debug, Clone, Copy)]
pub enum Anchor<'a> {
    /// Right after this text (another section's end marker).
    After(&'a str),
    /// Right before this text (a heading).
    Before(&'a str),
}

/// `text` with `section` (from `begin` to `end`, markers included) in place of its previous
/// version, else at the first anchor found, else at the end.
pub fn put(text: &str, begin: &str, end: &str, section: &str, anchors: &[Anchor<'_>]) -> String {
    if let (Some(b), Some(e)) = (text.find(begin), text.find(end))
        && b < e
    {
        let rest = text[e + end.len()..].trim_start_matches('\n');
        return format!("{}{section}{rest}", &text[..b]);
    }
    for anchor in anchors {
        match *anchor {
            Anchor::After(mark) => {
                if let Some(at) = text.find(mark) {
                    let at = at + mark.len();
                    let rest = text[at..].trim_start_matches('\n');
                    return format!("{}\n{section}\n{rest}", &text[..at]);
                }
            }
            Anchor::Before(mark) => {
                if let Some(at) = text.find(mark) {
                    return format!("{}\n\n{section}{}", text[..at].trim_end(), &text[at..]);
                }
            }
        }
    }
    format!("{}\n\n{section}", text.trim_end())
}

/// Rewrites `docs/benchmarks.md` under `root` with [`put`].
pub fn write(
    root: &Path,
    begin: &str,
    end: &str,
    section: &str,
    anchors: &[Anchor<'_>],
) -> Result<()> {
    let path = root.join("docs/benchmarks.md");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, put(&text, begin, end, section, anchors))
        .context("writing docs/benchmarks.md")
}

/// The verdict of a run's count checks, for the docs.
pub fn count_checks(mismatches: &[String]) -> String {
    if mismatches.is_empty() {
        "every run as expected".to_owned()
    } else {
        format!(
            "**{} mismatch(es)**: {}",
            mismatches.len(),
            mismatches.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "<!-- s: begin -->";
    const E: &str = "<!-- s: end -->";

    #[test]
    fn a_section_replaces_itself_or_goes_to_its_anchor() {
        let section = format!("{B}\nnew\n{E}\n");
        let old = format!("# T\n\n{B}\nold\n{E}\n\n## After\n");
        assert_eq!(
            put(&old, B, E, &section, &[]),
            format!("# T\n\n{B}\nnew\n{E}\n## After\n")
        );
        let text = "# T\n\nx\n\n## Micro\n";
        let placed = put(
            text,
            B,
            E,
            &section,
            &[Anchor::After("<none>"), Anchor::Before("\n## Micro")],
        );
        assert_eq!(placed, format!("# T\n\nx\n\n{section}\n## Micro\n"));
        assert_eq!(
            put("# T\n", B, E, &section, &[]),
            format!("# T\n\n{section}")
        );
        let after = put(
            "a\n<!-- p: end -->\nb\n",
            B,
            E,
            &section,
            &[Anchor::After("<!-- p: end -->")],
        );
        assert_eq!(after, format!("a\n<!-- p: end -->\n{section}\nb\n"));
    }
}
