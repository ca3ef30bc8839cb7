//! Fake Entra ID: tenant discovery, instance discovery and the v2.0 token endpoint for
//! `client_credentials` with a federated `client_assertion`.

use super::{AzureState, EntraToken, Request, VAULT_RESOURCE};
use crate::counts::Kind;
use crate::fixture::{App, Tenant};
use crate::jwt;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long an issued access token lives.
const LIFETIME: u64 = 3599;

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    response
}

/// An Entra error body: the OAuth fields plus `error_codes`, `timestamp`, `trace_id`,
/// `correlation_id` and `error_uri`; the description starts with `AADSTS<code>: ` and ends with
/// the trace, correlation and time lines.
fn entra_error(
    status: StatusCode,
    error: &str,
    code: u32,
    message: &str,
    request: &Request,
) -> Response {
    let trace = crate::util::guid();
    let correlation = request
        .headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(crate::util::guid, str::to_owned);
    let timestamp = crate::util::entra_timestamp(crate::util::now_unix());
    let description = format!(
        "AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}"
    );
    json_response(
        status,
        &json!({
            "error": error,
            "error_description": description,
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://{}/error?code={code}", super::LOGIN_HOST),
        }),
    )
}

/// An injected fault (`POST /_fake/faults`) in Entra's error shape, with `Retry-After: 1`.
fn fault(state: &AzureState, kind: Kind, request: &Request) -> Option<Response> {
    let status = state.counters.take_fault(kind)?;
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = entra_error(
        code,
        "temporarily_unavailable",
        90033,
        "A transient error has occurred. Please try again.",
        request,
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    Some(response)
}

pub(crate) async fn handle(state: &AzureState, request: &Request) -> Response {
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    match (&request.method, segments.as_slice()) {
        (&Method::GET, ["common", "discovery", "instance"]) => instance_discovery(state, request),
        (&Method::GET, [tenant, "v2.0", ".well-known", "openid-configuration"]) => {
            discovery(state, tenant, request)
        }
        (&Method::POST, [tenant, "oauth2", "v2.0", "token"]) => token(state, tenant, request).await,
        _ => (StatusCode::NOT_FOUND, "").into_response(),
    }
}

fn find_tenant<'a>(state: &'a AzureState, tenant: &str) -> Option<&'a Tenant> {
    state
        .fixture
        .tenants
        .iter()
        .find(|t| t.id.eq_ignore_ascii_case(tenant))
}

fn tenant_not_found(tenant: &str, request: &Request) -> Response {
    entra_error(
        StatusCode::BAD_REQUEST,
        "invalid_tenant",
        90002,
        &format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and \
             are signing into the correct cloud. Check with your subscription administrator, this \
             may happen if there are no active subscriptions for the tenant."
        ),
        request,
    )
}

/// `GET /common/discovery/instance?api-version=1.1&authorization_endpoint=…`: what MSAL asks
/// for an authority it does not know.
fn instance_discovery(state: &AzureState, request: &Request) -> Response {
    state.counters.hit(Kind::AzureInstanceDiscovery);
    if let Some(response) = fault(state, Kind::AzureInstanceDiscovery, request) {
        return response;
    }
    let endpoint = request
        .query
        .get("authorization_endpoint")
        .map(String::as_str)
        .unwrap_or_default();
    // https://<host>/<tenant>/oauth2/v2.0/authorize
    let tenant = endpoint
        .strip_prefix("https://")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(host, _)| host.split(':').next() == Some(super::LOGIN_HOST))
        .and_then(|(_, path)| path.split('/').next())
        .filter(|t| !t.is_empty());
    let Some(tenant) = tenant else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({
                "error": "invalid_instance",
                "error_description": "AADSTS50049: Unknown or invalid instance.",
                "error_codes": [50049],
            }),
        );
    };
    json_response(
        StatusCode::OK,
        &json!({
            "tenant_discovery_endpoint": format!(
                "https://{}/{tenant}/v2.0/.well-known/openid-configuration",
                request.host
            ),
            "api-version": "1.1",
            "metadata": [{
                "preferred_network": super::LOGIN_HOST,
                "preferred_cache": "login.windows.net",
                "aliases": [
                    super::LOGIN_HOST, "login.windows.net", "login.microsoft.com",
                    "sts.windows.net", "login.windows-ppe.net"
                ],
            }],
        }),
    )
}

/// `GET /<tenant>/v2.0/.well-known/openid-configuration`, with the members the real document
/// has (MSAL reads `authorization_endpoint`, `token_endpoint` and `issuer`). URLs use the host
/// as the client sent it, so a client on a non-default port stays on it.
fn discovery(state: &AzureState, tenant: &str, request: &Request) -> Response {
    state.counters.hit(Kind::AzureDiscovery);
    if let Some(response) = fault(state, Kind::AzureDiscovery, request) {
        return response;
    }
    let Some(tenant) = find_tenant(state, tenant) else {
        return tenant_not_found(tenant, request);
    };
    let base = format!("https://{}/{}", request.host, tenant.id);
    json_response(
        StatusCode::OK,
        &json!({
            "token_endpoint": format!("{base}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": [
                "client_secret_post", "private_key_jwt", "client_secret_basic"
            ],
            "jwks_uri": format!("https://{}/{}/discovery/v2.0/keys", request.host, tenant.id),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("https://{}/{}/v2.0", super::LOGIN_HOST, tenant.id),
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
            "claims_supported": [
                "sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time",
                "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash",
                "c_hash", "email"
            ],
            "kerberos_endpoint": format!("{base}/kerberos"),
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }),
    )
}

/// `POST /<tenant>/oauth2/v2.0/token`.
async fn token(state: &AzureState, tenant_id: &str, request: &Request) -> Response {
    state.counters.hit(Kind::AzureToken);
    if let Some(response) = fault(state, Kind::AzureToken, request) {
        return response;
    }
    let form = crate::util::form(&request.body);
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let bad = |error: &str, code: u32, message: &str| {
        entra_error(StatusCode::BAD_REQUEST, error, code, message, request)
    };

    let Some(tenant) = find_tenant(state, tenant_id) else {
        return tenant_not_found(tenant_id, request);
    };
    let grant = get("grant_type");
    if grant.is_empty() {
        return bad(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        );
    }
    if grant != "client_credentials" {
        return bad(
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant}'."),
        );
    }
    let client_id = get("client_id");
    if client_id.is_empty() {
        return bad(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    }
    let scope = get("scope");
    if scope.is_empty() {
        return bad(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        );
    }
    let Some(app) = tenant
        .apps
        .iter()
        .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    else {
        return bad(
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'. \
                 This can happen if the application has not been installed by the administrator \
                 of the tenant or consented to by any user in the tenant. You may have sent your \
                 authentication request to the wrong tenant.",
                tenant.id
            ),
        );
    };
    let assertion = get("client_assertion");
    if assertion.is_empty() {
        return bad(
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or \
             'client_secret'.",
        );
    }
    if get("client_assertion_type") != ASSERTION_TYPE {
        return bad(
            "invalid_request",
            7000219,
            &format!("'client_assertion_type' must be '{ASSERTION_TYPE}'."),
        );
    }
    let resource = match scope
        .split_whitespace()
        .find_map(|s| s.strip_suffix("/.default"))
    {
        Some(r) if r.trim_end_matches('/') == VAULT_RESOURCE => VAULT_RESOURCE,
        Some(r) => {
            return bad(
                "invalid_resource",
                500011,
                &format!(
                    "The resource principal named {r} was not found in the tenant named {}. This \
                     can happen if the application has not been installed by the administrator of \
                     the tenant or consented to by any user in the tenant. You might have sent \
                     your authentication request to the wrong tenant.",
                    tenant.id
                ),
            );
        }
        None => {
            return bad(
                "invalid_scope",
                1002012,
                &format!(
                    "The provided value for scope {scope} is not valid. Client credential flows \
                     must have a scope value with /.default suffixed to the resource identifier \
                     (application ID URI)."
                ),
            );
        }
    };
    if let Err(response) = check_assertion(state, app, assertion, request).await {
        return response;
    }

    let access_token = format!("eyJ0eXAiOiJKV1QifQ.fake-{}", crate::util::random_hex(24));
    state.store(
        access_token.clone(),
        EntraToken {
            tenant: tenant.id.clone(),
            client_id: app.client_id.clone(),
            object_id: app
                .object_id
                .clone()
                .unwrap_or_else(|| "00000000-0000-0000-0000-000000000000".to_owned()),
            resource: resource.to_owned(),
            expires_at: crate::util::now_unix() + LIFETIME,
        },
    );
    json_response(
        StatusCode::OK,
        &json!({
            "token_type": "Bearer",
            "expires_in": LIFETIME,
            "ext_expires_in": LIFETIME,
            "access_token": access_token,
        }),
    )
}

/// Checks a federated client assertion: well-formed, in its time range, matching a federated
/// credential exactly on issuer, subject and audience, and signed by the issuer's key.
async fn check_assertion(
    state: &AzureState,
    app: &App,
    assertion: &str,
    request: &Request,
) -> Result<(), Response> {
    let bad = |error: &str, code: u32, message: &str| {
        entra_error(StatusCode::BAD_REQUEST, error, code, message, request)
    };
    let Some(parsed) = jwt::parse(assertion) else {
        return Err(bad(
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        ));
    };
    let now = crate::util::now_unix();
    let exp = parsed.num_claim("exp").unwrap_or_default();
    let nbf = parsed
        .num_claim("nbf")
        .or(parsed.num_claim("iat"))
        .unwrap_or_default();
    if exp <= now || nbf > now + 300 {
        return Err(bad(
            "invalid_client",
            700024,
            &format!(
                "Client assertion is not within its valid time range. Current time: {}, \
                 assertion valid from {}, expiry time of assertion {}. Review the documentation \
                 at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
                crate::util::rfc3339(now),
                crate::util::rfc3339(nbf),
                crate::util::rfc3339(exp)
            ),
        ));
    }
    let iss = parsed.str_claim("iss").unwrap_or_default().to_owned();
    let sub = parsed.str_claim("sub").unwrap_or_default().to_owned();
    let audiences = parsed.audiences();
    let credential = app
        .federated_credentials
        .iter()
        .find(|fc| fc.issuer == iss && fc.subject == sub && audiences.contains(&fc.audience));
    let Some(credential) = credential else {
        return Err(bad(
            "invalid_request",
            70021,
            &format!(
                "No matching federated identity record found for presented assertion. Assertion \
                 Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{}'. \
                 https://learn.microsoft.com/entra/workload-id/workload-identity-federation",
                audiences.join(",")
            ),
        ));
    };
    if state
        .jwks
        .verify(assertion, &parsed, &credential.issuer)
        .await
        .is_err()
    {
        return Err(bad(
            "invalid_client",
            50013,
            "Assertion failed signature validation. [Reason - The key was not found.]",
        ));
    }
    Ok(())
}
