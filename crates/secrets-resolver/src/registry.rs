//! Which providers this build has, by cargo feature.

use secrets_core::ProviderKind;

/// The cargo feature that compiles in `kind`, or `None` for providers this project does not
/// implement yet.
pub fn feature_for(kind: ProviderKind) -> Option<&'static str> {
    match kind {
        ProviderKind::Vault => Some("vault"),
        ProviderKind::AwsSecretsManager => Some("aws-sm"),
        _ => None,
    }
}

/// The providers compiled into this build.
pub fn compiled_providers() -> Vec<ProviderKind> {
    let mut out = Vec::new();
    if cfg!(feature = "aws-sm") {
        out.push(ProviderKind::AwsSecretsManager);
    }
    if cfg!(feature = "vault") {
        out.push(ProviderKind::Vault);
    }
    out
}

impl crate::ResolverBuilder {
    /// Registers every provider compiled into this build, configured from the process
    /// environment: Vault TLS settings (`VAULT_CACERT`, ...), the AWS credential chain and
    /// endpoint overrides (`AWS_ENDPOINT_URL`, ...).
    pub fn with_default_providers(self) -> Result<Self, secrets_core::Error> {
        #[allow(unused_mut, reason = "no provider may be compiled in")]
        let mut builder = self;
        #[cfg(feature = "vault")]
        {
            builder = builder.with_provider(std::sync::Arc::new(
                provider_vault::VaultProvider::from_env()?,
            ));
        }
        #[cfg(feature = "aws-sm")]
        {
            builder = builder.with_provider(std::sync::Arc::new(
                provider_aws_sm::AwsSecretsManagerProvider::builder().build()?,
            ));
        }
        Ok(builder)
    }
}
