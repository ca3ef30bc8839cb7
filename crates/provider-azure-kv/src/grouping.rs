//! The offline half of a resolution, shared by the live path and the plan: each secret
//! checked without I/O (vault URL, tenant, client, token present, name and version), grouped
//! by identity (tenant, client, ID token), and each identity's distinct reads and tokens.

use provider_http::Failure;
use provider_http::tls::{display_url, display_url_text};
use reqwest::Url;
use secrets_core::payload::AzureSecret;
use secrets_core::{Error, ErrorKind, Secret};
use std::collections::HashMap;

/// The Key Vault DNS suffixes whose token resource is known, so no challenge is sent:
/// (suffix, resource). Public cloud, Azure China, Azure US Government. (Managed HSM holds no
/// secrets.)
pub const KNOWN_SUFFIXES: &[(&str, &str)] = &[
    ("vault.azure.net", "https://vault.azure.net"),
    ("vault.azure.cn", "https://vault.azure.cn"),
    ("vault.usgovcloudapi.net", "https://vault.usgovcloudapi.net"),
];

/// Whether `name` is a valid Key Vault object name (`^[0-9A-Za-z-]{1,127}$`).
pub fn valid_secret_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Whether `version` is empty (latest) or a plausible version id (Key Vault's are 32 hex
/// digits; any `[0-9A-Za-z-]` up to 127 is sent, so that the service says what is wrong).
fn valid_version(version: &str) -> bool {
    version.len() <= 127
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Whether a tenant can go in a URL path as is (a GUID or a domain name).
fn valid_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Whether `host` is a loopback name, the only hosts reached over plain http.
pub(crate) fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Which token a vault needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    /// A known suffix: its resource.
    Known(&'static str),
    /// Another host: the resource comes from its challenge (one per vault host).
    Challenge(String),
}

/// The scope of a vault host.
pub(crate) fn scope_of(host: &str) -> Scope {
    let host = host.to_ascii_lowercase();
    KNOWN_SUFFIXES
        .iter()
        .find(|(suffix, _)| host.ends_with(&format!(".{suffix}")))
        .map_or(Scope::Challenge(host.clone()), |(_, resource)| {
            Scope::Known(resource)
        })
}

/// One distinct read: the vault (base URL), the name and the version.
#[derive(Debug, Clone)]
pub(crate) struct Read {
    pub(crate) vault: Url,
    pub(crate) vault_display: String,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) scope: Scope,
}

impl Read {
    /// `<vault>/secrets/<name>/<version>` (the latest version: `<name>/`, as the runner).
    pub(crate) fn url(&self) -> Url {
        let mut url = self.vault.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}/secrets/{}/{}", self.name, self.version));
        url.query_pairs_mut()
            .append_pair("api-version", crate::API_VERSION);
        url
    }

    fn same(&self, other: &Read) -> bool {
        self.vault == other.vault
            && self.name.eq_ignore_ascii_case(&other.name)
            && self.version.eq_ignore_ascii_case(&other.version)
    }
}

/// One secret that passed the offline checks.
#[derive(Debug)]
pub(crate) struct Planned<'a> {
    pub(crate) index: usize,
    pub(crate) variable: &'a str,
    pub(crate) reference: String,
    /// Its read, an index into the group's reads.
    pub(crate) read: usize,
}

/// Who asks Entra for a token. Holds the ID token, so it has no `Debug`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct IdentityKey<'a> {
    pub(crate) tenant: &'a str,
    pub(crate) client: &'a str,
    pub(crate) jwt: &'a str,
}

/// The secrets of one identity.
pub(crate) struct Group<'a> {
    pub(crate) key: IdentityKey<'a>,
    pub(crate) members: Vec<Planned<'a>>,
    pub(crate) reads: Vec<Read>,
}

impl Group<'_> {
    /// The distinct scopes of the reads, in first-use order.
    pub(crate) fn scopes(&self) -> Vec<&Scope> {
        let mut out: Vec<&Scope> = Vec::new();
        for r in &self.reads {
            if !out.contains(&&r.scope) {
                out.push(&r.scope);
            }
        }
        out
    }

    /// How many challenges the live path sends (one per non-known vault host).
    pub(crate) fn challenges(&self) -> usize {
        self.scopes()
            .iter()
            .filter(|s| matches!(s, Scope::Challenge(_)))
            .count()
    }
}

fn show(s: &str) -> &str {
    if s.is_empty() { "(empty)" } else { s }
}

/// `azure_key_vault secret db-password version (latest) at https://kv.vault.azure.net`, the
/// URL without credentials.
pub(crate) fn reference(a: &AzureSecret) -> String {
    let version = a.version.as_deref().filter(|v| !v.is_empty());
    format!(
        "azure_key_vault secret {} version {} at {}",
        show(&a.name),
        version.unwrap_or("(latest)"),
        show(&display_url_text(a.server.url.trim_end_matches('/'))),
    )
}

fn invalid(message: impl Into<String>, fix: &str) -> Failure {
    Failure::new(ErrorKind::InvalidConfig, message).with_fix(fix)
}

/// The vault URL, checked: https (http only to a loopback host), a host, no credentials.
pub(crate) fn parse_vault_url(raw: &str) -> Result<Url, Failure> {
    let fix = "set the AZURE_KEY_VAULT_SERVER_URL CI/CD variable to the vault's URI, e.g. https://my-vault.vault.azure.net/";
    if raw.trim().is_empty() {
        return Err(invalid("the Key Vault URL is empty", fix));
    }
    let mut url = Url::parse(raw.trim())
        .map_err(|e| invalid(format!("the Key Vault URL is not a valid URL ({e})"), fix))?;
    let shown = display_url(&url);
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && is_loopback(&url));
    if !scheme_ok || url.host().is_none() {
        return Err(invalid(
            format!("the Key Vault URL {shown} is not an https URL with a host"),
            fix,
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            format!("the Key Vault URL {shown} carries credentials"),
            fix,
        ));
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// Checks one secret offline: its identity and read, or its error.
fn check<'a>(
    variable: &'a str,
    secret: &'a Secret,
) -> Result<(IdentityKey<'a>, Read, String), Error> {
    let Some(a) = secret.azure_key_vault.as_deref() else {
        return Err(Error::new(
            ErrorKind::InvalidSpec,
            "the secret has no `azure_key_vault` entry but was given to the Azure Key Vault provider",
        )
        .with_variable(variable));
    };
    let reference = reference(a);
    let fail = |e: Failure| e.to_core(variable, &reference);
    let vault = parse_vault_url(&a.server.url).map_err(fail)?;
    if !valid_tenant(&a.server.tenant_id) {
        return Err(fail(invalid(
            if a.server.tenant_id.is_empty() {
                "the Entra tenant ID is empty".to_owned()
            } else {
                "the Entra tenant ID is not a GUID or a domain name".to_owned()
            },
            "set the AZURE_TENANT_ID CI/CD variable to the directory (tenant) ID of the app",
        )));
    }
    if a.server.client_id.trim().is_empty() {
        return Err(fail(invalid(
            "the Entra client ID is empty",
            "set the AZURE_CLIENT_ID CI/CD variable to the application (client) ID of the app",
        )));
    }
    if a.server.jwt.is_empty() {
        return Err(fail(
            Failure::new(ErrorKind::Unauthenticated, "the ID token is empty").with_fix(
                "define `id_tokens:` in the job (aud: api://AzureADTokenExchange), or give the secret a `token:`",
            ),
        ));
    }
    if !valid_secret_name(&a.name) {
        return Err(fail(
            Failure::new(
                ErrorKind::InvalidSpec,
                format!(
                    "{:?} is not a valid Key Vault secret name; no request was sent",
                    a.name
                ),
            )
            .with_fix("secret names are 1 to 127 characters of 0-9, a-z, A-Z and -"),
        ));
    }
    let version = a.version.clone().unwrap_or_default();
    if !valid_version(&version) {
        return Err(fail(
            Failure::new(
                ErrorKind::InvalidSpec,
                format!("{version:?} is not a valid Key Vault secret version; no request was sent"),
            )
            .with_fix("a version is the 32-character id shown in the portal, or leave it out for the latest"),
        ));
    }
    let scope = scope_of(vault.host_str().unwrap_or_default());
    let read = Read {
        vault_display: display_url(&vault),
        vault,
        name: a.name.clone(),
        version,
        scope,
    };
    let key = IdentityKey {
        tenant: a.server.tenant_id.as_str(),
        client: a.server.client_id.as_str(),
        jwt: a.server.jwt.expose(),
    };
    Ok((key, read, reference))
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
        let (key, read, reference) = match check(variable, secret) {
            Ok(ok) => ok,
            Err(e) => {
                failed.push((index, e));
                continue;
            }
        };
        let g = *group_of.entry(key.clone()).or_insert_with(|| {
            groups.push(Group {
                key,
                members: Vec::new(),
                reads: Vec::new(),
            });
            groups.len() - 1
        });
        let group = &mut groups[g];
        let at = group
            .reads
            .iter()
            .position(|r| r.same(&read))
            .unwrap_or_else(|| {
                group.reads.push(read);
                group.reads.len() - 1
            });
        group.members.push(Planned {
            index,
            variable,
            reference,
            read: at,
        });
    }
    (groups, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_suffixes() {
        assert!(valid_secret_name("db-password"));
        assert!(valid_secret_name(&"a".repeat(127)));
        assert!(!valid_secret_name(&"a".repeat(128)));
        assert!(!valid_secret_name(""));
        assert!(!valid_secret_name("db_password"));
        assert!(!valid_secret_name("../x"));
        assert_eq!(
            scope_of("KV.Vault.Azure.NET"),
            Scope::Known("https://vault.azure.net")
        );
        assert_eq!(
            scope_of("kv.vault.azure.cn"),
            Scope::Known("https://vault.azure.cn")
        );
        assert_eq!(
            scope_of("kv.vault.usgovcloudapi.net"),
            Scope::Known("https://vault.usgovcloudapi.net")
        );
        assert_eq!(
            scope_of("vault.azure.net.evil.example"),
            Scope::Challenge("vault.azure.net.evil.example".into())
        );
    }

    #[test]
    fn vault_urls() {
        assert!(parse_vault_url("https://kv.vault.azure.net/").is_ok());
        assert!(parse_vault_url("http://127.0.0.1:8080").is_ok());
        assert!(parse_vault_url("http://kv.vault.azure.net/").is_err());
        assert!(parse_vault_url("").is_err());
        let err = parse_vault_url("https://u:pw@kv.vault.azure.net").unwrap_err();
        assert!(!err.message.contains("pw"), "{err}");
    }
}
