//! The offline half of a resolution, shared by the live path and the plan: each secret
//! checked without I/O, grouped by identity (region, role, session name, token) and by
//! distinct object, and each identity's reads scheduled into batches and single reads.

use crate::client::{BATCH_LIMIT, arn_region};
use crate::credentials::{Auth, Identity};
use secrecy::SecretString;
use secrets_core::payload::{AwsSecret, non_empty};
use secrets_core::{Error, ErrorKind, Secret};

/// One distinct object to read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Fetch {
    pub(crate) identity: usize,
    pub(crate) region: String,
    pub(crate) secret_id: String,
    pub(crate) version_id: Option<String>,
    pub(crate) version_stage: Option<String>,
}

impl Fetch {
    pub(crate) fn is_current(&self) -> bool {
        self.version_id.is_none() && self.version_stage.is_none()
    }
}

/// One request after the local checks.
#[derive(Debug)]
pub(crate) struct Planned {
    pub(crate) request: usize,
    pub(crate) fetch: usize,
    pub(crate) reference: String,
    pub(crate) field: Option<String>,
    pub(crate) notes: Vec<String>,
}

/// The request's identity and object, or the error that fails it before any request.
pub(crate) fn plan(variable: &str, secret: &Secret) -> Result<(Identity, PlannedFetch), Error> {
    let Some(aws) = &secret.aws_secrets_manager else {
        return Err(Error::new(
            ErrorKind::Unexpected,
            "the secret has no aws_secrets_manager entry",
        )
        .with_variable(variable));
    };
    let server = &aws.server;
    let effective_region =
        non_empty(&aws.region).or(Some(server.region.as_str()).filter(|r| !r.is_empty()));
    let from_arn = arn_region(&aws.secret_id);
    let (call_region, note) = match (non_empty(&aws.region), effective_region, from_arn) {
        (Some(own), _, _) => (Some(own), None),
        (None, Some(effective), Some(arn)) if arn != effective => (
            Some(arn),
            Some(format!(
                "read from {arn}, the region in the secret's ARN, instead of AWS_REGION \
                 {effective} (GitLab Runner would call {effective})"
            )),
        ),
        (None, effective, arn) => (effective.or(arn), None),
    };
    let reference = reference(aws, call_region.unwrap_or(""));
    let fail = |kind, message: String, fix: &str| {
        Err(Error::new(kind, message)
            .with_variable(variable)
            .with_reference(&reference)
            .with_fix(fix))
    };
    if aws.secret_id.is_empty() {
        return fail(
            ErrorKind::InvalidSpec,
            "secret_id is empty".to_owned(),
            "name the secret: `aws_secrets_manager: <id>[#field]` or `secret_id:` (a short \
             form starting with '#' has no id)",
        );
    }
    let version_id = non_empty(&aws.version_id);
    let version_stage = non_empty(&aws.version_stage);
    if version_id.is_some() && version_stage.is_some() {
        return fail(
            ErrorKind::InvalidSpec,
            "version_id and version_stage are both set; AWS accepts only one".to_owned(),
            "remove one: version_id pins one version, version_stage (AWSCURRENT, AWSPREVIOUS \
             or a custom label) follows a label",
        );
    }
    let role_arn = non_empty(&aws.role_arn).or_else(|| non_empty(&server.role_arn));
    let auth = match role_arn {
        Some(role_arn) => Auth::WebIdentity {
            role_arn: role_arn.to_owned(),
            session_name: non_empty(&aws.role_session_name)
                .or_else(|| non_empty(&server.role_session_name))
                .unwrap_or_default()
                .to_owned(),
            token: SecretString::from(server.jwt.expose().to_owned()),
        },
        None if !server.jwt.is_empty() => {
            return fail(
                ErrorKind::InvalidConfig,
                "Role ARN is required when using JWT for AWS authentication".to_owned(),
                "set the CI/CD variable AWS_ROLE_ARN (or `role_arn:` on the secret) to the role \
                 to assume with the ID token; if you did not mean to use OIDC, rename the ID \
                 token called AWS_ID_TOKEN: AWS secrets use $AWS_ID_TOKEN by default, so \
                 defining it selects OIDC",
            );
        }
        None => Auth::DefaultChain,
    };
    let (Some(identity_region), Some(call_region)) = (effective_region.or(from_arn), call_region)
    else {
        return fail(
            ErrorKind::InvalidConfig,
            "no AWS region".to_owned(),
            "set the CI/CD variable AWS_REGION or `region:` on the secret",
        );
    };
    Ok((
        Identity {
            region: identity_region.to_owned(),
            auth,
        },
        PlannedFetch {
            region: call_region.to_owned(),
            secret_id: aws.secret_id.clone(),
            version_id: version_id.map(str::to_owned),
            version_stage: version_stage.map(str::to_owned),
            reference,
            field: non_empty(&aws.field).map(str::to_owned),
            notes: note.into_iter().collect(),
        },
    ))
}

/// A planned request before identities are numbered.
#[derive(Debug)]
pub(crate) struct PlannedFetch {
    pub(crate) region: String,
    pub(crate) secret_id: String,
    pub(crate) version_id: Option<String>,
    pub(crate) version_stage: Option<String>,
    pub(crate) reference: String,
    pub(crate) field: Option<String>,
    pub(crate) notes: Vec<String>,
}

/// `aws_secrets_manager <id>[#field] [version_id <v>] [version_stage <s>] in <region>`, with
/// the region actually called.
pub(crate) fn reference(aws: &AwsSecret, region: &str) -> String {
    let mut out = format!("aws_secrets_manager {}", aws.secret_id);
    if let Some(field) = non_empty(&aws.field) {
        out.push('#');
        out.push_str(field);
    }
    if let Some(id) = non_empty(&aws.version_id) {
        out.push_str(" version_id ");
        out.push_str(id);
    }
    if let Some(stage) = non_empty(&aws.version_stage) {
        out.push_str(" version_stage ");
        out.push_str(stage);
    }
    if !region.is_empty() {
        out.push_str(" in ");
        out.push_str(region);
    }
    out
}

/// Every secret checked and grouped: identities, distinct objects, and per secret its object,
/// or its error.
#[derive(Debug, Default)]
pub(crate) struct Planning {
    pub(crate) identities: Vec<Identity>,
    pub(crate) fetches: Vec<Fetch>,
    pub(crate) planned: Vec<Planned>,
    pub(crate) failed: Vec<(usize, Error)>,
}

impl Planning {
    /// Checks and groups `secrets` (variable, entry), in order.
    pub(crate) fn of<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a Secret)>) -> Self {
        let mut out = Self::default();
        let Self {
            identities,
            fetches,
            planned,
            failed,
        } = &mut out;
        for (i, (variable, secret)) in secrets.into_iter().enumerate() {
            let (identity, p) = match plan(variable, secret) {
                Ok(ok) => ok,
                Err(err) => {
                    failed.push((i, err));
                    continue;
                }
            };
            let identity = match identities.iter().position(|known| known.same_as(&identity)) {
                Some(known) => known,
                None => {
                    identities.push(identity);
                    identities.len() - 1
                }
            };
            let fetch = Fetch {
                identity,
                region: p.region,
                secret_id: p.secret_id,
                version_id: p.version_id,
                version_stage: p.version_stage,
            };
            let fetch = match fetches.iter().position(|known| *known == fetch) {
                Some(known) => known,
                None => {
                    fetches.push(fetch);
                    fetches.len() - 1
                }
            };
            planned.push(Planned {
                request: i,
                fetch,
                reference: p.reference,
                field: p.field,
                notes: p.notes,
            });
        }
        out
    }
}

/// The distinct objects of identity `identity`.
pub(crate) fn objects_of(fetches: &[Fetch], identity: usize) -> Vec<usize> {
    (0..fetches.len())
        .filter(|&f| fetches[f].identity == identity)
        .collect()
}

/// How one identity's objects in one region are read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Schedule {
    /// `BatchGetSecretValue` calls, at most [`BATCH_LIMIT`] objects each.
    pub(crate) batches: Vec<Vec<usize>>,
    /// `GetSecretValue` calls, one object each.
    pub(crate) singles: Vec<usize>,
}

impl Schedule {
    /// Current-version objects in batches when batching is on and there are at least two
    /// (a lone one is one `GetSecretValue`); version-pinned objects alone.
    pub(crate) fn of(fetches: &[Fetch], objects: &[usize], batching: bool) -> Self {
        let (current, pinned): (Vec<usize>, Vec<usize>) =
            objects.iter().partition(|&&f| fetches[f].is_current());
        if batching && current.len() >= 2 {
            Self {
                batches: current.chunks(BATCH_LIMIT).map(<[usize]>::to_vec).collect(),
                singles: pinned,
            }
        } else {
            Self {
                batches: Vec::new(),
                singles: current.into_iter().chain(pinned).collect(),
            }
        }
    }
}

/// The regions of `objects`, in first-use order.
pub(crate) fn regions<'a>(fetches: &'a [Fetch], objects: &[usize]) -> Vec<&'a str> {
    let mut regions: Vec<&str> = Vec::new();
    for &f in objects {
        if !regions.contains(&fetches[f].region.as_str()) {
            regions.push(&fetches[f].region);
        }
    }
    regions
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrets_core::payload::AwsServer;

    fn request(variable: &str, aws: AwsSecret) -> (String, Secret) {
        (
            variable.into(),
            Secret {
                aws_secrets_manager: Some(Box::new(aws)),
                ..Secret::default()
            },
        )
    }

    fn plan((variable, secret): &(String, Secret)) -> Result<(Identity, PlannedFetch), Error> {
        super::plan(variable, secret)
    }

    fn secret(id: &str) -> AwsSecret {
        AwsSecret {
            secret_id: id.into(),
            server: AwsServer {
                region: "us-east-1".into(),
                ..AwsServer::default()
            },
            ..AwsSecret::default()
        }
    }

    #[test]
    fn local_checks_fail_before_any_request() {
        let mut both = secret("db");
        both.version_id = Some("v1".into());
        both.version_stage = Some("AWSCURRENT".into());
        let err = plan(&request("DB", both)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSpec);
        assert!(
            err.to_string().starts_with(
                "DB (aws_secrets_manager db version_id v1 version_stage AWSCURRENT in us-east-1): \
             version_id and version_stage are both set"
            ),
            "{err}"
        );

        let mut jwt = secret("db");
        jwt.server.jwt = "a.b.c".into();
        let err = plan(&request("DB", jwt)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert_eq!(
            err.message(),
            "Role ARN is required when using JWT for AWS authentication"
        );
        assert!(err.fix().unwrap().contains("AWS_ROLE_ARN"));
        assert!(err.fix().unwrap().contains("AWS_ID_TOKEN"));
        assert!(!err.to_string().contains("a.b.c"));

        let err = plan(&request("DB", secret(""))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSpec);

        let mut no_region = secret("db");
        no_region.server.region.clear();
        let err = plan(&request("DB", no_region)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.fix().unwrap().contains("AWS_REGION"));
    }

    #[test]
    fn per_secret_values_win_and_empty_counts_as_unset() {
        let mut s = secret("db");
        s.server.role_arn = Some("arn:aws:iam::1:role/server".into());
        s.server.role_session_name = Some("server-session".into());
        s.role_arn = Some(String::new());
        s.role_session_name = Some("own-session".into());
        s.region = Some("eu-west-1".into());
        let (identity, fetch) = plan(&request("DB", s)).unwrap();
        assert_eq!(identity.region, "eu-west-1");
        assert_eq!(fetch.region, "eu-west-1");
        let Auth::WebIdentity {
            role_arn,
            session_name,
            ..
        } = identity.auth
        else {
            panic!("web identity expected");
        };
        assert_eq!(role_arn, "arn:aws:iam::1:role/server");
        assert_eq!(session_name, "own-session");
    }

    #[test]
    fn arn_region_is_called_with_a_note() {
        let arn = "arn:aws:secretsmanager:eu-west-1:987654321098:secret:shared-AbCdEf";
        let (identity, fetch) = plan(&request("S", secret(arn))).unwrap();
        assert_eq!(
            identity.region, "us-east-1",
            "STS and the chain stay in AWS_REGION"
        );
        assert_eq!(fetch.region, "eu-west-1");
        assert_eq!(fetch.notes.len(), 1);
        assert!(fetch.notes[0].contains("eu-west-1"), "{:?}", fetch.notes);

        let mut own = secret(arn);
        own.region = Some("us-east-2".into());
        let (_, fetch) = plan(&request("S", own)).unwrap();
        assert_eq!(fetch.region, "us-east-2", "an explicit region wins");
        assert!(fetch.notes.is_empty());

        let same = "arn:aws:secretsmanager:us-east-1:987654321098:secret:shared-AbCdEf";
        let (_, fetch) = plan(&request("S", secret(same))).unwrap();
        assert!(fetch.notes.is_empty());
    }
}
