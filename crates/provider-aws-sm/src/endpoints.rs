//! Where the SDK's clients will send their calls, found before any call is made, so the
//! connections can be opened ahead of them (see [`crate::transport`]).

use aws_types::SdkConfig;
use aws_types::service_config::ServiceConfigKey;
use http::Uri;

/// The URL Secrets Manager's client of `sdk` calls in `region`, found as the SDK finds it:
/// the client's own endpoint URL, else `AWS_ENDPOINT_URL_SECRETS_MANAGER` or the profile's
/// `services` section, else `AWS_ENDPOINT_URL`, else the regional endpoint (FIPS and dual
/// stack as configured). `None` when the SDK would not resolve one either.
pub(crate) async fn secrets_manager(sdk: &SdkConfig, region: &str) -> Option<Uri> {
    use aws_sdk_secretsmanager::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
    let params = Params::builder()
        .region(region)
        .use_fips(sdk.use_fips().unwrap_or(false))
        .use_dual_stack(sdk.use_dual_stack().unwrap_or(false))
        .set_endpoint(configured(sdk, "Secrets Manager"))
        .build()
        .ok()?;
    let resolved = DefaultResolver::new()
        .resolve_endpoint(&params)
        .await
        .ok()?;
    resolved.url().parse().ok()
}

/// The URL STS's client of `sdk` calls in `region` (`AssumeRoleWithWebIdentity`), found the
/// same way (`AWS_ENDPOINT_URL_STS`, ...; the regional endpoint by default).
pub(crate) async fn sts(sdk: &SdkConfig, region: &str) -> Option<Uri> {
    use aws_sdk_sts::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
    let params = Params::builder()
        .region(region)
        .use_fips(sdk.use_fips().unwrap_or(false))
        .use_dual_stack(sdk.use_dual_stack().unwrap_or(false))
        .use_global_endpoint(false)
        .set_endpoint(configured(sdk, "STS"))
        .build()
        .ok()?;
    let resolved = DefaultResolver::new()
        .resolve_endpoint(&params)
        .await
        .ok()?;
    resolved.url().parse().ok()
}

/// The endpoint URL configured for `service_id`: the client config's own, else the
/// service's variable or profile entry, else the shared `AWS_ENDPOINT_URL`.
fn configured(sdk: &SdkConfig, service_id: &str) -> Option<String> {
    if sdk.get_origin("endpoint_url").is_client_config() {
        return sdk.endpoint_url().map(str::to_owned);
    }
    let key = ServiceConfigKey::builder()
        .service_id(service_id)
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()
        .ok()?;
    sdk.service_config()
        .and_then(|conf| conf.load_config(key))
        .or_else(|| sdk.endpoint_url().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::config::RuntimeComponents;
    use aws_smithy_runtime_api::client::http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_types::region::Region;
    use std::sync::{Arc, Mutex};

    /// An HTTP client that records the URI of each request and answers nothing.
    #[derive(Debug, Clone, Default)]
    struct Capture(Arc<Mutex<Vec<Uri>>>);

    impl HttpClient for Capture {
        fn http_connector(
            &self,
            _: &HttpConnectorSettings,
            _: &RuntimeComponents,
        ) -> SharedHttpConnector {
            SharedHttpConnector::new(self.clone())
        }
    }

    impl HttpConnector for Capture {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            self.0.lock().unwrap().push(request.uri().parse().unwrap());
            HttpConnectorFuture::ready(Err(ConnectorError::user("captured".into())))
        }
    }

    impl Capture {
        fn only(&self) -> Uri {
            let sent = self.0.lock().unwrap().clone();
            assert_eq!(sent.len(), 1, "one attempt");
            sent[0].clone()
        }
    }

    async fn sdk_with(vars: &[(&str, &str)]) -> SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .env(aws_types::os_shim_internal::Env::from_slice(vars))
            .fs(aws_types::os_shim_internal::Fs::from_slice(&[]))
            .region(Region::new("eu-west-1"))
            .credentials_provider(aws_credential_types::Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await
    }

    /// Where the SDK's own clients send `GetSecretValue` and `AssumeRoleWithWebIdentity`.
    async fn dispatched(sdk: &SdkConfig, region: &str) -> (Uri, Uri) {
        let sm = Capture::default();
        let conf = aws_sdk_secretsmanager::config::Builder::from(sdk)
            .region(Region::new(region.to_owned()))
            .http_client(sm.clone())
            .build();
        let _ = aws_sdk_secretsmanager::Client::from_conf(conf)
            .get_secret_value()
            .secret_id("x")
            .send()
            .await;
        let sts = Capture::default();
        let conf = aws_sdk_sts::config::Builder::from(sdk)
            .region(Region::new(region.to_owned()))
            .http_client(sts.clone())
            .build();
        let _ = aws_sdk_sts::Client::from_conf(conf)
            .assume_role_with_web_identity()
            .role_arn("arn:aws:iam::1:role/x")
            .role_session_name("session")
            .web_identity_token("token")
            .send()
            .await;
        (sm.only(), sts.only())
    }

    fn origin(uri: &Uri) -> (Option<&str>, Option<&str>, Option<u16>) {
        (uri.scheme_str(), uri.host(), uri.port_u16())
    }

    #[tokio::test]
    async fn the_endpoints_opened_ahead_are_the_ones_the_sdk_calls() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")],
            &[
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
                (
                    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
                    "https://sm.example.test:8443",
                ),
            ],
            &[("AWS_ENDPOINT_URL_STS", "https://sts.example.test")],
            &[("AWS_STS_REGIONAL_ENDPOINTS", "legacy")],
            &[("AWS_USE_FIPS_ENDPOINT", "true")],
            &[("AWS_USE_DUALSTACK_ENDPOINT", "true")],
            &[
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
                ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
            ],
        ];
        for vars in cases {
            let sdk = sdk_with(vars).await;
            for region in ["eu-west-1", "us-east-1", "us-gov-west-1", "cn-north-1"] {
                let (sm, sts_sent) = dispatched(&sdk, region).await;
                let ours = secrets_manager(&sdk, region).await.expect("an endpoint");
                assert_eq!(origin(&ours), origin(&sm), "SM {vars:?} in {region}");
                let ours = sts(&sdk, region).await.expect("an endpoint");
                assert_eq!(origin(&ours), origin(&sts_sent), "STS {vars:?} in {region}");
            }
        }
    }
}
