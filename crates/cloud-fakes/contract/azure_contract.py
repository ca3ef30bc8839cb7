"""Contract test of the Azure fakes with Azure's own Python clients.

azure-identity's ClientAssertionCredential (MSAL underneath) gets a token from the fake Entra
ID with the ID token as the client assertion, and azure-keyvault-secrets' SecretClient reads
from the fake vault through the real challenge flow. Both talk to the real host names
(login.microsoftonline.com, <vault>.vault.azure.net) over TLS: `socket.getaddrinfo` is
overridden below to send those names to the fake's loopback port, and SSL_CERT_FILE /
REQUESTS_CA_BUNDLE (set by the caller) trust the fake's test CA. Prints one JSON line with
what it read; the Rust test (tests/contract.rs) compares it with the fixture.

Usage: python azure_contract.py CONFIG.json (written by the Rust test; holds ID tokens, 0600).
"""

import json
import socket
import sys

with open(sys.argv[1], encoding="utf-8") as _f:
    CFG = json.load(_f)

_REAL_GETADDRINFO = socket.getaddrinfo


def _fake_getaddrinfo(host, port, *args, **kwargs):
    """Sends the Azure names to the fake; everything else resolves as usual."""
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name == "login.microsoftonline.com" or name.endswith(".vault.azure.net"):
        return _REAL_GETADDRINFO("127.0.0.1", CFG["azure_port"], *args, **kwargs)
    return _REAL_GETADDRINFO(host, port, *args, **kwargs)


socket.getaddrinfo = _fake_getaddrinfo

# Imported after the override so nothing resolves the names before it is in place.
from azure.core.exceptions import (  # noqa: E402
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.identity import ClientAssertionCredential  # noqa: E402
from azure.keyvault.secrets import SecretClient  # noqa: E402
import msal  # noqa: E402


def credential(client_id, token):
    return ClientAssertionCredential(
        tenant_id=CFG["tenant"], client_id=client_id, func=lambda: token
    )


def secrets(client_id, token, vault_url=None):
    return SecretClient(vault_url=vault_url or CFG["vault_url"], credential=credential(client_id, token))


def expect(kind, fn, needle):
    try:
        fn()
    except kind as err:
        text = str(err)
        if needle not in text:
            raise AssertionError(f"{kind.__name__} without {needle!r}: {text}") from err
        return type(err).__name__
    raise AssertionError(f"expected {kind.__name__}, nothing raised")


def main():
    client = secrets(CFG["client_id"], CFG["token"])
    values = {}
    latest = client.get_secret("db-password")
    values["latest"] = {"value": latest.value, "version": latest.properties.version,
                        "content_type": latest.properties.content_type}
    pinned = client.get_secret("db-password", CFG["pinned_version"])
    values["pinned"] = {"value": pinned.value, "version": pinned.properties.version}
    other = client.get_secret("api-key")
    values["api_key"] = {"value": other.value, "version": other.properties.version}

    def status_of(name, code):
        def run():
            try:
                client.get_secret(name)
            except HttpResponseError as err:
                if err.status_code != code:
                    raise AssertionError(f"{name}: status {err.status_code}") from err
                raise
        return run

    errors = {
        "not_found": expect(ResourceNotFoundError, lambda: client.get_secret("nope"), "SecretNotFound"),
        "disabled": expect(HttpResponseError, status_of("disabled-secret", 403), "SecretDisabled"),
        "rbac": expect(HttpResponseError, status_of("restricted", 403), "ForbiddenByRbac"),
        "no_federated_credential": expect(
            ClientAuthenticationError,
            lambda: secrets(CFG["client_id"], CFG["wrong_subject_token"]).get_secret("api-key"),
            "AADSTS70021",
        ),
        "expired_assertion": expect(
            ClientAuthenticationError,
            lambda: secrets(CFG["client_id"], CFG["expired_token"]).get_secret("api-key"),
            "AADSTS700024",
        ),
        "unknown_app": expect(
            ClientAuthenticationError,
            lambda: secrets(CFG["unknown_client_id"], CFG["token"]).get_secret("api-key"),
            "AADSTS700016",
        ),
        "malformed": expect(
            ClientAuthenticationError,
            lambda: secrets(CFG["client_id"], "$AZURE_JWT").get_secret("api-key"),
            "AADSTS50027",
        ),
    }

    # MSAL itself, as the Go runner's azidentity uses it: tenant discovery first
    # (/<tenant>/v2.0/.well-known/openid-configuration), then the token endpoint it names.
    authority = f"https://login.microsoftonline.com/{CFG['tenant']}"
    app = msal.ConfidentialClientApplication(
        CFG["client_id"], client_credential={"client_assertion": CFG["token"]}, authority=authority
    )
    result = app.acquire_token_for_client(scopes=["https://vault.azure.net/.default"])
    if "access_token" not in result or result.get("token_type") != "Bearer":
        raise AssertionError(f"MSAL got no token: {sorted(result)}")
    values["msal_token"] = {"token_type": result["token_type"], "has_expiry": "expires_in" in result}
    bad = msal.ConfidentialClientApplication(
        CFG["client_id"],
        client_credential={"client_assertion": CFG["wrong_subject_token"]},
        authority=authority,
    )
    failed = bad.acquire_token_for_client(scopes=["https://vault.azure.net/.default"])
    errors["msal_no_federated_credential"] = {
        "error": failed.get("error"),
        "error_codes": failed.get("error_codes"),
    }
    print(json.dumps({"values": values, "errors": errors}, sort_keys=True))


if __name__ == "__main__":
    main()
