//! Resource names and the STS audience, as GitLab Runner builds them, plus regional secrets.
//!
//! Runner (`gitlabhq/gitlab-runner@d79f3e7b8`, `helpers/gcp_secret_manager/service/
//! gcp_secret_manager.go`; the glob arrived in `c5de8121a6`, 2024-04-16, "Support Google
//! Secrets from projects other than the WIF pool one", runner 17.0):
//! - `<name>/versions/<version>` when `name` matches Go's `filepath.Match("projects/*/secrets/*")`
//!   (on Unix `*` matches any run of characters other than `/`, the empty run included);
//! - otherwise `projects/<project_number>/secrets/<name>/versions/<version>`.
//!
//! Extension: `projects/P/locations/L/secrets/S` is a regional secret, read at the regional
//! endpoint `https://secretmanager.L.rep.googleapis.com`. The runner would send it as a
//! secret id (`projects/<n>/secrets/projects/P/locations/...`) and fail, so no job that works
//! under the runner changes.

/// The STS audience of a workload identity pool provider (no scheme, as the runner sends it).
pub fn sts_audience(project_number: &str, pool: &str, provider: &str) -> String {
    format!(
        "//iam.googleapis.com/projects/{project_number}/locations/global/workloadIdentityPools/{pool}/providers/{provider}"
    )
}

/// Where a version lives: the global endpoint or a region's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Location {
    /// `secretmanager.googleapis.com`.
    Global,
    /// `secretmanager.<location>.rep.googleapis.com`.
    Regional(String),
}

/// Go's `filepath.Match("projects/*/secrets/*", name)` on Unix.
fn is_secret_resource_name(name: &str) -> bool {
    matches!(
        name.split('/').collect::<Vec<_>>().as_slice(),
        ["projects", _, "secrets", _]
    )
}

/// `projects/P/locations/L/secrets/S`: the location.
fn regional_location(name: &str) -> Option<&str> {
    match name.split('/').collect::<Vec<_>>().as_slice() {
        ["projects", p, "locations", l, "secrets", s]
            if !p.is_empty() && !l.is_empty() && !s.is_empty() =>
        {
            Some(l)
        }
        _ => None,
    }
}

/// The version's resource name and where it lives.
pub fn version_resource(project_number: &str, name: &str, version: &str) -> String {
    resolve(project_number, name, version).0
}

pub(crate) fn resolve(project_number: &str, name: &str, version: &str) -> (String, Location) {
    if is_secret_resource_name(name) {
        (format!("{name}/versions/{version}"), Location::Global)
    } else if let Some(location) = regional_location(name) {
        (
            format!("{name}/versions/{version}"),
            Location::Regional(location.to_owned()),
        )
    } else {
        (
            format!("projects/{project_number}/secrets/{name}/versions/{version}"),
            Location::Global,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_follow_the_runner_glob() {
        let cases = [
            (
                "api-key",
                "latest",
                "projects/1/secrets/api-key/versions/latest",
                Location::Global,
            ),
            (
                "projects/other/secrets/k",
                "3",
                "projects/other/secrets/k/versions/3",
                Location::Global,
            ),
            // `*` matches the empty run, as in Go.
            (
                "projects//secrets/",
                "1",
                "projects//secrets//versions/1",
                Location::Global,
            ),
            // More segments do not match the glob: a secret id.
            (
                "projects/p/secrets/k/versions/2",
                "1",
                "projects/1/secrets/projects/p/secrets/k/versions/2/versions/1",
                Location::Global,
            ),
            (
                "a/b",
                "latest",
                "projects/1/secrets/a/b/versions/latest",
                Location::Global,
            ),
            (
                "projects/p/locations/us-east1/secrets/k",
                "latest",
                "projects/p/locations/us-east1/secrets/k/versions/latest",
                Location::Regional("us-east1".into()),
            ),
        ];
        for (name, version, resource, location) in cases {
            assert_eq!(
                resolve("1", name, version),
                (resource.to_owned(), location),
                "{name}"
            );
        }
        assert_eq!(
            sts_audience("123", "pool", "prov"),
            "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/prov"
        );
    }
}
