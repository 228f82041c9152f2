"""The agent SDK against the authority: discovery, one-call tokens, DPoP, errors."""

from __future__ import annotations

import asyncio
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

from authority.sdk import AgentClient, AuthorityClientError, InvalidScope, SyncAgentClient
from tests.support import ISSUER, RS_AUDIENCE, World


def sdk_client(
    world: World, *, dpop: bool = False, http: httpx.AsyncClient | None = None
) -> AgentClient:
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
        http=http or world.client,
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
    assert isinstance(refused.value, InvalidScope)


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


async def test_a_call_needing_approval_is_collected_once_approved(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from authority.sdk import ApprovalPending
    from tests.integration.approvals.support import RISKY_TOOL, with_risky_tool

    await with_risky_tool(world)
    client = sdk_client(world)
    with pytest.raises(ApprovalPending) as pending:
        await client.token(RISKY_TOOL, "prod/web", "run", audience=RS_AUDIENCE)
    listed = await world.client.get("/v1/approvals", headers=world.auth(world.owner_key))
    (approval,) = listed.json()["items"]
    polls: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        if sys._getframe(1).f_globals.get("__name__") != "authority.sdk.agent":
            # asyncio.sleep is one function for everyone: the authority's background
            # tasks (sequencer, refresh loops) keep their own, real, waits.
            await real_sleep(seconds)
            return
        # The authority runs on a frozen clock: waiting is moving it forward.
        polls.append(seconds)
        world.clock.advance(seconds)
        if len(polls) == 2:
            approved = await world.client.post(
                f"/v1/approvals/{approval['id']}/approve", headers=world.auth(world.owner_key)
            )
            assert approved.status_code == 200, approved.text

    monkeypatch.setattr("authority.sdk.agent.asyncio.sleep", sleep)
    token = await client.wait_for_approval(pending.value)
    claims = jwt.decode(token.value, options={"verify_signature": False})
    assert claims["authorization_details"][0]["tool"] == RISKY_TOOL
    assert len(polls) == 2  # pending once, then the token


async def test_a_denied_approval_raises_access_denied(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from authority.sdk import ApprovalPending
    from tests.integration.approvals.support import RISKY_TOOL, with_risky_tool

    await with_risky_tool(world)
    client = sdk_client(world)
    with pytest.raises(ApprovalPending) as pending:
        await client.token(RISKY_TOOL, "prod/web", "run", audience=RS_AUDIENCE)
    listed = await world.client.get("/v1/approvals", headers=world.auth(world.owner_key))
    (approval,) = listed.json()["items"]
    denied = await world.client.post(
        f"/v1/approvals/{approval['id']}/deny", headers=world.auth(world.owner_key)
    )
    assert denied.status_code == 200

    async def sleep(seconds: float) -> None:
        world.clock.advance(seconds)

    monkeypatch.setattr("authority.sdk.agent.asyncio.sleep", sleep)
    with pytest.raises(AuthorityClientError) as refused:
        await client.wait_for_approval(pending.value)
    assert refused.value.error == "access_denied"


class LoseFirstAnswer(httpx.AsyncBaseTransport):
    """Passes the exchange to the authority, then answers the first one with a 503 as a
    proxy would whose upstream answered too late: the authority has spent its jtis."""

    def __init__(self, app: Starlette) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.first: tuple[httpx.Request, int] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/token") and self.first is None:
            await response.aread()
            self.first = (request, response.status_code)
            busy = {"error": "temporarily_unavailable", "error_description": "upstream timeout"}
            return httpx.Response(503, json=busy, headers={"Retry-After": "0"})
        return response


async def test_a_retried_exchange_is_a_fresh_one(world: World, app: Starlette) -> None:
    """The authority spends the attestation's jti (and a DPoP proof's) when it issues: the
    retry after a lost answer must carry new ones, or it would be refused as a replay."""
    transport = LoseFirstAnswer(app)
    async with httpx.AsyncClient(transport=transport) as http:
        client = sdk_client(world, dpop=True, http=http)
        token = await client.token(
            "github.issues.create", "acme/web", "create", audience=RS_AUDIENCE
        )
        assert token.token_type == "DPoP"
        assert transport.first is not None
        first, status = transport.first
        assert status == 200  # the first attempt was issued, its answer lost
        # Sending that attempt again is what a naive retry does: refused.
        again = await http.send(
            httpx.Request(first.method, first.url, headers=first.headers, content=first.content)
        )
    assert again.status_code == 400
    assert again.json()["error_description"].endswith("has already been used.")


async def test_the_sync_client_gets_a_token_from_the_authority(
    world: World, app: Starlette
) -> None:
    """The blocking client against the real authority: it runs in a thread, and its
    transport hands each request to the app on the test's loop (where its services live)."""
    loop = asyncio.get_running_loop()
    inner = httpx.ASGITransport(app=app)

    class OnTheLoop(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            async def send() -> httpx.Response:
                copy = httpx.Request(
                    request.method, request.url, headers=request.headers, content=request.read()
                )
                response = await inner.handle_async_request(copy)
                content = await response.aread()
                return httpx.Response(
                    response.status_code, headers=response.headers, content=content
                )

            return asyncio.run_coroutine_threadsafe(send(), loop).result(timeout=30)

    async_client = sdk_client(world, dpop=True)
    with httpx.Client(transport=OnTheLoop()) as http:
        client = SyncAgentClient(
            ISSUER,
            world.agent_id,
            async_client._protocol.key,
            world.credential,
            http=http,
            dpop_key=async_client.dpop_key,
            clock=world.clock.now,
        )
        token = await asyncio.to_thread(
            client.token, "github.issues.create", "acme/web", "create", audience=RS_AUDIENCE
        )
        with pytest.raises(InvalidScope) as refused:
            await asyncio.to_thread(
                client.token, "github.issues.create", "evil/repo", "create", audience=RS_AUDIENCE
            )
    assert token.token_type == "DPoP"
    claims = jwt.decode(token.value, options={"verify_signature": False})
    assert claims["authorization_details"][0]["resource"] == "acme/web"
    assert (refused.value.error, refused.value.status) == ("invalid_scope", 400)


class CountExchanges(httpx.AsyncBaseTransport):
    def __init__(self, app: Starlette) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.exchanges = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.exchanges += request.url.path.endswith("/token")
        return await self.inner.handle_async_request(request)


async def _rate_limited(world: World, app: Starlette, seconds_into_minute: int) -> tuple[
    CountExchanges, AgentClient, list[float]
]:  # fmt: skip
    now = int(world.clock.now())
    world.clock.advance(60 - now % 60 + seconds_into_minute)
    await world.delegate(rate_per_minute=1)
    transport = CountExchanges(app)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        world.clock.advance(seconds)

    client = AgentClient(
        ISSUER,
        world.agent_id,
        sdk_client(world)._protocol.key,
        world.credential,
        http=httpx.AsyncClient(transport=transport, base_url=ISSUER),
        clock=world.clock.now,
        sleep=sleep,
    )
    await client.token("github.issues.create", "acme/web", "create", audience=RS_AUDIENCE)
    return transport, client, waits


async def test_a_rate_limited_exchange_is_not_asked_again_into_the_same_window(
    world: World, app: Starlette
) -> None:
    """The delegation's minute is spent: the authority says when it ends, and the SDK does
    not send more refused exchanges (each one a denial in the ledger) before then."""
    transport, client, waits = await _rate_limited(world, app, seconds_into_minute=10)
    with pytest.raises(AuthorityClientError) as refused:
        await client.token("github.issues.create", "acme/web", "create", audience=RS_AUDIENCE)
    assert (refused.value.status, refused.value.error) == (429, "too_many_requests")
    assert transport.exchanges == 2 and waits == []


async def test_a_rate_window_about_to_turn_is_waited_for(world: World, app: Starlette) -> None:
    transport, client, waits = await _rate_limited(world, app, seconds_into_minute=55)
    await client.token("github.issues.create", "acme/web", "create", audience=RS_AUDIENCE)
    assert transport.exchanges == 3 and waits == [5.0]
