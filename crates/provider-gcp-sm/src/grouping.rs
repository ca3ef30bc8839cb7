//! The offline half of a resolution, shared by the live path and the plan: each secret
//! checked without I/O, grouped by identity (STS audience and ID token), each identity's
//! service accounts to impersonate (opt-in) and its distinct versions to read.

use crate::config::IMPERSONATE_VARIABLE;
use crate::resource::{Location, resolve, sts_audience};
use provider_http::Failure;
use secrets_core::payload::GcpSecret;
use secrets_core::{Error, ErrorKind, Secret};
use std::collections::HashMap;

/// One secret that passed the offline checks.
pub(crate) struct Planned<'a> {
    pub(crate) index: usize,
    pub(crate) variable: &'a str,
    pub(crate) reference: String,
    pub(crate) resource: String,
    pub(crate) location: Location,
    /// The service account to impersonate; empty: read with the federated token.
    pub(crate) service_account: &'a str,
}

/// One distinct read: the version, where it lives, and as whom (empty: federated).
pub(crate) type Read<'s> = (&'s str, &'s Location, &'s str);

/// Who exchanges what at STS. Holds the ID token (after expansion), so it has no `Debug`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct IdentityKey<'a> {
    pub(crate) audience: String,
    pub(crate) jwt: &'a str,
}

/// The secrets of one identity.
pub(crate) struct Group<'a> {
    pub(crate) key: IdentityKey<'a>,
    pub(crate) members: Vec<Planned<'a>>,
}

impl Group<'_> {
    /// The distinct service accounts to impersonate, in first-use order (one
    /// `generateAccessToken` each).
    pub(crate) fn service_accounts(&self) -> Vec<&str> {
        let mut accounts: Vec<&str> = Vec::new();
        for m in &self.members {
            if !m.service_account.is_empty() && !accounts.contains(&m.service_account) {
                accounts.push(m.service_account);
            }
        }
        accounts
    }

    /// The distinct (resource, location, service account) reads in first-use order, and each
    /// member's index into them.
    pub(crate) fn distinct_reads(&self) -> (Vec<Read<'_>>, Vec<usize>) {
        let mut reads: Vec<Read<'_>> = Vec::new();
        let mut read_of = Vec::with_capacity(self.members.len());
        for m in &self.members {
            let at = reads
                .iter()
                .position(|(r, l, a)| {
                    *r == m.resource && *l == &m.location && *a == m.service_account
                })
                .unwrap_or_else(|| {
                    reads.push((&m.resource, &m.location, m.service_account));
                    reads.len() - 1
                });
            read_of.push(at);
        }
        (reads, read_of)
    }
}

fn show(s: &str) -> &str {
    if s.is_empty() { "(empty)" } else { s }
}

/// `gcp_secret_manager projects/1/secrets/db/versions/latest via project 1 pool p provider q`,
/// then ` as sa@p.iam.gserviceaccount.com` when it impersonates.
pub(crate) fn reference(g: &GcpSecret) -> String {
    let s = &g.server;
    let resource = resolve(&s.project_number, &g.name, &g.version).0;
    let account = s.impersonate_service_account.trim();
    format!(
        "gcp_secret_manager {resource} via project {} pool {} provider {}{}",
        show(&s.project_number),
        show(&s.workload_identity_federation_pool_id),
        show(&s.workload_identity_federation_provider_id),
        if account.is_empty() {
            String::new()
        } else {
            format!(" as {account}")
        },
    )
}

fn has_dot_segment(text: &str) -> bool {
    text.split('/').any(|s| s == "." || s == "..")
}

/// Checks one secret offline: its identity and plan, or its error.
fn check<'a>(
    index: usize,
    variable: &'a str,
    secret: &'a Secret,
) -> Result<(IdentityKey<'a>, Planned<'a>), Error> {
    let Some(g) = secret.gcp_secret_manager.as_deref() else {
        return Err(Error::new(
            ErrorKind::InvalidSpec,
            "the secret has no `gcp_secret_manager` entry but was given to the GCP provider",
        )
        .with_variable(variable));
    };
    let reference = reference(g);
    let fail = |kind: ErrorKind, message: &str, fix: &str| {
        Err(Failure::new(kind, message)
            .with_fix(fix)
            .to_core(variable, &reference))
    };
    let s = &g.server;
    for (value, var) in [
        (&s.project_number, "GCP_PROJECT_NUMBER"),
        (
            &s.workload_identity_federation_pool_id,
            "GCP_WORKLOAD_IDENTITY_FEDERATION_POOL_ID",
        ),
        (
            &s.workload_identity_federation_provider_id,
            "GCP_WORKLOAD_IDENTITY_FEDERATION_PROVIDER_ID",
        ),
    ] {
        if value.trim().is_empty() {
            return fail(
                ErrorKind::InvalidConfig,
                &format!("{var} is empty"),
                &format!("set the CI/CD variable {var} (it expanded to nothing)"),
            );
        }
    }
    if g.name.is_empty() {
        return fail(
            ErrorKind::InvalidSpec,
            "the secret name is empty",
            "set `gcp_secret_manager:name:` to a secret id or projects/<project>/secrets/<id> \
             (it expanded to nothing)",
        );
    }
    if g.version.is_empty() {
        return fail(
            ErrorKind::InvalidSpec,
            "the version is empty (GitLab Runner would request .../versions/ and fail)",
            "set `gcp_secret_manager:version:` to a version number or `latest`, or leave it out",
        );
    }
    if has_dot_segment(&g.name) || has_dot_segment(&g.version) {
        return fail(
            ErrorKind::InvalidSpec,
            "the secret name or version has a `.` or `..` path segment",
            "name the secret by its id or its full resource name",
        );
    }
    let service_account = s.impersonate_service_account.trim();
    if service_account
        .chars()
        .any(|c| c == '/' || c.is_whitespace() || c.is_control())
    {
        return fail(
            ErrorKind::InvalidConfig,
            &format!("{IMPERSONATE_VARIABLE} is not a service account"),
            &format!(
                "set {IMPERSONATE_VARIABLE} to the email of the service account to impersonate \
                 (NAME@PROJECT.iam.gserviceaccount.com), or unset it to read with the federated \
                 identity"
            ),
        );
    }
    if s.jwt.is_empty() {
        return fail(
            ErrorKind::InvalidConfig,
            "the ID token is empty",
            "set the secret's `token:` to an ID token defined in `id_tokens:`",
        );
    }
    let (resource, location) = resolve(&s.project_number, &g.name, &g.version);
    let key = IdentityKey {
        audience: sts_audience(
            &s.project_number,
            &s.workload_identity_federation_pool_id,
            &s.workload_identity_federation_provider_id,
        ),
        jwt: s.jwt.expose(),
    };
    Ok((
        key,
        Planned {
            index,
            variable,
            reference,
            resource,
            location,
            service_account,
        },
    ))
}

/// Checks and groups `secrets` (variable, entry) by identity, in order: the groups, and the
/// secrets that failed the checks with their errors.
pub(crate) fn group<'a>(
    secrets: impl IntoIterator<Item = (&'a str, &'a Secret)>,
) -> (Vec<Group<'a>>, Vec<(usize, Error)>) {
    let mut groups: Vec<Group<'a>> = Vec::new();
    let mut failed = Vec::new();
    let mut group_of: HashMap<IdentityKey<'a>, usize> = HashMap::new();
    for (index, (variable, secret)) in secrets.into_iter().enumerate() {
        match check(index, variable, secret) {
            Err(e) => failed.push((index, e)),
            Ok((key, planned)) => match group_of.get(&key) {
                Some(&g) => groups[g].members.push(planned),
                None => {
                    group_of.insert(key.clone(), groups.len());
                    groups.push(Group {
                        key,
                        members: vec![planned],
                    });
                }
            },
        }
    }
    (groups, failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrets_core::payload::GcpServer;

    fn secret(name: &str, version: &str, provider: &str, jwt: &str) -> Secret {
        Secret {
            gcp_secret_manager: Some(Box::new(GcpSecret {
                name: name.into(),
                version: version.into(),
                server: GcpServer {
                    project_number: "1".into(),
                    workload_identity_federation_pool_id: "pool".into(),
                    workload_identity_federation_provider_id: provider.into(),
                    jwt: jwt.into(),
                    impersonate_service_account: String::new(),
                },
            })),
            ..Secret::default()
        }
    }

    #[test]
    fn one_identity_per_audience_and_token_one_read_per_resource() {
        let secrets = [
            ("A", secret("a", "latest", "p", "$T")),
            ("B", secret("projects/1/secrets/a", "latest", "p", "$T")),
            ("C", secret("b", "2", "p", "$T")),
            ("D", secret("b", "2", "other", "$T")),
            ("E", secret("c", "1", "p", "$U")),
            ("F", secret("", "1", "p", "$U")),
            ("G", secret("c", "", "p", "$U")),
            ("H", secret("../x", "1", "p", "$U")),
        ];
        let (groups, failed) = group(secrets.iter().map(|(v, s)| (*v, s)));
        assert_eq!(groups.len(), 3);
        let (reads, read_of) = groups[0].distinct_reads();
        assert_eq!(reads.len(), 2, "A and B are the same version");
        assert_eq!(read_of, [0, 0, 1]);
        assert_eq!(failed.len(), 3);
        assert!(
            failed
                .iter()
                .all(|(_, e)| e.kind() == ErrorKind::InvalidSpec)
        );
        assert_eq!(
            failed[0].1.reference(),
            Some(
                "gcp_secret_manager projects/1/secrets//versions/1 via project 1 pool pool provider p"
            )
        );
        let mut no_project = secret("a", "1", "p", "$T");
        if let Some(g) = no_project.gcp_secret_manager.as_mut() {
            g.server.project_number.clear();
        }
        let (_, failed) = group([("X", &no_project)]);
        assert!(
            failed[0]
                .1
                .to_string()
                .contains("GCP_PROJECT_NUMBER is empty")
        );
    }

    #[test]
    fn impersonation_is_one_token_per_account_and_part_of_the_read() {
        let mut a = secret("a", "1", "p", "$T");
        let sa = |s: &mut Secret, account: &str| {
            if let Some(g) = s.gcp_secret_manager.as_mut() {
                g.server.impersonate_service_account = account.into();
            }
        };
        sa(&mut a, "r@p.iam.gserviceaccount.com");
        let mut b = secret("a", "1", "p", "$T");
        sa(&mut b, " r@p.iam.gserviceaccount.com ");
        let plain = secret("a", "1", "p", "$T");
        let mut other = secret("b", "1", "p", "$T");
        sa(&mut other, "w@p.iam.gserviceaccount.com");
        let mut bad = secret("b", "1", "p", "$T");
        sa(&mut bad, "projects/-/serviceAccounts/x");
        let secrets = [("A", a), ("B", b), ("P", plain), ("O", other), ("X", bad)];
        let (groups, failed) = group(secrets.iter().map(|(v, s)| (*v, s)));
        assert_eq!(
            groups.len(),
            1,
            "impersonation does not split the STS identity"
        );
        assert_eq!(
            groups[0].service_accounts(),
            ["r@p.iam.gserviceaccount.com", "w@p.iam.gserviceaccount.com"]
        );
        let (reads, read_of) = groups[0].distinct_reads();
        assert_eq!(
            reads.len(),
            3,
            "the same version as another principal is another read"
        );
        assert_eq!(read_of, [0, 0, 1, 2]);
        assert!(
            groups[0].members[0]
                .reference
                .ends_with(" as r@p.iam.gserviceaccount.com"),
            "{}",
            groups[0].members[0].reference
        );
        assert_eq!(failed.len(), 1);
        assert!(
            failed[0].1.to_string().contains(IMPERSONATE_VARIABLE),
            "{}",
            failed[0].1
        );
    }
}
