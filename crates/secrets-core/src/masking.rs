//! Whether GitLab could mask a value in job logs.
//!
//! GitLab masks a variable only when its value is a single line of at least 8 characters from
//! the Base64 alphabet plus `@ : . ~` (and `-`, `_`, `=`, `+`, `/`). A secret that fails these
//! rules cannot be a masked CI/CD variable, so it is printed in clear wherever it travels as one
//! (a dotenv report, a later job); we warn about it, naming the variable and the rule, never the
//! value or the offending characters. GitLab Runner's `secrets:` and `ci-secrets exec` mask a
//! resolved value in the job log whatever its shape.

use std::fmt;

/// A reason GitLab could not mask a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskProblem {
    /// Fewer than 8 characters.
    TooShort,
    /// More than one line.
    MultiLine,
    /// Characters outside the maskable set.
    Characters,
}

impl fmt::Display for MaskProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooShort => "is shorter than 8 characters",
            Self::MultiLine => "spans several lines",
            Self::Characters => {
                "has characters outside GitLab's maskable set (A-Z a-z 0-9 + / = @ : . ~ - _)"
            }
        })
    }
}

fn maskable_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+/=@:.~-_".contains(c)
}

/// Every reason GitLab could not mask `value`; empty when it can.
pub fn mask_problems(value: &str) -> Vec<MaskProblem> {
    let mut problems = Vec::new();
    if value.chars().count() < 8 {
        problems.push(MaskProblem::TooShort);
    }
    if value.trim_end_matches('\n').contains('\n') {
        problems.push(MaskProblem::MultiLine);
    }
    if !value
        .chars()
        .filter(|&c| c != '\n' && c != '\r')
        .all(maskable_char)
    {
        problems.push(MaskProblem::Characters);
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_gitlabs_rules() {
        assert!(mask_problems("abcdEFGH1234+/=@:.~-_").is_empty());
        assert_eq!(mask_problems("short"), [MaskProblem::TooShort]);
        assert_eq!(
            mask_problems("line-one\nline-two"),
            [MaskProblem::MultiLine]
        );
        assert_eq!(mask_problems("has space in it"), [MaskProblem::Characters]);
        assert_eq!(
            mask_problems("p@ss!"),
            [MaskProblem::TooShort, MaskProblem::Characters]
        );
        assert!(mask_problems("trailing-newline-ok\n").is_empty());
    }
}
