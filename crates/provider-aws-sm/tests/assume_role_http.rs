//! `AssumeRoleBuilder` against `wiremock`: the exact STS requests (unsigned web identity,
//! `DurationSeconds`, the chained `AssumeRole` signed with the first credentials), and the
//! refusals LocalStack does not make (trust policy, audience, chained role), each classified,
//! explained and free of tokens and credentials.
#![allow(
    clippy::disallowed_methods,
    reason = "tests and test support read the real environment and clock"
)]

mod common;

use common::*;
use provider_aws_sm::AssumeRoleBuilder;
use secrecy::{ExposeSecret, SecretString};
use secrets_core::ErrorKind;
use std::collections::BTreeMap;
use std::time::Duration;
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const ROLE: &str = "arn:aws:iam::123456789012:role/gitlab-ci";
const CHAINED: &str = "arn:aws:iam::210987654321:role/deploy";
const WEB_KEY: &str = "ASIAWEBIDENTITYKEY";
const CHAINED_KEY: &str = "ASIACHAINEDKEY";
const SECRET_CANARY: &str = "secret-key-canary-91c2";
const SESSION_CANARY: &str = "session-token-canary-3e7d";

fn credentials_xml(action: &str, key: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(
        format!(
            r#"<{action}Response xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <{action}Result>
    <Credentials>
      <AccessKeyId>{key}</AccessKeyId>
      <SecretAccessKey>{SECRET_CANARY}</SecretAccessKey>
      <SessionToken>{SESSION_CANARY}</SessionToken>
      <Expiration>2100-01-01T00:00:00Z</Expiration>
    </Credentials>
  </{action}Result>
  <ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata>
</{action}Response>"#
        ),
        "text/xml",
    )
}

fn sts_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(
        format!(
            r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>"#
        ),
        "text/xml",
    )
}

async fn mount(server: &MockServer, action: &str, answer: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(body_string_contains(format!("Action={action}&").as_str()))
        .respond_with(answer)
        .mount(server)
        .await;
}

fn env(uri: &str) -> Vec<(String, String)> {
    vec![
        ("AWS_ENDPOINT_URL_STS".into(), uri.into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ]
}

fn web(uri: &str, token: &str) -> AssumeRoleBuilder {
    AssumeRoleBuilder::web_identity(ROLE, SecretString::from(token.to_owned()))
        .with_region("eu-west-1")
        .with_session_name("1001-42-gitlab.example.com")
        .with_env_vars(env(uri))
        .with_context(ctx())
}

fn form(r: &Request) -> BTreeMap<String, String> {
    let body = String::from_utf8(r.body.clone()).unwrap();
    body.split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            let v = v
                .replace("%3A", ":")
                .replace("%2F", "/")
                .replace("%40", "@");
            (k.to_owned(), v)
        })
        .collect()
}

fn no_secrets(text: &str) {
    for canary in [
        TOKEN_CANARY,
        SECRET_CANARY,
        SESSION_CANARY,
        "must not be shown",
    ] {
        assert!(!text.contains(canary), "{canary} in {text}");
    }
}

#[tokio::test]
async fn web_identity_is_one_unsigned_call_with_the_duration() {
    let server = MockServer::start().await;
    mount(
        &server,
        "AssumeRoleWithWebIdentity",
        credentials_xml("AssumeRoleWithWebIdentity", WEB_KEY),
    )
    .await;
    let ctx = ctx();
    let c = web(&server.uri(), &job_token())
        .with_duration(Duration::from_secs(1800))
        .with_context(ctx.clone())
        .fetch()
        .await
        .unwrap();
    assert_eq!(c.access_key_id().expose_secret(), WEB_KEY);
    assert_eq!(c.secret_access_key().expose_secret(), SECRET_CANARY);
    assert_eq!(c.session_token().unwrap().expose_secret(), SESSION_CANARY);
    assert_eq!(
        c.expiration_rfc3339().as_deref(),
        Some("2100-01-01T00:00:00Z")
    );
    assert_eq!(c.region(), "eu-west-1");
    no_secrets(&format!("{c:?}"));

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert!(
        requests[0].headers.get("authorization").is_none(),
        "unsigned"
    );
    let params = form(&requests[0]);
    assert_eq!(params["Action"], "AssumeRoleWithWebIdentity");
    assert_eq!(params["RoleArn"], ROLE);
    assert_eq!(params["RoleSessionName"], "1001-42-gitlab.example.com");
    assert_eq!(params["DurationSeconds"], "1800");
    assert!(params["WebIdentityToken"].ends_with(TOKEN_CANARY));
    assert_eq!(
        ctx.requests.get(provider_aws_sm::requests::STS_ASSUME_ROLE),
        1
    );
}

#[tokio::test]
async fn chaining_signs_assume_role_with_the_first_credentials() {
    let server = MockServer::start().await;
    mount(
        &server,
        "AssumeRoleWithWebIdentity",
        credentials_xml("AssumeRoleWithWebIdentity", WEB_KEY),
    )
    .await;
    mount(
        &server,
        "AssumeRole",
        credentials_xml("AssumeRole", CHAINED_KEY),
    )
    .await;
    let ctx = ctx();
    let c = web(&server.uri(), &job_token())
        .then_assume_role(CHAINED)
        .with_duration(Duration::from_secs(900))
        .with_context(ctx.clone())
        .fetch()
        .await
        .unwrap();
    assert_eq!(c.access_key_id().expose_secret(), CHAINED_KEY);
    assert!(c.describe().contains(CHAINED), "{}", c.describe());
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let first = form(&requests[0]);
    assert!(
        !first.contains_key("DurationSeconds"),
        "first hop: STS default"
    );
    let chained = form(&requests[1]);
    assert_eq!(chained["Action"], "AssumeRole");
    assert_eq!(chained["RoleArn"], CHAINED);
    assert_eq!(chained["DurationSeconds"], "900");
    let auth = requests[1]
        .headers
        .get("authorization")
        .expect("signed")
        .to_str()
        .unwrap();
    assert!(auth.contains(&format!("Credential={WEB_KEY}/")), "{auth}");
    assert_eq!(
        requests[1].headers.get("x-amz-security-token").unwrap(),
        SESSION_CANARY
    );
    assert_eq!(
        ctx.requests.get(provider_aws_sm::requests::STS_ASSUME_ROLE),
        2
    );
}

#[tokio::test]
async fn refusals_are_classified_and_explained() {
    let cases = [
        (
            "AccessDenied",
            403,
            "Not authorized to perform sts:AssumeRoleWithWebIdentity",
            ErrorKind::Unauthenticated,
            "StringEquals",
        ),
        (
            "InvalidIdentityToken",
            400,
            "Incorrect token audience",
            ErrorKind::Unauthenticated,
            "\"gitlab.example.com:aud\"",
        ),
        (
            "IDPCommunicationError",
            400,
            "could not reach",
            ErrorKind::Unavailable,
            "retry",
        ),
    ];
    for (code, status, message, kind, fix) in cases {
        let server = MockServer::start().await;
        mount(
            &server,
            "AssumeRoleWithWebIdentity",
            sts_error(status, code, &format!("{message}; must not be shown")),
        )
        .await;
        let err = web(&server.uri(), &job_token()).fetch().await.unwrap_err();
        let text = err.to_string();
        assert_eq!(err.kind(), kind, "{code}: {text}");
        assert!(text.contains(code), "{text}");
        assert!(text.contains(ROLE), "{text}");
        assert!(text.contains("aud sts.amazonaws.com"), "{text}");
        assert!(text.contains(fix), "{code}: {text}");
        no_secrets(&text);
    }
}

#[tokio::test]
async fn a_refused_chained_role_names_both_roles() {
    let server = MockServer::start().await;
    mount(
        &server,
        "AssumeRoleWithWebIdentity",
        credentials_xml("AssumeRoleWithWebIdentity", WEB_KEY),
    )
    .await;
    mount(
        &server,
        "AssumeRole",
        sts_error(403, "AccessDenied", "must not be shown"),
    )
    .await;
    let err = web(&server.uri(), &job_token())
        .then_assume_role(CHAINED)
        .fetch()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{text}");
    assert!(
        text.contains(&format!("AssumeRole for role {CHAINED}")),
        "{text}"
    );
    assert!(text.contains(&format!("signed by {ROLE}")), "{text}");
    assert!(text.contains("trust policy"), "{text}");
    no_secrets(&text);
    assert!(!text.contains(WEB_KEY), "{text}");
}

#[tokio::test]
async fn bad_settings_and_tokens_fail_before_any_request() {
    let server = MockServer::start().await;
    let expired = token("sts.amazonaws.com", "project_path:g/p", 1_000);
    let cases: Vec<(AssumeRoleBuilder, &str)> = vec![
        (web(&server.uri(), &expired), "expired"),
        (web(&server.uri(), ""), "empty"),
        (web(&server.uri(), "not-a-jwt"), "not a valid JWT"),
        (
            web(&server.uri(), &job_token()).with_session_name("host:8443"),
            "session name",
        ),
        (
            web(&server.uri(), &job_token()).with_duration(Duration::from_secs(60)),
            "duration of 60 s",
        ),
        (
            web(&server.uri(), &job_token())
                .then_assume_role(CHAINED)
                .with_duration(Duration::from_secs(7200)),
            "role chaining",
        ),
        (
            AssumeRoleBuilder::web_identity("role/ci", SecretString::from(job_token()))
                .with_region("eu-west-1")
                .with_session_name("s1")
                .with_env_vars(env(&server.uri())),
            "not an IAM role ARN",
        ),
        (
            AssumeRoleBuilder::web_identity(ROLE, SecretString::from(job_token()))
                .with_session_name("s1")
                .with_env_vars(env(&server.uri())),
            "no AWS region",
        ),
    ];
    for (builder, want) in cases {
        let err = builder.fetch().await.unwrap_err();
        let text = err.to_string();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{text}");
        assert!(text.contains(want), "want {want:?}: {text}");
        no_secrets(&text);
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}
