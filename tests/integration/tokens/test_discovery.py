"""Discovery: RFC 8414 metadata, the OpenID configuration alias, and the JWKS endpoint."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from authority import metadata as metadata_module
from authority.app import create_app
from authority.context import Services
from authority.endpoints import discovery, paths
from authority.metadata import build_metadata, build_openid_configuration
from authority.settings import Settings
from authority.tokens.jose import AGENT_ALGORITHMS, TOKEN_SIGNING_ALGORITHMS

METADATA_PATHS = [paths.OAUTH_AUTHORIZATION_SERVER, paths.OPENID_CONFIGURATION]


async def get_metadata(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get(paths.OAUTH_AUTHORIZATION_SERVER)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.parametrize("path", METADATA_PATHS)
async def test_both_documents_are_served_as_built(
    client: httpx.AsyncClient, settings: Settings, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"].startswith("public, max-age=")
    expected = {
        paths.OAUTH_AUTHORIZATION_SERVER: build_metadata,
        paths.OPENID_CONFIGURATION: build_openid_configuration,
    }[path](settings)
    assert response.json() == expected


async def test_the_openid_configuration_is_the_metadata_plus_openid_members(
    client: httpx.AsyncClient,
) -> None:
    oauth = (await client.get(paths.OAUTH_AUTHORIZATION_SERVER)).json()
    openid = (await client.get(paths.OPENID_CONFIGURATION)).json()
    assert {k: v for k, v in openid.items() if k in oauth} == oauth
    # OpenID Discovery §3: REQUIRED, and "The algorithm RS256 MUST be included".
    assert openid["subject_types_supported"] == ["public"]
    assert openid["id_token_signing_alg_values_supported"] == list(TOKEN_SIGNING_ALGORITHMS)
    assert "RS256" in openid["id_token_signing_alg_values_supported"]
    assert set(openid) - set(oauth) == {
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    }


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
        "response_types_supported": ["none"],
        "grant_types_supported": [
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:openid:params:grant-type:ciba",
        ],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": algorithms,
        "introspection_endpoint_auth_methods_supported": client_auth,
        "introspection_endpoint_auth_signing_alg_values_supported": algorithms,
        "revocation_endpoint_auth_methods_supported": client_auth,
        "revocation_endpoint_auth_signing_alg_values_supported": algorithms,
        "dpop_signing_alg_values_supported": algorithms,
        "authorization_details_types_supported": ["tool_call"],
        "authority_revocation_feed_endpoint": issuer + "/v1/revocations/feed",
        "authority_ledger_entries_endpoint": issuer + "/v1/ledger/entries",
        "authority_ledger_export_endpoint": issuer + "/v1/ledger/export",
        "authority_ledger_checkpoint_endpoint": issuer + "/v1/ledger/checkpoint",
        "authority_ledger_checkpoints_endpoint": issuer + "/v1/ledger/checkpoints",
        "authority_ledger_inclusion_proof_endpoint": issuer + "/v1/ledger/proofs/inclusion",
        "authority_ledger_consistency_proof_endpoint": issuer + "/v1/ledger/proofs/consistency",
        "authority_ledger_keys_uri": issuer + "/v1/ledger/keys",
        "authority_openapi_uri": issuer + "/openapi.json",
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
    assert len(urls) == 13
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
    # No authorization endpoint (see authority/metadata.py), and no CIBA backchannel
    # members: a CIBA client could not start an approval here.
    assert "authorization_endpoint" not in doc
    assert not [name for name in doc if name.startswith("backchannel_")]


def test_none_is_never_an_accepted_algorithm(settings_factory: Any) -> None:
    doc = build_metadata(settings_factory())
    for name, value in doc.items():
        if name.endswith("alg_values_supported"):
            # RFC 8414 §2: "The value "none" MUST NOT be used."
            assert "none" not in value
            assert not [alg for alg in value if alg.startswith("HS")]


async def test_authlib_validates_both_served_documents(settings_factory: Any) -> None:
    from authlib.oauth2.rfc8414 import (  # type: ignore[import-untyped]
        AuthorizationServerMetadata,
    )
    from authlib.oidc.discovery import OpenIDProviderMetadata  # type: ignore[import-untyped]

    # authlib insists on https (RFC 8414 §2), so serve the documents for an https issuer.
    settings = settings_factory(issuer="https://authority.example")
    app = discovery_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        oauth = (await http.get(settings.issuer + paths.OAUTH_AUTHORIZATION_SERVER)).json()
        openid = (await http.get(settings.issuer + paths.OPENID_CONFIGURATION)).json()
    AuthorizationServerMetadata(oauth).validate()
    OpenIDProviderMetadata(openid).validate()
    # RFC 8414 §3.3 / OpenID Discovery §4.3: the issuer is exactly the discovery prefix.
    assert oauth["issuer"] == openid["issuer"] == settings.issuer


def discovery_app(settings: Settings) -> Starlette:
    """The discovery routes alone: the metadata needs no services."""
    return Starlette(routes=discovery.routes(settings))


def test_service_documentation_is_named_when_set(settings_factory: Any) -> None:
    url = "https://docs.example/authority"
    doc = build_metadata(settings_factory(service_documentation=url))
    assert doc["service_documentation"] == url


async def test_the_metadata_is_built_once(
    settings: Settings, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def counting(name: str) -> Any:
        def build(settings: Settings) -> dict[str, Any]:
            calls.append(name)
            result: dict[str, Any] = getattr(metadata_module, name)(settings)
            return result

        return build

    for name in ("build_metadata", "build_openid_configuration"):
        monkeypatch.setattr(discovery, name, counting(name))
    app = create_app(settings, services=services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=settings.issuer) as client:
        for path in METADATA_PATHS * 3:
            assert (await client.get(path)).status_code == 200
    assert sorted(calls) == ["build_metadata", "build_openid_configuration"]


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
    header = pyjwt.get_unverified_header(token)
    (key,) = [
        k for k in pyjwt.PyJWKSet.from_dict(response.json()).keys if k.key_id == header["kid"]
    ]
    # The key's published alg is the one the token names (RFC 8725 §3.1).
    assert header["alg"] == key.algorithm_name == services.settings.signing_alg
    assert pyjwt.decode(token, key, algorithms=[key.algorithm_name])["sub"] == "own_1"


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
