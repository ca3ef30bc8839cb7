//! The one registration table: every provider this facade knows, the cargo feature that
//! compiles it in and, when compiled, its offline description and its builder. Nothing else
//! in the resolver or the CLI names a provider.

use secrets_core::{Environment, Error, ProviderDescriptor, ProviderKind, SecretProvider};
use std::sync::Arc;

/// Builds a provider from the resolving process's environment snapshot.
type Build = fn(&Environment) -> Result<Arc<dyn SecretProvider>, Error>;

/// One provider of the table.
#[derive(Debug, Clone, Copy)]
struct Registration {
    kind: ProviderKind,
    feature: &'static str,
    compiled: Option<(&'static dyn ProviderDescriptor, Build)>,
}

/// The table.
const TABLE: &[Registration] = &[
    Registration {
        kind: ProviderKind::Vault,
        feature: "vault",
        #[cfg(feature = "vault")]
        compiled: Some((&provider_vault::DESCRIPTOR, |env| {
            Ok(Arc::new(
                provider_vault::VaultProviderBuilder::new()
                    .with_env(env.clone())
                    .build()?,
            ))
        })),
        #[cfg(not(feature = "vault"))]
        compiled: None,
    },
    Registration {
        kind: ProviderKind::AwsSecretsManager,
        feature: "aws-sm",
        #[cfg(feature = "aws-sm")]
        compiled: Some((&provider_aws_sm::DESCRIPTOR, |env| {
            Ok(Arc::new(
                provider_aws_sm::AwsSecretsManagerBuilder::new()
                    .with_env(env.clone())
                    .build()?,
            ))
        })),
        #[cfg(not(feature = "aws-sm"))]
        compiled: None,
    },
    Registration {
        kind: ProviderKind::GitlabSecretsManager,
        feature: "gitlab-sm",
        #[cfg(feature = "gitlab-sm")]
        compiled: Some((&provider_gitlab_sm::DESCRIPTOR, |env| {
            Ok(Arc::new(
                provider_gitlab_sm::GitlabSecretsManagerBuilder::new()
                    .with_env(env.clone())
                    .build()?,
            ))
        })),
        #[cfg(not(feature = "gitlab-sm"))]
        compiled: None,
    },
    Registration {
        kind: ProviderKind::GcpSecretManager,
        feature: "gcp-sm",
        #[cfg(feature = "gcp-sm")]
        compiled: Some((&provider_gcp_sm::DESCRIPTOR, |env| {
            Ok(Arc::new(
                provider_gcp_sm::GcpSecretManagerBuilder::new()
                    .with_env(env.clone())
                    .build()?,
            ))
        })),
        #[cfg(not(feature = "gcp-sm"))]
        compiled: None,
    },
    Registration {
        kind: ProviderKind::AzureKeyVault,
        feature: "azure-kv",
        #[cfg(feature = "azure-kv")]
        compiled: Some((&provider_azure_kv::DESCRIPTOR, |env| {
            Ok(Arc::new(
                provider_azure_kv::AzureKeyVaultBuilder::new()
                    .with_env(env.clone())
                    .build()?,
            ))
        })),
        #[cfg(not(feature = "azure-kv"))]
        compiled: None,
    },
];

/// The cargo feature that compiles in `kind`, or `None` for providers this project does not
/// implement yet.
pub fn feature_for(kind: ProviderKind) -> Option<&'static str> {
    TABLE.iter().find(|r| r.kind == kind).map(|r| r.feature)
}

/// The providers compiled into this build.
pub fn compiled_providers() -> Vec<ProviderKind> {
    descriptors().map(|d| d.kind()).collect()
}

/// The descriptions of the providers compiled into this build.
pub fn descriptors() -> impl Iterator<Item = &'static dyn ProviderDescriptor> {
    TABLE.iter().filter_map(|r| r.compiled.map(|(d, _)| d))
}

/// The description of `kind`, when it is compiled in.
pub fn descriptor_for(kind: ProviderKind) -> Option<&'static dyn ProviderDescriptor> {
    descriptors().find(|d| d.kind() == kind)
}

/// The tracing targets of the compiled providers (their own crates), and the dependencies
/// whose debug output must stay quiet unless asked for by name.
pub fn log_targets() -> (Vec<&'static str>, Vec<&'static str>) {
    let own = descriptors().flat_map(|d| d.log_targets().iter().copied());
    let quiet = descriptors().flat_map(|d| d.quiet_log_targets().iter().copied());
    (own.collect(), quiet.collect())
}

impl crate::ResolverBuilder {
    /// Registers every provider compiled into this build, configured from a snapshot of the
    /// process environment: Vault TLS settings (`VAULT_CACERT`, ...), the AWS credential
    /// chain and endpoint overrides (`AWS_ENDPOINT_URL`, ...).
    pub fn with_default_providers(self) -> Result<Self, Error> {
        self.with_default_providers_from(&Environment::capture())
    }

    /// Registers every provider compiled into this build, configured from `env`, which the
    /// resolution's providers also read (pass the snapshot the caller took once).
    pub fn with_default_providers_from(mut self, env: &Environment) -> Result<Self, Error> {
        for (_, build) in TABLE.iter().filter_map(|r| r.compiled) {
            self = self.with_provider(build(env)?);
        }
        Ok(self.with_environment(env.clone()))
    }
}
