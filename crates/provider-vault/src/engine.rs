//! Secret engines and the API paths they read, with Go `path.Join` / `path.Clean` semantics
//! (runner-semantics §4.3, §4.4).

use std::fmt;

/// A secret engine GitLab Runner knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// `kv-v2`: reads `<mount>/data/<path>`, the secret is `data.data`.
    KvV2,
    /// `kv-v1`: reads `<mount>/<path>`, the secret is `data`.
    KvV1,
    /// `generic`: any engine readable by `GET <mount>/<path>`; the secret is `data`.
    Generic,
}

impl EngineKind {
    /// The engine for a `secrets:*:vault:engine:name`, `None` for names the runner does not
    /// register.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "kv-v2" => Some(Self::KvV2),
            "kv-v1" => Some(Self::KvV1),
            "generic" => Some(Self::Generic),
            _ => None,
        }
    }

    /// The engine's name in `secrets:`.
    pub fn name(self) -> &'static str {
        match self {
            Self::KvV2 => "kv-v2",
            Self::KvV1 => "kv-v1",
            Self::Generic => "generic",
        }
    }

    /// The logical path read, relative to `/v1/`: Go `path.Join(mount, "data", path)` for
    /// kv-v2, `path.Join(mount, path)` otherwise.
    pub fn logical_path(self, mount: &str, path: &str) -> String {
        match self {
            Self::KvV2 => go_join(&[mount, "data", path]),
            Self::KvV1 | Self::Generic => go_join(&[mount, path]),
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The login path relative to `/v1/`: Go `path.Join("auth", path, "login")`, with an empty
/// auth path meaning `jwt`.
pub fn login_path(auth_path: &str) -> String {
    let auth_path = if auth_path.is_empty() {
        "jwt"
    } else {
        auth_path
    };
    go_join(&["auth", auth_path, "login"])
}

/// The URL path the OpenBao client requests for a logical path: Go
/// `path.Join(<server URL path>, "/v1/" + logical)`.
///
/// `None` when `..` segments would climb out of `<server URL path>/v1/` (the runner would send
/// that request; we refuse it).
pub fn request_path(base_path: &str, logical: &str) -> Option<String> {
    let full = go_join(&[base_path, &format!("/v1/{logical}")]);
    let prefix = go_join(&["/", base_path, "v1"]);
    let rest = full.strip_prefix(&prefix)?;
    (rest.len() > 1 && rest.starts_with('/')).then_some(full)
}

/// Go `path.Join`: joins the non-empty elements with `/` and cleans the result; `""` when
/// every element is empty.
pub fn go_join(elems: &[&str]) -> String {
    let parts: Vec<&str> = elems.iter().copied().filter(|e| !e.is_empty()).collect();
    if parts.is_empty() {
        return String::new();
    }
    go_clean(&parts.join("/"))
}

/// Go `path.Clean`: collapses `//`, removes `.` segments and trailing slashes, resolves `..`
/// (dropped at the root, kept at the front of a relative path); `"."` for an empty result.
pub fn go_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => match out.last() {
                Some(&last) if last != ".." => {
                    out.pop();
                }
                _ if rooted => {}
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go() {
        // Cases from Go's path.Clean tests.
        let cases = [
            ("", "."),
            ("abc", "abc"),
            ("abc/def", "abc/def"),
            ("a/b/c", "a/b/c"),
            (".", "."),
            ("..", ".."),
            ("../..", "../.."),
            ("../../abc", "../../abc"),
            ("/abc", "/abc"),
            ("/", "/"),
            ("abc/", "abc"),
            ("abc/def/", "abc/def"),
            ("a/b/c/", "a/b/c"),
            ("./", "."),
            ("../", ".."),
            ("../../", "../.."),
            ("/abc/", "/abc"),
            ("abc//def//ghi", "abc/def/ghi"),
            ("//abc", "/abc"),
            ("///abc", "/abc"),
            ("//abc//", "/abc"),
            ("abc//", "abc"),
            ("abc/./def", "abc/def"),
            ("/./abc/def", "/abc/def"),
            ("abc/.", "abc"),
            ("abc/def/ghi/../jkl", "abc/def/jkl"),
            ("abc/def/../ghi/../jkl", "abc/jkl"),
            ("abc/def/..", "abc"),
            ("abc/def/../..", "."),
            ("/abc/def/../..", "/"),
            ("abc/def/../../..", ".."),
            ("/abc/def/../../..", "/"),
            ("abc/def/../../../ghi/jkl/../../../mno", "../../mno"),
            ("abc/./../def", "def"),
            ("abc//./../def", "def"),
            ("abc/../../././../def", "../../def"),
        ];
        for (input, want) in cases {
            assert_eq!(go_clean(input), want, "Clean({input:?})");
        }
    }

    #[test]
    fn join_matches_go() {
        assert_eq!(go_join(&[]), "");
        assert_eq!(go_join(&["", ""]), "");
        assert_eq!(go_join(&["a", ""]), "a");
        assert_eq!(go_join(&["", "b"]), "b");
        assert_eq!(go_join(&["/", "a"]), "/a");
        assert_eq!(go_join(&["a/", "b"]), "a/b");
        assert_eq!(go_join(&["a", "/b"]), "a/b");
        assert_eq!(go_join(&["a", "..", "b"]), "b");
    }

    #[test]
    fn engine_paths_match_the_runner_tests() {
        // secret_engines/kv_v2/engine_test and generic/engine_test.
        assert_eq!(
            EngineKind::KvV2.logical_path("engine/", "/secret/"),
            "engine/data/secret"
        );
        assert_eq!(
            EngineKind::Generic.logical_path("engine/", "/secret/"),
            "engine/secret"
        );
        assert_eq!(
            EngineKind::KvV1.logical_path("kv1", "ci//legacy/"),
            "kv1/ci/legacy"
        );
        assert_eq!(
            EngineKind::KvV2.logical_path("/ops", "production/db"),
            "/ops/data/production/db"
        );
        assert_eq!(
            EngineKind::KvV2.logical_path("secret", "a/./b/../c"),
            "secret/data/a/c"
        );
        assert_eq!(EngineKind::from_name("kv-v3"), None);
    }

    #[test]
    fn login_paths() {
        // jwt/auth_test: `auth/some/path/to/jwt/login`.
        assert_eq!(
            login_path("some/path/to/jwt"),
            "auth/some/path/to/jwt/login"
        );
        assert_eq!(login_path(""), "auth/jwt/login");
        assert_eq!(login_path("/gitlab/jwt/"), "auth/gitlab/jwt/login");
        assert_eq!(login_path("gitlab//jwt"), "auth/gitlab/jwt/login");
    }

    #[test]
    fn request_paths_stay_under_v1() {
        assert_eq!(
            request_path("", "secret/data/x").as_deref(),
            Some("/v1/secret/data/x")
        );
        assert_eq!(
            request_path("/", "/ops/data/x").as_deref(),
            Some("/v1/ops/data/x")
        );
        assert_eq!(
            request_path("/vault/", "kv/x").as_deref(),
            Some("/vault/v1/kv/x")
        );
        assert_eq!(request_path("", "../sys/seal"), None);
        assert_eq!(request_path("", "secret/../../sys"), None);
        assert_eq!(request_path("", ""), None);
        assert_eq!(request_path("", "a/.."), None);
    }
}
