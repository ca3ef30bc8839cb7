//! `GET /v1/{name=projects/*[/locations/*]/secrets/*/versions/*}:access`.

use super::{GcpState, Principal, api_error};
use crate::counts::Kind;
use crate::fixture::{Checksum, GcpSecret, VersionState};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

/// A parsed version name.
#[derive(Debug, PartialEq, Eq)]
struct VersionName<'a> {
    project: &'a str,
    location: Option<&'a str>,
    secret: &'a str,
    version: &'a str,
}

fn parse_name(name: &str) -> Option<VersionName<'_>> {
    let parts: Vec<&str> = name.split('/').collect();
    let (project, location, secret, version) = match parts.as_slice() {
        ["projects", p, "secrets", s, "versions", v] => (*p, None, *s, *v),
        ["projects", p, "locations", l, "secrets", s, "versions", v] => (*p, Some(*l), *s, *v),
        _ => return None,
    };
    Some(VersionName {
        project,
        location,
        secret,
        version,
    })
}

pub(crate) async fn access(
    State(state): State<GcpState>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(name) = rest.strip_suffix(":access") else {
        return api_error(StatusCode::NOT_FOUND, "NOT_FOUND", "Method not found.");
    };
    state.counters.hit(Kind::GcpAccess);
    if let Some(status) = state.counters.take_fault(Kind::GcpAccess) {
        return super::fault(status);
    }
    let Some(token) = crate::util::bearer(&headers) else {
        return super::missing_credentials();
    };
    let Some(principal) = state.principal(token) else {
        return super::invalid_credentials();
    };
    let Some(parsed) = parse_name(name) else {
        return api_error(StatusCode::NOT_FOUND, "NOT_FOUND", "Method not found.");
    };
    if [parsed.project, parsed.secret, parsed.version]
        .iter()
        .chain(parsed.location.as_ref())
        .any(|s| s.is_empty())
    {
        return api_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            &format!("Invalid resource field value in the request: name '{name}'."),
        );
    }
    serve(&state, &principal, &parsed)
}

fn serve(state: &GcpState, principal: &Principal, name: &VersionName<'_>) -> Response {
    let number = state.project_number(name.project);
    let secret_name = match name.location {
        None => format!("projects/{number}/secrets/{}", name.secret),
        Some(l) => format!("projects/{number}/locations/{l}/secrets/{}", name.secret),
    };
    let requested = format!("{secret_name}/versions/{}", name.version);
    let found: Option<&GcpSecret> = state.fixture.secrets.iter().find(|s| {
        s.project == number && s.location.as_deref() == name.location && s.secret == name.secret
    });
    let Some(secret) = found else {
        // Without a grant on a secret that does not exist, Google cannot tell the two apart.
        return api_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Secret [{secret_name}] not found or has no versions."),
        );
    };
    let allowed = secret
        .accessors
        .as_ref()
        .is_none_or(|members| members.iter().any(|m| principal.is_member(m)));
    if !allowed {
        return api_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            &format!(
                "Permission 'secretmanager.versions.access' denied for resource '{requested}' \
                 (or it may not exist)."
            ),
        );
    }
    let index = if name.version == "latest" {
        secret.versions.len().checked_sub(1)
    } else {
        name.version
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=secret.versions.len()).contains(n))
            .map(|n| n - 1)
    };
    let Some(index) = index else {
        return api_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Secret Version [{requested}] not found."),
        );
    };
    let version = &secret.versions[index];
    let resolved = format!("{secret_name}/versions/{}", index + 1);
    if version.state != VersionState::Enabled {
        return api_error(
            StatusCode::BAD_REQUEST,
            "FAILED_PRECONDITION",
            &format!(
                "Secret Version [{resolved}] is in {} state.",
                version.state.google_name()
            ),
        );
    }
    let data = version.bytes();
    let crc = crc32c::crc32c(&data);
    let mut payload = json!({
        "data": base64::engine::general_purpose::STANDARD.encode(&data),
    });
    match secret.checksum {
        Checksum::Ok => payload["dataCrc32c"] = json!(crc.to_string()),
        Checksum::Corrupt => payload["dataCrc32c"] = json!(crc.wrapping_add(1).to_string()),
        Checksum::Missing => {}
    }
    let body = json!({ "name": resolved, "payload": payload });
    let mut response = (StatusCode::OK, super::json_text(&body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(
            parse_name("projects/1/secrets/s/versions/latest"),
            Some(VersionName {
                project: "1",
                location: None,
                secret: "s",
                version: "latest"
            })
        );
        assert_eq!(
            parse_name("projects/1/locations/us-east1/secrets/s/versions/2").map(|n| n.location),
            Some(Some("us-east1"))
        );
        assert_eq!(parse_name("projects/1/secrets/s"), None);
        assert_eq!(
            parse_name("projects/1/secrets/projects/1/secrets/s/versions/1"),
            None
        );
    }

    #[test]
    fn crc32c_is_castagnoli() {
        // RFC 3720 B.4: 32 bytes of zeros.
        assert_eq!(crc32c::crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
    }
}
