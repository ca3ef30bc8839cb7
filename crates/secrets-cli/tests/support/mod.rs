//! Stand-ins for other CIs' token services: a local fake of GitHub Actions' ID token endpoint
//! and a `buildkite-agent` script.

#![allow(dead_code, reason = "each test file uses part of it")]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The request token the fake accepts.
pub const REQUEST_TOKEN: &str = "gha-request-token-canary-5521";

/// One request the fake saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub accept: Option<String>,
}

impl Seen {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the fake answers to an authorised request.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    /// `{"count": 1, "value": <token for the audience>}`.
    Token,
    /// `{"value": ""}`.
    EmptyValue,
    /// `{}`.
    NoValue,
}

type MintFn = dyn Fn(&str) -> String + Send + Sync;

/// GitHub Actions' token service on loopback: `GET /_apis/idtoken?api-version=2.0&audience=A`
/// with `Authorization: bearer REQUEST_TOKEN` answers `{"value": <jwt with aud A>}`; another
/// bearer gets 401, another path 404.
pub struct FakeActions {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeActions {
    pub fn start(answer: Answer, mint: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let mint: Arc<MintFn> = Arc::new(mint);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = serve(stream, answer, &*mint, &record);
            }
        });
        Self {
            url: format!("http://127.0.0.1:{port}/_apis/idtoken?api-version=2.0"),
            seen,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(
    stream: TcpStream,
    answer: Answer,
    mint: &MintFn,
    seen: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut authorization = None;
    let mut accept = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim().to_owned();
            match name.to_ascii_lowercase().as_str() {
                "authorization" => authorization = Some(value),
                "accept" => accept = Some(value),
                _ => {}
            }
        }
    }
    let request = Seen {
        method,
        path: path.to_owned(),
        query: query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect(),
        authorization: authorization.clone(),
        accept,
    };
    seen.lock().unwrap().push(request.clone());
    let bearer_ok = authorization.as_deref().is_some_and(|a| {
        a.split_once(' ')
            .is_some_and(|(scheme, t)| scheme.eq_ignore_ascii_case("bearer") && t == REQUEST_TOKEN)
    });
    let (status, body) = if request.path != "/_apis/idtoken" || request.method != "GET" {
        ("404 Not Found", r#"{"message":"not found"}"#.to_owned())
    } else if !bearer_ok {
        (
            "401 Unauthorized",
            r#"{"message":"bad credentials"}"#.to_owned(),
        )
    } else {
        let body = match answer {
            Answer::Token => serde_json::json!({
                "count": 1,
                "value": mint(request.param("audience").unwrap_or_default()),
            })
            .to_string(),
            Answer::EmptyValue => r#"{"value":""}"#.to_owned(),
            Answer::NoValue => "{}".to_owned(),
        };
        ("200 OK", body)
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A loopback URL nothing listens on.
pub fn unreachable_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/_apis/idtoken?api-version=2.0")
}

/// A `buildkite-agent` stand-in in `dir`: records its arguments, one per line, in
/// `dir/args`, and prints `token` (or fails with exit 1 when `token` is `None`).
pub fn fake_buildkite_agent(dir: &Path, token: Option<&str>) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let args = dir.join("args");
    let body = match token {
        Some(token) => {
            std::fs::write(dir.join("token"), token).unwrap();
            format!("cat '{}'\n", dir.join("token").display())
        }
        None => {
            "echo 'buildkite-agent: fatal: failed to get OIDC token: 403' >&2\nexit 1\n".to_owned()
        }
    };
    let script = format!(
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '{}'\n{body}",
        args.display()
    );
    let path = dir.join("buildkite-agent");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The arguments the stand-in agent was called with.
pub fn agent_args(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("args"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `PATH` with `dir` first.
pub fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut paths = vec![dir.to_owned()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap()
}
