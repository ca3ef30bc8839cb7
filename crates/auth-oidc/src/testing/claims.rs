//! GitLab's ID token claim set, with the defaults of `docs/e2e-fixtures.md`.

use serde_json::{Map, Value, json};
use std::time::Duration;

/// The audience of the default claims: the one every fixture role binds.
pub const DEFAULT_AUDIENCE: &str = "https://vault.example.com";

/// How long a token is valid by default.
const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);

/// How far in the past an [expired](GitlabClaims::expired) token's `exp` is: beyond Vault's
/// default `expiration_leeway` (150 s) plus its `clock_skew_leeway` (60 s).
const EXPIRED_AGO: Duration = Duration::from_secs(15 * 60);

/// A pipeline's ref type (the `ref_type` claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefType {
    /// A branch pipeline.
    Branch,
    /// A tag pipeline.
    Tag,
}

impl RefType {
    /// The claim value: `branch` or `tag`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Branch => "branch",
            Self::Tag => "tag",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Validity {
    For(Duration),
    Expired,
}

/// The claims of a GitLab CI ID token, built from the fixture defaults.
///
/// Defaults: project `mygroup/myproject` (`project_id` `42`), namespace `mygroup` (`7`),
/// ref `main` (`branch`, protected), `user_email` `dev@example.com`, `job_id` `1001`,
/// `pipeline_source` `push`, audience [`DEFAULT_AUDIENCE`], valid for 5 minutes.
/// Ids and booleans are strings, as GitLab sends them.
#[derive(Debug, Clone, PartialEq)]
pub struct GitlabClaims {
    audience: String,
    project_path: String,
    project_id: String,
    namespace_path: String,
    namespace_id: String,
    git_ref: String,
    ref_type: RefType,
    ref_protected: bool,
    user_email: String,
    job_id: String,
    pipeline_source: String,
    validity: Validity,
    extra: Map<String, Value>,
}

impl Default for GitlabClaims {
    fn default() -> Self {
        Self {
            audience: DEFAULT_AUDIENCE.to_owned(),
            project_path: "mygroup/myproject".to_owned(),
            project_id: "42".to_owned(),
            namespace_path: "mygroup".to_owned(),
            namespace_id: "7".to_owned(),
            git_ref: "main".to_owned(),
            ref_type: RefType::Branch,
            ref_protected: true,
            user_email: "dev@example.com".to_owned(),
            job_id: "1001".to_owned(),
            pipeline_source: "push".to_owned(),
            validity: Validity::For(DEFAULT_TTL),
            extra: Map::new(),
        }
    }
}

impl GitlabClaims {
    /// The fixture defaults (see the type's documentation).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `aud` (a single string, as `id_tokens:<NAME>:aud` gives it).
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// Sets `project_path` and `project_id`; the namespace path becomes the path's parent
    /// (the namespace id is kept: set it with [`with_namespace`](Self::with_namespace)).
    pub fn with_project(mut self, path: impl Into<String>, id: u64) -> Self {
        self.project_path = path.into();
        self.project_id = id.to_string();
        if let Some((namespace, _)) = self.project_path.rsplit_once('/') {
            self.namespace_path = namespace.to_owned();
        }
        self
    }

    /// Sets `namespace_path` and `namespace_id`.
    pub fn with_namespace(mut self, path: impl Into<String>, id: u64) -> Self {
        self.namespace_path = path.into();
        self.namespace_id = id.to_string();
        self
    }

    /// Sets `ref` (a branch or tag name, without `refs/heads/`).
    pub fn with_ref(mut self, name: impl Into<String>) -> Self {
        self.git_ref = name.into();
        self
    }

    /// Sets `ref_type`.
    pub fn with_ref_type(mut self, ref_type: RefType) -> Self {
        self.ref_type = ref_type;
        self
    }

    /// A tag pipeline: `ref` = `name`, `ref_type` = `tag`.
    pub fn with_tag(self, name: impl Into<String>) -> Self {
        self.with_ref(name).with_ref_type(RefType::Tag)
    }

    /// A branch pipeline: `ref` = `name`, `ref_type` = `branch`.
    pub fn with_branch(self, name: impl Into<String>) -> Self {
        self.with_ref(name).with_ref_type(RefType::Branch)
    }

    /// Sets `ref_protected`.
    pub fn with_protected(mut self, protected: bool) -> Self {
        self.ref_protected = protected;
        self
    }

    /// Sets `user_email` (the fixture roles' `user_claim`).
    pub fn with_user_email(mut self, email: impl Into<String>) -> Self {
        self.user_email = email.into();
        self
    }

    /// Sets `job_id`.
    pub fn with_job_id(mut self, id: u64) -> Self {
        self.job_id = id.to_string();
        self
    }

    /// Sets `pipeline_source` (`push`, `schedule`, `merge_request_event`, ...).
    pub fn with_pipeline_source(mut self, source: impl Into<String>) -> Self {
        self.pipeline_source = source.into();
        self
    }

    /// Valid from now for `ttl` (`exp` = `iat` + `ttl`).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.validity = Validity::For(ttl);
        self
    }

    /// Already expired, by more than any server's leeway (`exp` 15 minutes ago).
    pub fn expired(mut self) -> Self {
        self.validity = Validity::Expired;
        self
    }

    /// Adds or replaces any other claim (for example `environment` or `groups_direct`).
    pub fn with_claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(name.into(), value.into());
        self
    }

    /// The `sub` claim: `project_path:<group/project>:ref_type:<type>:ref:<ref>`.
    pub fn subject(&self) -> String {
        format!(
            "project_path:{}:ref_type:{}:ref:{}",
            self.project_path,
            self.ref_type.as_str(),
            self.git_ref
        )
    }

    /// The audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The JSON payload for issuer `iss` at time `now` (Unix seconds).
    pub fn to_payload(&self, iss: &str, now: i64) -> Value {
        let (iat, exp) = match self.validity {
            Validity::For(ttl) => (now, now.saturating_add(secs(ttl))),
            Validity::Expired => {
                let exp = now.saturating_sub(secs(EXPIRED_AGO));
                (exp.saturating_sub(secs(DEFAULT_TTL)), exp)
            }
        };
        let ref_path = match self.ref_type {
            RefType::Branch => format!("refs/heads/{}", self.git_ref),
            RefType::Tag => format!("refs/tags/{}", self.git_ref),
        };
        let mut payload = json!({
            "namespace_id": self.namespace_id,
            "namespace_path": self.namespace_path,
            "project_id": self.project_id,
            "project_path": self.project_path,
            "user_id": "1",
            "user_login": "dev",
            "user_email": self.user_email,
            "user_access_level": "maintainer",
            "pipeline_id": "501",
            "pipeline_source": self.pipeline_source,
            "job_id": self.job_id,
            "ref": self.git_ref,
            "ref_type": self.ref_type.as_str(),
            "ref_path": ref_path,
            "ref_protected": self.ref_protected.to_string(),
            "runner_id": 1,
            "runner_environment": "self-hosted",
            "sha": "0123456789abcdef0123456789abcdef01234567",
            "project_visibility": "private",
            "jti": format!("e2e-{}-{now}", self.job_id),
            "iss": iss,
            "iat": iat,
            "nbf": iat,
            "exp": exp,
            "sub": self.subject(),
            "aud": self.audience,
        });
        if let Value::Object(map) = &mut payload {
            map.extend(self.extra.clone());
        }
        payload
    }
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_fixture_contract() {
        let payload = GitlabClaims::new().to_payload("http://127.0.0.1:1", 1_000);
        assert_eq!(payload["iss"], "http://127.0.0.1:1");
        assert_eq!(payload["aud"], DEFAULT_AUDIENCE);
        assert_eq!(
            payload["sub"],
            "project_path:mygroup/myproject:ref_type:branch:ref:main"
        );
        assert_eq!(payload["project_id"], "42");
        assert_eq!(payload["namespace_id"], "7");
        assert_eq!(payload["namespace_path"], "mygroup");
        assert_eq!(payload["ref_protected"], "true");
        assert_eq!(payload["user_email"], "dev@example.com");
        assert_eq!(payload["job_id"], "1001");
        assert_eq!(payload["pipeline_source"], "push");
        assert_eq!(payload["iat"], 1_000);
        assert_eq!(payload["nbf"], 1_000);
        assert_eq!(payload["exp"], 1_300);
    }

    #[test]
    fn setters_change_the_claims_and_the_subject() {
        let claims = GitlabClaims::new()
            .with_project("other/app", 99)
            .with_tag("auto-deploy-1")
            .with_protected(false)
            .with_audience("sts.amazonaws.com")
            .with_claim("environment", "production");
        let payload = claims.to_payload("iss", 0);
        assert_eq!(payload["project_path"], "other/app");
        assert_eq!(payload["project_id"], "99");
        assert_eq!(payload["namespace_path"], "other");
        assert_eq!(payload["ref_type"], "tag");
        assert_eq!(payload["ref_path"], "refs/tags/auto-deploy-1");
        assert_eq!(payload["ref_protected"], "false");
        assert_eq!(payload["aud"], "sts.amazonaws.com");
        assert_eq!(payload["environment"], "production");
        assert_eq!(
            payload["sub"],
            "project_path:other/app:ref_type:tag:ref:auto-deploy-1"
        );
    }

    #[test]
    fn expired_is_beyond_vault_leeway() {
        let payload = GitlabClaims::new().expired().to_payload("iss", 10_000);
        let exp = payload["exp"].as_i64().unwrap();
        assert!(exp < 10_000 - 150 - 60, "exp {exp}");
        assert!(payload["iat"].as_i64().unwrap() < exp);
    }
}
