"""The agent SDK against the authority: discovery, one-call tokens, DPoP, errors."""

from __future__ import annotations

import subprocess
import sys

import httpx
import jwt
import pytest
from joserfc.jwk import OKPKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authority.sdk import AgentClient, AuthorityClientError
from tests.support import ISSUER, RS_AUDIENCE, World


def sdk_client(world: World, *, dpop: bool = False) -> AgentClient:
    key = OKPKey.import_key(
        {
            **world.agent_key.public_jwk(),
            "d": jwt.algorithms.OKPAlgorithm.to_jwk(world.agent_key.private, as_dict=True)["d"],
        }
    )
    return AgentClient(
        ISSUER,
        world.agent_id,
        key,
        world.credential,
        http=world.client,
        dpop_key=OKPKey.generate_key("Ed25519") if dpop else None,
        clock=world.clock.now,
    )


async def test_token_for_one_call(world: World) -> None:
    client = sdk_client(world)
    token = await client.token("github.issues.create", "acme/web", "create", audience=RS_AUDIENCE)
    assert token.token_type == "Bearer"
    claims = jwt.decode(token.value, options={"verify_signature": False})
    assert claims["authorization_details"][0]["resource"] == "acme/web"
    assert claims["client_id"] == world.agent_id


async def test_dpop_bound_token(world: World) -> None:
    client = sdk_client(world, dpop=True)
    token = await client.token("github.issues.create", "acme/web", "create", audience=RS_AUDIENCE)
    assert token.token_type == "DPoP"
    assert client.dpop_key is not None
    claims = jwt.decode(token.value, options={"verify_signature": False})
    assert claims["cnf"]["jkt"] == client.dpop_key.thumbprint()


async def test_refusal_carries_the_rfc_error(world: World) -> None:
    client = sdk_client(world)
    with pytest.raises(AuthorityClientError) as refused:
        await client.token("github.issues.create", "evil/repo", "create", audience=RS_AUDIENCE)
    assert refused.value.error == "invalid_scope"
    assert refused.value.status == 400


async def test_httpx_auth_attaches_a_fresh_token_per_request(world: World) -> None:
    seen: list[str] = []

    async def tool(request: Request) -> JSONResponse:
        seen.append(request.headers["authorization"])
        return JSONResponse({"ok": True})

    tool_app = Starlette(routes=[Route("/issues", tool, methods=["POST"])])
    client = sdk_client(world)
    auth = client.auth("github.issues.create", "create", audience=RS_AUDIENCE, resource="acme/web")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=tool_app), base_url=RS_AUDIENCE
    ) as tools:
        for _ in range(3):
            response = await tools.post("/issues", json={}, auth=auth)
            assert response.status_code == 200
    assert len(set(seen)) == 3
    assert all(h.startswith("Bearer ") for h in seen)


def test_sdk_imports_without_the_server_stack() -> None:
    blocked = ["starlette", "sqlalchemy", "pydantic", "redis", "cedarpy", "uvicorn", "alembic"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}:\n"
        "    sys.modules[name] = None\n"
        "import authority.sdk\n"
        "print('ok')\n"
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr
