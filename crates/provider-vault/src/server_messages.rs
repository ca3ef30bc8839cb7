//! The server messages a Vault error quotes: its `errors` array, tidied to one line each,
//! with any token known to the request scrubbed and each message cut short. Nothing else of
//! an answer body is ever quoted.

/// The longest quoted server message, per message.
const MAX_QUOTED: usize = 300;

/// Vault's `errors` array from an answer, with `secrets` scrubbed and each message cut short.
/// Anything else in the body is ignored.
pub fn server_errors(body: &[u8], secrets: &[&str]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<String>,
    }
    let Ok(parsed) = serde_json::from_slice::<Errors>(body) else {
        return Vec::new();
    };
    parsed
        .errors
        .into_iter()
        .map(|message| {
            let mut message = tidy(&message);
            for secret in secrets.iter().filter(|s| s.len() >= 4) {
                if message.contains(secret) {
                    message = message.replace(secret, "<redacted>");
                }
            }
            if message.len() > MAX_QUOTED {
                let mut cut = MAX_QUOTED;
                while !message.is_char_boundary(cut) {
                    cut -= 1;
                }
                message.truncate(cut);
                message.push('…');
            }
            message
        })
        .collect()
}

/// One line per server message: Vault's multi-error text (`1 error occurred:\n\t* x\n\n`)
/// becomes `x`, several bullets are joined with `; `, other whitespace runs become one space.
fn tidy(message: &str) -> String {
    let lines: Vec<String> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| {
            let head = l.split(' ').next().unwrap_or_default();
            !(head.parse::<u32>().is_ok()
                && (l.ends_with("error occurred:") || l.ends_with("errors occurred:")))
        })
        .map(|l| {
            l.strip_prefix("* ")
                .unwrap_or(l)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    lines.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_errors_are_scrubbed_and_cut() {
        let body = br#"{"errors":["token eyJtoken.canary.sig is bad", "xxxxxxxxxx"], "data": {"secret":"v"}}"#;
        let errors = server_errors(body, &["eyJtoken.canary.sig"]);
        assert_eq!(errors[0], "token <redacted> is bad");
        let long = format!(r#"{{"errors":["{}"]}}"#, "é".repeat(400));
        let errors = server_errors(long.as_bytes(), &[]);
        assert!(errors[0].len() <= MAX_QUOTED + 3);
        assert!(server_errors(b"<html>", &[]).is_empty());
        let multi = br#"{"errors":["1 error occurred:\n\t* permission denied\n\n", "2 errors occurred:\n\t* a\n\t* b  c\n\n", "plain"]}"#;
        assert_eq!(
            server_errors(multi, &[]),
            ["permission denied", "a; b c", "plain"]
        );
    }
}
