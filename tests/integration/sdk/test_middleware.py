"""The resource-server middleware: local verification, route checks, DPoP, revocations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from joserfc.jwk import OKPKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from authority.sdk.agent import AgentClient
from authority.sdk.feed import basic_auth
from authority.sdk.middleware import AuthorityMiddleware, ToolRoute, token_of
from authority.sdk.revocations import FeedFollower
from tests.integration.sdk.test_agent_client import sdk_client
from tests.revocation_support import FEED, serving
from tests.support import ISSUER, RS_AUDIENCE, World

ISSUES = ToolRoute(
    "POST",
    "/repos/{org}/{repo}/issues",
    tool="github.issues.create",
    action="create",
    resource="{org}/{repo}",
)


async def create_issue(request: Request) -> JSONResponse:
    token = token_of(request.state)
    return JSONResponse({"created_by": token.agent_id, "for": token.owner_id})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def tool_server(
    world: World, *, introspect: bool = False, credentials: bool = True
) -> AuthorityMiddleware:
    inner = Starlette(
        routes=[
            Route("/repos/{org}/{repo}/issues", create_issue, methods=["POST"]),
            Route("/healthz", health),
        ]
    )
    route = ToolRoute(
        ISSUES.method,
        ISSUES.path,
        tool=ISSUES.tool,
        action=ISSUES.action,
        resource=ISSUES.resource,
        introspect=introspect,
    )
    return AuthorityMiddleware(
        inner,
        issuer=ISSUER,
        audience=RS_AUDIENCE,
        routes=[route],
        public=["/healthz"],
        client_id=world.server_id if credentials else None,
        client_secret=world.server_secret if credentials else None,
        http=world.client,  # the authority, in process
        use_feed=False,
        clock=world.clock.now,
    )


@pytest.fixture
async def tools(world: World) -> AsyncIterator[httpx.AsyncClient]:
    app = tool_server(world)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=RS_AUDIENCE) as c:
        yield c


async def token(world: World, client: AgentClient | None = None, resource: str = "acme/web") -> str:
    agent = client or sdk_client(world)
    issued = await agent.token("github.issues.create", resource, "create", audience=RS_AUDIENCE)
    return issued.value


async def test_a_token_for_exactly_this_call_passes(world: World, tools: httpx.AsyncClient) -> None:
    response = await tools.post(
        "/repos/acme/web/issues", headers={"Authorization": f"Bearer {await token(world)}"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"created_by": world.agent_id, "for": world.owner_id}


async def test_no_token_is_a_bare_challenge(tools: httpx.AsyncClient, world: World) -> None:
    response = await tools.post("/repos/acme/web/issues")
    assert response.status_code == 401
    metadata = f'resource_metadata="{RS_AUDIENCE}/.well-known/oauth-protected-resource"'
    assert response.headers["www-authenticate"] == f'Bearer realm="authority", {metadata}'


@pytest.mark.parametrize("value", ["Bearer garbage", "Bearer a.b.c", "Basic dXNlcjpwYXNz"])
async def test_garbage_is_invalid_token(tools: httpx.AsyncClient, world: World, value: str) -> None:
    response = await tools.post("/repos/acme/web/issues", headers={"Authorization": value})
    assert response.status_code == 401


async def test_token_for_another_resource_is_insufficient_scope(
    world: World, tools: httpx.AsyncClient
) -> None:
    await world.delegate(
        scope=[{"tool": "github.issues.create", "resources": ["acme/*"], "actions": ["create"]}]
    )
    other = await token(world, resource="acme/api")
    response = await tools.post(
        "/repos/acme/web/issues", headers={"Authorization": f"Bearer {other}"}
    )
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_undeclared_route_is_refused_and_public_passes(
    tools: httpx.AsyncClient, world: World
) -> None:
    assert (await tools.get("/admin")).status_code == 403
    assert (await tools.get("/healthz")).status_code == 200


async def test_token_for_another_audience_is_refused(world: World) -> None:
    app = tool_server(world)
    app.verifier.audience = "https://other.example"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=RS_AUDIENCE) as c:
        response = await c.post(
            "/repos/acme/web/issues", headers={"Authorization": f"Bearer {await token(world)}"}
        )
    assert response.status_code == 401


async def test_dpop_bound_token_needs_its_proof(world: World, tools: httpx.AsyncClient) -> None:
    agent = sdk_client(world, dpop=True)
    value = await token(world, agent)
    url = RS_AUDIENCE + "/repos/acme/web/issues"
    as_bearer = await tools.post(url, headers={"Authorization": f"Bearer {value}"})
    assert as_bearer.status_code == 401
    no_proof = await tools.post(url, headers={"Authorization": f"DPoP {value}"})
    assert no_proof.status_code == 401
    assert no_proof.headers["www-authenticate"].startswith("DPoP ")
    proof = agent.dpop_proof("POST", url, value)
    ok = await tools.post(url, headers={"Authorization": f"DPoP {value}", "DPoP": proof})
    assert ok.status_code == 200, ok.text
    replay = await tools.post(url, headers={"Authorization": f"DPoP {value}", "DPoP": proof})
    assert replay.status_code == 401
    stranger = OKPKey.generate_key("Ed25519")
    thief = AgentClient(
        ISSUER, world.agent_id, stranger, "x", dpop_key=stranger, clock=world.clock.now
    )
    forged = thief.dpop_proof("POST", url, value)
    stolen = await tools.post(url, headers={"Authorization": f"DPoP {value}", "DPoP": forged})
    assert stolen.status_code == 401


async def test_without_feed_or_credentials_local_verification_is_not_enough(world: World) -> None:
    app = tool_server(world, credentials=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=RS_AUDIENCE) as c:
        response = await c.post(
            "/repos/acme/web/issues", headers={"Authorization": f"Bearer {await token(world)}"}
        )
    assert response.status_code == 401


async def test_revoked_delegation_is_refused_through_introspection(
    world: World, tools: httpx.AsyncClient
) -> None:
    value = await token(world)
    revoked = await world.client.post(
        f"/v1/delegations/{world.delegation_id}/revoke", headers=world.auth(world.owner_key)
    )
    assert revoked.status_code == 200
    response = await tools.post(
        "/repos/acme/web/issues", headers={"Authorization": f"Bearer {value}"}
    )
    assert response.status_code == 401


async def test_websockets_are_guarded_too(world: World) -> None:
    reached: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])

    app = AuthorityMiddleware(
        inner,
        issuer=ISSUER,
        audience=RS_AUDIENCE,
        routes=[
            ToolRoute(
                "GET",
                "/stream/{org}/{repo}",
                tool="github.issues.create",
                action="create",
                resource="{org}/{repo}",
            )
        ],
        http=world.client,
        use_feed=False,
    )
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/stream/acme/web",
        "headers": [],
        "scheme": "ws",
        "server": ("tools.example.test", 443),
        "root_path": "",
        "query_string": b"",
    }
    await app(scope, receive, send)
    assert reached == []  # the handler never ran
    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_unreachable_keys_are_a_refusal_not_an_error(world: World) -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down", request=request)

    app = tool_server(world)
    app.verifier.jwks._http = httpx.AsyncClient(transport=httpx.MockTransport(unreachable))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=RS_AUDIENCE) as c:
        response = await c.post(
            "/repos/acme/web/issues", headers={"Authorization": f"Bearer {await token(world)}"}
        )
    assert response.status_code == 401


# --- with the revocation feed ---------------------------------------------------------------------
async def revoke_delegation(world: World) -> None:
    revoked = await world.client.post(
        f"/v1/delegations/{world.delegation_id}/revoke", headers=world.auth(world.owner_key)
    )
    assert revoked.status_code == 200


async def call_tool(app: AuthorityMiddleware, value: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=RS_AUDIENCE) as tools:
        return await tools.post(
            "/repos/acme/web/issues", headers={"Authorization": f"Bearer {value}"}
        )


async def test_a_tool_server_started_after_a_revocation_refuses_its_tokens(
    world: World, app: Starlette
) -> None:
    """Revoke, then start a tool server: its feed replays the revocation before it trusts
    local verification, so the token is refused by the feed (not by introspection)."""
    revoked_token = await token(world)
    await revoke_delegation(world)
    await world.delegate()
    good_token = await token(world)
    middleware = tool_server(world)
    async with serving(app) as url, httpx.AsyncClient(timeout=10) as http:
        follower = FeedFollower(
            url + FEED,
            http,
            auth=basic_auth(world.server_id, world.server_secret),
            clock=world.clock.now,
        )
        middleware.feed = follower
        follower.start()
        try:
            await asyncio.wait_for(follower.wait_ready(), 5)
            assert follower.healthy
            refused = await call_tool(middleware, revoked_token)
            accepted = await call_tool(middleware, good_token)
        finally:
            await follower.stop()
    assert refused.status_code == 401
    assert "has been revoked" in refused.headers["www-authenticate"]
    assert accepted.status_code == 200, accepted.text


async def test_until_the_feed_is_caught_up_tokens_are_introspected(world: World) -> None:
    """A feed that has answered but not yet sent ``ready`` is not trusted: the middleware
    asks introspection, which knows of the revocation the feed has not replayed yet."""
    revoked_token = await token(world)
    await revoke_delegation(world)
    await world.delegate()
    good_token = await token(world)
    hold = asyncio.Event()

    async def started_but_not_caught_up() -> AsyncIterator[bytes]:
        yield b"retry: 1000\nid: 0\n\n: heartbeat\n\n"
        await hold.wait()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content=started_but_not_caught_up(),
        )

    middleware = tool_server(world)
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    follower = FeedFollower(ISSUER + FEED, http, clock=world.clock.now)
    middleware.feed = follower
    follower.start()
    try:
        await asyncio.wait_for(follower.wait_connected(), 5)
        assert not follower.healthy
        refused = await call_tool(middleware, revoked_token)
        accepted = await call_tool(middleware, good_token)
    finally:
        hold.set()
        await follower.stop()
        await http.aclose()
    assert refused.status_code == 401
    assert "not active" in refused.headers["www-authenticate"]
    assert accepted.status_code == 200, accepted.text
