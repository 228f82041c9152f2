"""RFC 9728 Protected Resource Metadata from the resource-server middleware, as the MCP
authorization specification requires of servers and as MCP clients read it."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authority.sdk.middleware import AuthorityMiddleware
from authority.sdk.resource_metadata import ResourceMetadata
from authority.tokens.jose import AGENT_ALGORITHMS
from tests.integration.sdk.test_middleware import ISSUES, token
from tests.support import ISSUER, RS_AUDIENCE, AgentKey, World

WELL_KNOWN = "/.well-known/oauth-protected-resource"


async def mcp_endpoint(request: Request) -> JSONResponse:
    return JSONResponse({"jsonrpc": "2.0", "id": 1, "result": {}})


def server(world: World, audience: str = RS_AUDIENCE) -> AuthorityMiddleware:
    """A tool server that declares one tool route and lists nothing as public."""
    inner = Starlette(routes=[Route(ISSUES.path, mcp_endpoint, methods=["POST"])])
    return AuthorityMiddleware(
        inner,
        issuer=ISSUER,
        audience=audience,
        routes=[ISSUES],
        client_id=world.server_id,
        client_secret=world.server_secret,
        http=world.client,
        use_feed=False,
        clock=world.clock.now,
    )


@pytest.fixture
async def tools(world: World) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=server(world))
    async with httpx.AsyncClient(transport=transport, base_url=RS_AUDIENCE) as client:
        yield client


def expected_document(resource: str) -> dict[str, Any]:
    return {
        "resource": resource,
        "authorization_servers": [ISSUER],
        "bearer_methods_supported": ["header"],
        "authorization_details_types_supported": ["tool_call"],
        "dpop_signing_alg_values_supported": list(AGENT_ALGORITHMS),
    }


# --- the document --------------------------------------------------------------------------------
async def test_metadata_document_needs_no_token(tools: httpx.AsyncClient) -> None:
    """Served without a token although no route declares it and nothing is public."""
    response = await tools.get(WELL_KNOWN)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == expected_document(RS_AUDIENCE)
    assert "www-authenticate" not in response.headers


async def test_metadata_head_and_other_methods(tools: httpx.AsyncClient) -> None:
    head = await tools.head(WELL_KNOWN)
    assert head.status_code == 200
    assert head.content == b""
    post = await tools.post(WELL_KNOWN)
    assert post.status_code == 405
    assert post.headers["allow"] == "GET, HEAD"


async def test_other_well_known_paths_stay_undeclared(tools: httpx.AsyncClient) -> None:
    assert (await tools.get(WELL_KNOWN + "/elsewhere")).status_code == 403
    assert (await tools.get("/.well-known/oauth-authorization-server")).status_code == 403


async def test_a_resource_with_a_path_is_served_at_the_path_suffixed_url(world: World) -> None:
    """RFC 9728 §3.1: the well-known string goes between the host and the path."""
    audience = RS_AUDIENCE + "/mcp"
    app = server(world, audience)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=RS_AUDIENCE) as client:
        suffixed = await client.get(WELL_KNOWN + "/mcp")
        root = await client.get(WELL_KNOWN)
        refused = await client.post(ISSUES.path.replace("{org}/{repo}", "acme/web"))
    assert suffixed.status_code == 200
    assert suffixed.json() == expected_document(audience)
    assert root.json() == expected_document(audience)
    url = f"{RS_AUDIENCE}{WELL_KNOWN}/mcp"
    assert f'resource_metadata="{url}"' in refused.headers["www-authenticate"]


def test_a_trailing_slash_is_dropped_and_non_urls_get_no_metadata() -> None:
    with_slash = ResourceMetadata.for_resource("https://api.example/mcp/", ISSUER)
    assert with_slash is not None
    assert with_slash.url == f"https://api.example{WELL_KNOWN}/mcp"
    root = ResourceMetadata.for_resource("https://api.example/", ISSUER)
    assert root is not None
    assert root.url == f"https://api.example{WELL_KNOWN}"
    assert ResourceMetadata.for_resource("urn:example:tools", ISSUER) is None
    assert ResourceMetadata.for_resource('https://api.example/"x', ISSUER) is None


# --- WWW-Authenticate: resource_metadata on every refusal -----------------------------------
METADATA = f'resource_metadata="{RS_AUDIENCE}{WELL_KNOWN}"'


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer garbage"}, {"Authorization": "DPoP a.b.c"}],
    ids=["no-token", "bad-bearer", "bad-dpop"],
)
async def test_every_401_names_the_metadata(
    tools: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await tools.post("/repos/acme/web/issues", headers=headers)
    assert response.status_code == 401
    assert METADATA in response.headers["www-authenticate"]


async def test_a_403_names_the_metadata_too(world: World, tools: httpx.AsyncClient) -> None:
    other = await token(world, resource="acme/api")
    response = await tools.post(
        "/repos/acme/web/issues", headers={"Authorization": f"Bearer {other}"}
    )
    assert response.status_code == 403
    assert METADATA in response.headers["www-authenticate"]


async def test_the_named_url_serves_the_document(tools: httpx.AsyncClient) -> None:
    refused = await tools.post("/repos/acme/web/issues")
    challenge = refused.headers["www-authenticate"]
    url = challenge.split('resource_metadata="', 1)[1].split('"', 1)[0]
    assert url.startswith(RS_AUDIENCE)
    document = (await tools.get(url)).json()
    assert document["resource"] == RS_AUDIENCE
    assert document["authorization_servers"] == [ISSUER]


async def test_a_token_still_passes(world: World, tools: httpx.AsyncClient) -> None:
    response = await tools.post(
        "/repos/acme/web/issues", headers={"Authorization": f"Bearer {await token(world)}"}
    )
    assert response.status_code == 200, response.text


# --- the official MCP client ---------------------------------------------------------------------
def _mcp() -> tuple[Callable[[Any], str | None], Any, Callable[[str | None, str], list[str]]]:
    pytest.importorskip("mcp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from mcp.client.auth.utils import (
            build_protected_resource_metadata_discovery_urls,
            extract_resource_metadata_from_www_auth,
        )
        from mcp.shared.auth import ProtectedResourceMetadata
    return (
        extract_resource_metadata_from_www_auth,
        ProtectedResourceMetadata,
        build_protected_resource_metadata_discovery_urls,
    )


@pytest.mark.parametrize("audience", [RS_AUDIENCE, RS_AUDIENCE + "/mcp"])
async def test_the_mcp_client_finds_and_reads_the_metadata(world: World, audience: str) -> None:
    extract, model, discovery_urls = _mcp()
    transport = httpx.ASGITransport(app=server(world, audience))
    async with httpx.AsyncClient(transport=transport, base_url=RS_AUDIENCE) as client:
        refused = await client.post("/repos/acme/web/issues")
        found = extract(refused)
        suffix = audience.removeprefix(RS_AUDIENCE)
        assert found == f"{RS_AUDIENCE}{WELL_KNOWN}{suffix}"
        # Every URL the client would try serves the same document.
        for url in discovery_urls(found, audience):
            response = await client.get(url)
            assert response.status_code == 200, url
            parsed = model.model_validate(response.json())
            assert str(parsed.resource).rstrip("/") == audience
            assert [str(a).rstrip("/") for a in parsed.authorization_servers] == [ISSUER]


async def test_the_mcp_client_reads_the_dpop_challenge(world: World) -> None:
    extract, _, _ = _mcp()
    holder = AgentKey()
    transport = httpx.ASGITransport(app=server(world))
    async with httpx.AsyncClient(transport=transport, base_url=RS_AUDIENCE) as client:
        refused = await client.post(
            "/repos/acme/web/issues",
            headers={"Authorization": "DPoP a.b.c", "DPoP": holder.dpop_proof(world.clock.now())},
        )
    assert refused.headers["www-authenticate"].startswith("DPoP ")
    assert extract(refused) == f"{RS_AUDIENCE}{WELL_KNOWN}"
