"""Contract test of the Google fakes with Google's own Python clients.

google-auth's identity_pool credentials exchange an ID token at the fake STS (form body), and
google-cloud-secret-manager on its REST transport reads versions from the fake Secret Manager.
Reads latest, pinned, regional and impersonated values, triggers errors and checks that the
clients raise their own exception types. Prints one JSON line with what it read; the Rust
test (tests/contract.rs) compares it with the fixture.

Usage: python gcp_contract.py CONFIG.json (written by the Rust test; holds ID tokens, mode 0600).
"""

import json
import sys

from google.api_core import exceptions as api_exceptions
from google.api_core.client_options import ClientOptions
from google.auth import exceptions as auth_exceptions
from google.auth import identity_pool
from google.cloud import secretmanager

SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def credentials(cfg, token_file, audience, impersonate=None):
    info = {
        "type": "external_account",
        "audience": audience,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": cfg["gcp_url"] + "/v1/token",
        "credential_source": {"file": token_file},
    }
    if impersonate:
        info["service_account_impersonation_url"] = (
            cfg["gcp_url"]
            + "/v1/projects/-/serviceAccounts/"
            + impersonate
            + ":generateAccessToken"
        )
    return identity_pool.Credentials.from_info(info, scopes=[SCOPE])


def client(cfg, creds):
    return secretmanager.SecretManagerServiceClient(
        credentials=creds,
        transport="rest",
        client_options=ClientOptions(api_endpoint=cfg["gcp_url"]),
    )


def read(sm, name):
    response = sm.access_secret_version(request={"name": name})
    return response.name, response.payload.data.decode("utf-8"), response.payload.data_crc32c


def expect(kind, fn, needle):
    try:
        fn()
    except kind as err:
        text = str(err)
        if needle not in text:
            raise AssertionError(f"{kind.__name__} without {needle!r}: {text}") from err
        return type(err).__name__
    raise AssertionError(f"expected {kind.__name__}, nothing raised")


def expect_status(fn, status):
    """REST errors map to exception classes by HTTP status (FAILED_PRECONDITION is a 400,
    BadRequest; PERMISSION_DENIED a 403, Forbidden); `error.status` carries the canonical code."""
    try:
        fn()
    except api_exceptions.GoogleAPICallError as err:
        body = err.response.json()["error"]
        if body["status"] != status:
            raise AssertionError(f"expected {status}: {body}") from err
        return f"{type(err).__name__}/{body['status']}"
    raise AssertionError(f"expected {status}, nothing raised")


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        cfg = json.load(f)
    project = cfg["project"]
    base = f"projects/{project}"
    sm = client(cfg, credentials(cfg, cfg["token_file"], cfg["audience"]))

    values = {}
    for key, name in {
        "latest": f"{base}/secrets/api-key/versions/latest",
        "pinned": f"{base}/secrets/api-key/versions/1",
        "by_project_id": f"projects/{cfg['project_id']}/secrets/db-password/versions/latest",
        "regional": f"{base}/locations/us-east1/secrets/regional-key/versions/latest",
        "regional_pinned": f"{base}/locations/us-east1/secrets/regional-key/versions/1",
    }.items():
        resolved, value, crc = read(sm, name)
        values[key] = {"name": resolved, "value": value, "crc32c": crc}

    # Helper path methods build the same names.
    path = sm.secret_version_path(project, "multi", "latest")
    values["multi_latest"] = {"name": read(sm, path)[0], "value": read(sm, path)[1]}

    errors = {
        "not_found": expect(
            api_exceptions.NotFound,
            lambda: read(sm, f"{base}/secrets/nope/versions/latest"),
            "not found",
        ),
        "disabled": expect_status(
            lambda: read(sm, f"{base}/secrets/multi/versions/2"), "FAILED_PRECONDITION"
        ),
        "destroyed": expect_status(
            lambda: read(sm, f"{base}/secrets/multi/versions/3"), "FAILED_PRECONDITION"
        ),
        "permission_denied": expect_status(
            lambda: read(sm, f"{base}/secrets/restricted/versions/1"), "PERMISSION_DENIED"
        ),
    }

    # STS errors surface as google-auth's OAuthError with Google's error code.
    long_sm = client(cfg, credentials(cfg, cfg["long_subject_token_file"], cfg["audience"]))
    errors["subject_too_long"] = expect(
        auth_exceptions.OAuthError,
        lambda: read(long_sm, f"{base}/secrets/api-key/versions/latest"),
        "invalid_request",
    )
    missing_sm = client(cfg, credentials(cfg, cfg["token_file"], cfg["missing_audience"]))
    errors["invalid_target"] = expect(
        auth_exceptions.OAuthError,
        lambda: read(missing_sm, f"{base}/secrets/api-key/versions/latest"),
        "invalid_target",
    )
    expired_sm = client(cfg, credentials(cfg, cfg["expired_token_file"], cfg["audience"]))
    errors["expired"] = expect(
        auth_exceptions.OAuthError,
        lambda: read(expired_sm, f"{base}/secrets/api-key/versions/latest"),
        "invalid_grant",
    )

    # Impersonation through IAM Credentials.
    sa_sm = client(
        cfg, credentials(cfg, cfg["token_file"], cfg["audience"], impersonate=cfg["service_account"])
    )
    resolved, value, _ = read(sa_sm, f"{base}/secrets/sa-only/versions/latest")
    values["impersonated"] = {"name": resolved, "value": value}
    errors["federated_not_sa"] = expect_status(
        lambda: read(sm, f"{base}/secrets/sa-only/versions/latest"), "PERMISSION_DENIED"
    )

    print(json.dumps({"values": values, "errors": errors}, sort_keys=True))


if __name__ == "__main__":
    main()
