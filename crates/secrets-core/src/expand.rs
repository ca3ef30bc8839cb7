//! Variable expansion with Go `os.Expand` semantics, and the fields the runner expands per
//! provider (runner-semantics §3.1).

use crate::payload::{Secret, json_to_text};

/// The AWS session-name template used when no session name is set.
pub const AWS_SESSION_NAME_TEMPLATE: &str = "${CI_JOB_ID}-${CI_PROJECT_ID}-${CI_SERVER_HOST}";

/// The longest AWS role session name, in bytes.
pub const AWS_SESSION_NAME_MAX: usize = 64;

/// Expands `$NAME` and `${NAME}` in `input` exactly as Go's `os.Expand` does.
///
/// - a name is `[A-Za-z0-9_]+`, or one special character (`*#$@!?-` or a digit);
/// - `$$` asks `lookup("$")`; the runner's lookup answers `$`, see [`expand_with`];
/// - `${}` and an unclosed `${` are dropped; a `$` not followed by a name stays.
pub fn expand(input: &str, mut lookup: impl FnMut(&str) -> String) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut copied_from = 0;
    let mut j = 0;
    while j < bytes.len() {
        if bytes[j] == b'$' && j + 1 < bytes.len() {
            out.push_str(&input[copied_from..j]);
            let (name, width) = shell_name(&input[j + 1..]);
            match name {
                Some(name) => out.push_str(&lookup(name)),
                None if width > 0 => {} // bad syntax: eaten
                None => out.push('$'),
            }
            j += width;
            copied_from = j + 1;
        }
        j += 1;
    }
    out.push_str(&input[copied_from.min(input.len())..]);
    out
}

/// [`expand`] with the runner's lookup (runner `spec.Variables.Get`): `$$` gives `$`; the
/// shell's special parameters `$*`, `$#`, `$@`, `$!`, `$?` and `$0`-`$9` always give `""`,
/// whatever variables exist; unknown names give `""`. (`$-` is looked up like a name.)
pub fn expand_with(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    expand(input, |name| match runner_special(name) {
        Some(value) => value.to_owned(),
        None => lookup(name).unwrap_or_default(),
    })
}

/// The names the runner's variable lookup answers itself, before looking at any variable.
pub fn runner_special(name: &str) -> Option<&'static str> {
    match name {
        "$" => Some("$"),
        "*" | "#" | "@" | "!" | "?" => Some(""),
        _ if name.len() == 1 && name.as_bytes()[0].is_ascii_digit() => Some(""),
        _ => None,
    }
}

fn is_special(c: u8) -> bool {
    matches!(
        c,
        b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9'
    )
}

fn is_alnum(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphanumeric()
}

/// Go's `getShellName`: the name after a `$` and how many bytes it used.
fn shell_name(s: &str) -> (Option<&str>, usize) {
    let b = s.as_bytes();
    if b[0] == b'{' {
        if b.len() > 2 && is_special(b[1]) && b[2] == b'}' {
            return (Some(&s[1..2]), 3);
        }
        for (i, &c) in b.iter().enumerate().skip(1) {
            if c == b'}' {
                if i == 1 {
                    return (None, 2);
                }
                return (Some(&s[1..i]), i + 1);
            }
        }
        return (None, 1);
    }
    if is_special(b[0]) {
        return (Some(&s[0..1]), 1);
    }
    let len = b.iter().take_while(|&&c| is_alnum(c)).count();
    if len == 0 {
        (None, 0)
    } else {
        (Some(&s[..len]), len)
    }
}

/// Cuts `s` to at most `max` bytes, backing off to a character boundary (Go cuts bytes and
/// may split a character; we never produce invalid UTF-8).
pub fn truncate_bytes(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
}

impl Secret {
    /// Expands the fields the runner expands, in place (runner-semantics §3.1). `token` and
    /// every `gitlab_secrets_manager` field are left alone, as the runner does.
    pub fn expand_variables(&mut self, lookup: &dyn Fn(&str) -> Option<String>) {
        let x = |s: &mut String| *s = expand_with(s, lookup);
        let xt = |t: &mut crate::Token| t.replace_with(|s| expand_with(s, lookup));
        let xo = |s: &mut Option<String>| {
            if let Some(v) = s {
                *v = expand_with(v, lookup);
            }
        };
        if let Some(v) = &mut self.vault {
            x(&mut v.server.url);
            xo(&mut v.server.namespace);
            x(&mut v.server.auth.name);
            x(&mut v.server.auth.path);
            for value in v.server.auth.data.values_mut() {
                *value = serde_json::Value::String(expand_with(&json_to_text(value), lookup));
            }
            x(&mut v.engine.name);
            x(&mut v.engine.path);
            x(&mut v.path);
            x(&mut v.field);
        }
        if let Some(a) = &mut self.aws_secrets_manager {
            x(&mut a.secret_id);
            xo(&mut a.field);
            xo(&mut a.version_id);
            xo(&mut a.version_stage);
            xo(&mut a.region);
            xo(&mut a.role_arn);
            xo(&mut a.role_session_name);
            xt(&mut a.server.jwt);
            x(&mut a.server.region);
            xo(&mut a.server.role_arn);
            let session = a.server.role_session_name.get_or_insert_default();
            if session.is_empty() {
                AWS_SESSION_NAME_TEMPLATE.clone_into(session);
            }
            x(session);
            truncate_bytes(session, AWS_SESSION_NAME_MAX);
        }
        if let Some(g) = &mut self.gcp_secret_manager {
            x(&mut g.name);
            x(&mut g.version);
            x(&mut g.server.project_number);
            x(&mut g.server.workload_identity_federation_pool_id);
            x(&mut g.server.workload_identity_federation_provider_id);
            x(&mut g.server.impersonate_service_account);
            xt(&mut g.server.jwt);
        }
        if let Some(a) = &mut self.azure_key_vault {
            x(&mut a.name);
            xo(&mut a.version);
            xt(&mut a.server.jwt);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JobPayload;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn run(input: &str, vars: &HashMap<String, String>) -> String {
        expand_with(input, |k| vars.get(k).cloned())
    }

    #[test]
    fn matches_go_os_expand() {
        let vars = env(&[("A", "x"), ("B_1", "y"), ("1", "one"), ("*", "star")]);
        let cases = [
            ("plain", "plain"),
            ("$A", "x"),
            ("${A}", "x"),
            ("$A$B_1", "xy"),
            ("${A}b", "xb"),
            ("$Ab", ""),
            ("$$", "$"),
            ("$$A", "$A"),
            ("a$", "a$"),
            ("$", "$"),
            ("${}", ""),
            ("${}x", "x"),
            ("${A", "A"),
            ("x${A", "xA"),
            ("$-", ""),
            // The runner answers the shell's special parameters itself: a variable named
            // `1` or `*` is never consulted.
            ("$1", ""),
            ("$12", "2"),
            ("${1}", ""),
            ("${12}", ""),
            ("${*}", ""),
            ("$*$#$@$!$?$0$9", ""),
            ("${*x}", ""),
            ("$ a", "$ a"),
            ("$.x", "$.x"),
            ("é$A€", "éx€"),
            ("$é", "$é"),
            ("${A}${UNKNOWN}z", "xz"),
            ("${A B}", ""),
        ];
        for (input, want) in cases {
            assert_eq!(run(input, &vars), want, "input {input:?}");
        }
    }

    #[test]
    fn truncates_on_char_boundaries() {
        let mut s = "a".repeat(63) + "é";
        truncate_bytes(&mut s, 64);
        assert_eq!(s.len(), 63);
        let mut s = "b".repeat(70);
        truncate_bytes(&mut s, 64);
        assert_eq!(s.len(), 64);
    }

    #[test]
    fn expands_exactly_the_runner_fields() {
        let mut payload = JobPayload::from_json(
            r#"{"secrets": {
              "V": {"vault": {"server": {"url": "$URL", "namespace": "$NS",
                     "auth": {"name": "jwt", "path": "$AUTH", "data": {"jwt": "$TOK", "role": "$ROLE", "n": 5}}},
                     "engine": {"name": "kv-v2", "path": "$MOUNT"}, "path": "$P", "field": "$F"},
                     "token": "$TOK"},
              "A": {"aws_secrets_manager": {"secret_id": "$P", "field": "$F", "region": "$R",
                     "role_session_name": "${CI_JOB_ID}${CI_JOB_ID}${CI_JOB_ID}${CI_JOB_ID}${CI_JOB_ID}",
                     "server": {"region": "$R", "jwt": "$TOK", "role_arn": "$ROLE", "role_session_name": null}}},
              "B": {"aws_secrets_manager": {"secret_id": "x",
                     "server": {"region": "r", "jwt": "", "role_session_name": ""}}},
              "G": {"gitlab_secrets_manager": {"server": {"url": "$URL"}, "path": "$P"}}
            }}"#,
        )
        .unwrap();
        let vars = env(&[
            ("URL", "https://v"),
            ("NS", "team"),
            ("AUTH", "jwt-gl"),
            ("TOK", "eyJ.t.s"),
            ("ROLE", "ci"),
            ("MOUNT", "ops"),
            ("P", "prod/db"),
            ("F", "password"),
            ("R", "eu-west-1"),
            ("CI_JOB_ID", "123456789012345"),
            ("CI_PROJECT_ID", "42"),
            ("CI_SERVER_HOST", &"h".repeat(80)),
        ]);
        let lookup = |k: &str| vars.get(k).cloned();
        for secret in payload.secrets.values_mut() {
            secret.expand_variables(&lookup);
        }
        let v = payload.secrets["V"].vault.as_deref().unwrap();
        assert_eq!(v.server.url, "https://v");
        assert_eq!(v.server.namespace.as_deref(), Some("team"));
        assert_eq!(v.server.auth.path, "jwt-gl");
        assert_eq!(v.server.auth.data_str("jwt").as_deref(), Some("eyJ.t.s"));
        assert_eq!(v.server.auth.data_str("role").as_deref(), Some("ci"));
        assert_eq!(v.server.auth.data_str("n").as_deref(), Some("5"));
        assert_eq!(
            (v.engine.path.as_str(), v.path.as_str()),
            ("ops", "prod/db")
        );
        assert_eq!(v.field, "password");
        assert_eq!(
            payload.secrets["V"].token.as_deref(),
            Some("$TOK"),
            "token is not expanded"
        );

        let a = payload.secrets["A"].aws_secrets_manager.as_deref().unwrap();
        assert_eq!(a.secret_id, "prod/db");
        assert_eq!(a.region.as_deref(), Some("eu-west-1"));
        assert_eq!(a.server.jwt, "eyJ.t.s");
        assert_eq!(a.server.role_arn.as_deref(), Some("ci"));
        assert_eq!(
            a.role_session_name.as_deref().map(str::len),
            Some(75),
            "the per-secret session name is expanded but not cut"
        );
        let session = a.server.role_session_name.as_deref().unwrap();
        assert_eq!(session.len(), 64);
        assert!(session.starts_with("123456789012345-42-hhh"));

        let b = payload.secrets["B"].aws_secrets_manager.as_deref().unwrap();
        assert_eq!(
            b.server.role_session_name.as_deref(),
            Some(session),
            "an empty session name takes the template"
        );

        let g = payload.secrets["G"]
            .gitlab_secrets_manager
            .as_deref()
            .unwrap();
        assert_eq!(
            g.server.url, "$URL",
            "gitlab_secrets_manager is never expanded"
        );
        assert_eq!(g.path, "$P");
    }

    proptest! {
        #[test]
        fn text_without_dollar_is_unchanged(s in "[^$]*") {
            prop_assert_eq!(run(&s, &HashMap::new()), s);
        }

        #[test]
        fn known_names_expand_to_their_values(name in "[A-Za-z_][A-Za-z0-9_]{0,12}", value in "[^$]{0,20}", pre in "[^$]{0,8}", post in "[^$A-Za-z0-9_]{0,8}") {
            let vars = env(&[(&name, &value)]);
            prop_assert_eq!(run(&format!("{pre}${name}{post}"), &vars), format!("{pre}{value}{post}"));
            prop_assert_eq!(run(&format!("{pre}${{{name}}}{post}"), &vars), format!("{pre}{value}{post}"));
        }

        #[test]
        fn never_panics_and_doubled_dollars_collapse(s in ".{0,40}") {
            let _ = run(&s, &HashMap::new());
            let escaped = s.replace('$', "$$");
            prop_assert_eq!(run(&escaped, &HashMap::new()), s);
        }
    }
}
