//! Fake Key Vault data plane: `GET /secrets/<name>[/<version>]?api-version=…`.

use super::{AzureState, Request, VAULT_RESOURCE};
use crate::counts::Kind;
use crate::fixture::{AzureSecret, Vault};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// Key Vault's error body: `{"error":{"code":…,"message":…[,"innererror":{"code":…}]}}`.
fn kv_error(status: StatusCode, code: &str, message: &str, inner: Option<&str>) -> Response {
    let mut error = json!({ "code": code, "message": message });
    if let Some(inner) = inner {
        error["innererror"] = json!({ "code": inner });
    }
    json_response(status, &json!({ "error": error }))
}

/// The 401 with the bearer challenge naming the vault's tenant and the Key Vault resource.
fn challenge(vault: &Vault, message: &str) -> Response {
    let mut response = kv_error(StatusCode::UNAUTHORIZED, "Unauthorized", message, None);
    let value = format!(
        "Bearer authorization=\"https://{}/{}\", resource=\"{VAULT_RESOURCE}\"",
        super::LOGIN_HOST,
        vault.tenant
    );
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// An injected fault (`POST /_fake/faults`) in Key Vault's error shape, with `Retry-After: 1`.
fn fault(state: &AzureState, kind: Kind) -> Option<Response> {
    let status = state.counters.take_fault(kind)?;
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = if status == 429 {
        kv_error(
            code,
            "Throttled",
            "Request was not processed because too many requests were received. Reason: \
             VaultRequestTypeLimitReached",
            None,
        )
    } else if status == 500 {
        kv_error(
            code,
            "InternalServerError",
            "An unexpected error occurred.",
            None,
        )
    } else {
        kv_error(
            code,
            "ServiceUnavailable",
            "The service is temporarily unavailable.",
            None,
        )
    };
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    Some(response)
}

fn not_found(what: &str) -> Response {
    kv_error(
        StatusCode::NOT_FOUND,
        "SecretNotFound",
        &format!(
            "A secret with (name/id) {what} was not found in this key vault. If you recently \
             deleted this secret you may be able to recover it using the correct recovery \
             command. For help resolving this issue, please see \
             https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
        None,
    )
}

pub(crate) fn handle(state: &AzureState, vault_name: &str, request: &Request) -> Response {
    let Some(vault) = state
        .fixture
        .vaults
        .iter()
        .find(|v| v.name.eq_ignore_ascii_case(vault_name))
    else {
        // An unknown vault name does not resolve in DNS; the nearest thing here is a 404.
        return (StatusCode::NOT_FOUND, "").into_response();
    };
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    let (name, version) = match segments.as_slice() {
        ["secrets", name] | ["secrets", name, ""] => (*name, None),
        ["secrets", name, version] => (*name, Some(*version)),
        _ => {
            return kv_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                "The requested resource was not found.",
                None,
            );
        }
    };
    if request.method != Method::GET {
        return kv_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "BadRequest",
            "The requested method is not supported by this fake.",
            None,
        );
    }
    let Some(api_version) = request.query.get("api-version").filter(|v| !v.is_empty()) else {
        return kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The request URI must contain the query parameter 'api-version'.",
            None,
        );
    };
    state.counters.api_version(api_version);

    let Some(bearer) = crate::util::bearer(&request.headers) else {
        state.counters.hit(Kind::AzureChallenge);
        if let Some(response) = fault(state, Kind::AzureChallenge) {
            return response;
        }
        return challenge(vault, "AKV10000: Request is missing a Bearer or PoP token.");
    };
    state.counters.hit(Kind::AzureGet);
    if let Some(response) = fault(state, Kind::AzureGet) {
        return response;
    }
    let Some(token) = state.token(bearer) else {
        return challenge(vault, "AKV10016: The token is invalid or has expired.");
    };
    if token.resource != VAULT_RESOURCE {
        return challenge(vault, "AKV10022: Invalid audience.");
    }
    if !token.tenant.eq_ignore_ascii_case(&vault.tenant) {
        return challenge(
            vault,
            &format!(
                "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{}/, found \
                 https://sts.windows.net/{}/.",
                vault.tenant, token.tenant
            ),
        );
    }
    if !super::valid_secret_name(name) {
        return kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The request URI contains an invalid name: secret names may contain only 0-9, a-z, \
             A-Z and -, and are 1 to 127 characters long.",
            None,
        );
    }
    let secret = vault
        .secrets
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(name));
    if !may_read(vault, secret, &token.client_id) {
        return kv_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "Caller is not authorized to perform action on resource.\r\nIf role assignments, \
                 deny assignments or role definitions were changed recently, please observe \
                 propagation time.\r\nCaller: appid={};oid={};iss=https://sts.windows.net/{}/\r\n\
                 Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: \
                 '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/ci-secrets-\
                 tests/providers/microsoft.keyvault/vaults/{}/secrets/{name}'\r\nAssignment: \
                 (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: 'DeniedWithNoValidRBAC' \
                 \r\nVault: {};location=westeurope\r\n",
                token.client_id,
                token.object_id,
                token.tenant,
                vault.name.to_ascii_lowercase(),
                vault.name.to_ascii_lowercase()
            ),
            Some("ForbiddenByRbac"),
        );
    }
    let Some(secret) = secret else {
        return not_found(name);
    };
    let found = match version {
        None => secret.versions.last(),
        Some(v) => secret
            .versions
            .iter()
            .find(|x| x.id.eq_ignore_ascii_case(v)),
    };
    let Some(found) = found else {
        return not_found(&format!("{name}/{}", version.unwrap_or_default()));
    };
    if !found.enabled {
        return kv_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Operation get is not allowed on a disabled secret.",
            Some("SecretDisabled"),
        );
    }
    let mut body = json!({
        "value": found.value,
        "id": format!("https://{}{}/secrets/{}/{}", vault.name, super::VAULT_SUFFIX, secret.name, found.id),
        "attributes": {
            "enabled": true,
            "created": found.created,
            "updated": found.created,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        },
    });
    if let Some(content_type) = &found.content_type {
        body["contentType"] = json!(content_type);
    }
    if !found.tags.is_empty() {
        body["tags"] = json!(found.tags);
    }
    json_response(StatusCode::OK, &body)
}

/// The secret's own assignments override the vault's; neither set means every app of the
/// tenant may read.
fn may_read(vault: &Vault, secret: Option<&AzureSecret>, client_id: &str) -> bool {
    let readers = secret
        .and_then(|s| s.readers.as_ref())
        .or(vault.readers.as_ref());
    readers.is_none_or(|r| r.iter().any(|c| c.eq_ignore_ascii_case(client_id)))
}
