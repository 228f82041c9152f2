"""The agent SDK binds a call's arguments: sent in the detail, their digest in the token."""

from __future__ import annotations

import json

import httpx
import jwt
import pytest
from joserfc.jwk import OKPKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authority.sdk import AgentClient
from authority.sdk.arguments import UncanonicalArguments, digest, matches
from tests.support import ISSUER, RS_AUDIENCE, World

from .test_agent_client import sdk_client

ARGS = {"title": "Crash on start", "labels": ["bug"]}


async def test_token_for_one_call_with_its_arguments(world: World) -> None:
    client = sdk_client(world)
    token = await client.token(
        "github.issues.create", "acme/web", "create", audience=RS_AUDIENCE, arguments=ARGS
    )
    [detail] = token.authorization_details
    assert detail["arguments_digest"] == digest(ARGS)
    claims = jwt.decode(token.value, options={"verify_signature": False})
    bound = claims["authorization_details"][0]["arguments_digest"]
    # What an enforcer does: recompute over the arguments it is about to act on.
    assert matches(ARGS, bound)
    assert not matches({**ARGS, "title": "other"}, bound)


async def test_arguments_json_cannot_carry_are_refused_before_any_request() -> None:
    sent: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    key = OKPKey.generate_key("Ed25519")
    http = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    async with AgentClient(ISSUER, "agt_1", key, "delegation", http=http) as client:
        for bad in ({"n": float("nan")}, {"n": 2**60}, {"s": "\ud800"}):
            with pytest.raises(UncanonicalArguments):
                await client.token(
                    "github.issues.create",
                    "acme/web",
                    "create",
                    audience=RS_AUDIENCE,
                    arguments=bad,
                )
    await http.aclose()
    assert sent == []


async def test_httpx_auth_binds_every_token_to_its_arguments(world: World) -> None:
    seen: list[str] = []

    async def tool(request: Request) -> JSONResponse:
        seen.append(request.headers["authorization"].split(" ", 1)[1])
        return JSONResponse({"ok": True})

    tool_app = Starlette(routes=[Route("/issues", tool, methods=["POST"])])
    auth = sdk_client(world).auth(
        "github.issues.create", "create", audience=RS_AUDIENCE, resource="acme/web", arguments=ARGS
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=tool_app), base_url=RS_AUDIENCE
    ) as tools:
        response = await tools.post("/issues", content=json.dumps(ARGS), auth=auth)
    assert response.status_code == 200
    [token] = seen
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["authorization_details"][0]["arguments_digest"] == digest(ARGS)
