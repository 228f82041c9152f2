"""Discovery: RFC 8414 metadata, the OpenID configuration alias, and the JWKS endpoint."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from starlette.routing import Route

from authority import metadata as metadata_module
from authority.app import create_app
from authority.context import Services
from authority.endpoints import discovery, paths
from authority.metadata import build_metadata
from authority.settings import Settings
from authority.tokens.jose import AGENT_ALGORITHMS

METADATA_PATHS = [paths.OAUTH_AUTHORIZATION_SERVER, paths.OPENID_CONFIGURATION]


async def get_metadata(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get(paths.OAUTH_AUTHORIZATION_SERVER)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.parametrize("path", METADATA_PATHS)
async def test_both_documents_are_the_one_metadata(
    client: httpx.AsyncClient, settings: Settings, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"].startswith("public, max-age=")
    assert response.json() == build_metadata(settings)


async def test_the_metadata_names_every_endpoint_and_value(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    doc = await get_metadata(client)
    issuer = settings.issuer
    algorithms = list(AGENT_ALGORITHMS)
    client_auth = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
    assert doc == {
        "issuer": issuer,
        "token_endpoint": issuer + "/oauth2/token",
        "introspection_endpoint": issuer + "/oauth2/introspect",
        "revocation_endpoint": issuer + "/oauth2/revoke",
        "jwks_uri": issuer + "/.well-known/jwks.json",
        "grant_types_supported": [
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:openid:params:grant-type:ciba",
        ],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": algorithms,
        "introspection_endpoint_auth_methods_supported": client_auth,
        "introspection_endpoint_auth_signing_alg_values_supported": algorithms,
        "revocation_endpoint_auth_methods_supported": client_auth,
        "revocation_endpoint_auth_signing_alg_values_supported": algorithms,
        "dpop_signing_alg_values_supported": algorithms,
        "authorization_details_types_supported": ["tool_call"],
        "backchannel_token_delivery_modes_supported": ["poll"],
        "authority_revocation_feed_endpoint": issuer + "/v1/revocations/feed",
        "authority_ledger_entries_endpoint": issuer + "/v1/ledger/entries",
        "authority_ledger_export_endpoint": issuer + "/v1/ledger/export",
        "authority_ledger_checkpoint_endpoint": issuer + "/v1/ledger/checkpoint",
        "authority_ledger_checkpoints_endpoint": issuer + "/v1/ledger/checkpoints",
        "authority_ledger_inclusion_proof_endpoint": issuer + "/v1/ledger/proofs/inclusion",
        "authority_ledger_consistency_proof_endpoint": issuer + "/v1/ledger/proofs/consistency",
        "authority_ledger_keys_uri": issuer + "/v1/ledger/keys",
    }
    for alg in ("EdDSA", "ES256", "ES384", "RS256", "PS256"):
        assert alg in doc["dpop_signing_alg_values_supported"]


async def test_every_advertised_endpoint_is_in_the_paths_module(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    doc = await get_metadata(client)
    urls = {
        name: value
        for name, value in doc.items()
        if name.endswith(("_endpoint", "_uri")) and isinstance(value, str)
    }
    assert len(urls) == 12
    for value in urls.values():
        assert value.startswith(settings.issuer + "/")
        assert value.removeprefix(settings.issuer) in paths.ALL
    # ALL is every constant of the module, and the discovery routes are served from it.
    constants = {
        value for name, value in vars(paths).items() if name.isupper() and isinstance(value, str)
    }
    assert constants == paths.ALL
    served = {route.path for route in discovery.routes(settings) if isinstance(route, Route)}
    assert served == {paths.OAUTH_AUTHORIZATION_SERVER, paths.OPENID_CONFIGURATION, paths.JWKS}


def test_no_member_is_an_empty_array_or_unset(settings_factory: Any) -> None:
    # RFC 8414 §3.2: "Claims with zero elements MUST be omitted from the response."
    doc = build_metadata(settings_factory())
    assert "scopes_supported" not in doc
    assert all(value not in ([], None, "") for value in doc.values())
    # No authorization endpoint, hence no response types (see authority/metadata.py).
    assert "authorization_endpoint" not in doc
    assert "response_types_supported" not in doc


def test_none_is_never_an_accepted_algorithm(settings_factory: Any) -> None:
    doc = build_metadata(settings_factory())
    for name, value in doc.items():
        if name.endswith("alg_values_supported"):
            # RFC 8414 §2: "The value "none" MUST NOT be used."
            assert "none" not in value
            assert not [alg for alg in value if alg.startswith("HS")]


def test_authlib_accepts_the_metadata(settings_factory: Any) -> None:
    from authlib.oauth2.rfc8414 import (  # type: ignore[import-untyped]
        AuthorizationServerMetadata,
    )

    settings = settings_factory(issuer="https://authority.example")
    doc = AuthorizationServerMetadata(build_metadata(settings))
    for key in AuthorizationServerMetadata.REGISTRY_KEYS:
        if key == "response_types_supported":
            continue  # deliberately omitted, see authority/metadata.py
        getattr(doc, f"validate_{key}")()


def test_service_documentation_is_named_when_set(settings_factory: Any) -> None:
    url = "https://docs.example/authority"
    doc = build_metadata(settings_factory(service_documentation=url))
    assert doc["service_documentation"] == url


async def test_the_metadata_is_built_once(
    settings: Settings, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Settings] = []

    def counting(settings: Settings) -> dict[str, Any]:
        calls.append(settings)
        return metadata_module.build_metadata(settings)

    monkeypatch.setattr(discovery, "build_metadata", counting)
    app = create_app(settings, services=services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=settings.issuer) as client:
        for path in METADATA_PATHS * 3:
            assert (await client.get(path)).status_code == 200
    assert len(calls) == 1


# --- JWKS ---------------------------------------------------------------------------------
async def test_the_jwks_endpoint_serves_the_keyring(
    client: httpx.AsyncClient, services: Services
) -> None:
    response = await client.get(paths.JWKS)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    max_age = services.settings.jwks_max_age
    assert response.headers["cache-control"] == f"public, max-age={max_age}"
    assert response.json() == services.keyring.jwks()
    claims = {"sub": "own_1", "exp": int(time.time()) + 60}
    token = services.keyring.sign(claims, typ="at+jwt")
    kid = pyjwt.get_unverified_header(token)["kid"]
    (key,) = [k for k in pyjwt.PyJWKSet.from_dict(response.json()).keys if k.key_id == kid]
    assert pyjwt.decode(token, key, algorithms=["EdDSA"])["sub"] == "own_1"


async def test_a_rotation_is_published_on_the_next_request(
    client: httpx.AsyncClient, services: Services
) -> None:
    info = await services.keyring.rotate("token", actor="test")
    published = {key["kid"] for key in (await client.get(paths.JWKS)).json()["keys"]}
    assert info.kid in published


async def test_the_jwks_cache_lifetime_is_shorter_than_the_activation_delay(
    client: httpx.AsyncClient, services: Services
) -> None:
    settings = services.settings
    header = (await client.get(paths.JWKS)).headers["cache-control"]
    max_age = int(header.rsplit("=", 1)[1])
    assert max_age + settings.keyring_refresh_interval <= settings.key_activation_delay
