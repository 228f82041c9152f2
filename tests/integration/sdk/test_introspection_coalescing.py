"""Introspection from an enforcement point: concurrent checks of one token share one request
to the authority, and only while that request has not been written; every waiter of a
failed request is refused; a single-use token lets exactly one of them through.

The authority here is a stub served on loopback that counts the introspection requests
per token and can hold a request (it decides its answer when the request arrives, then
waits before sending it, as a slow network would). Its one connection slot
(``max_connections=1``) is held by another token's request while the checks under test
begin, so they all wait for the connection together."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from starlette.applications import Starlette

from authority.sdk.connections import AuthorityConnections
from authority.sdk.enforcement import Refusal, TokenGate
from authority.sdk.introspector import Introspector
from authority.sdk.verifier import VerifiedToken
from tests.revocation_support import free_port, serving
from tests.support import ISSUER, RS_AUDIENCE, World

CLIENT, SECRET = "rs-1", "secret-1"
AUTHORIZATION = "Basic " + base64.b64encode(f"{CLIENT}:{SECRET}".encode()).decode()
HOLD = "holding-the-connection"


@dataclass
class StubAuthority:
    """Answers per token: ``active`` (reusable), ``single_use``, ``unmarked`` (active with
    no ``single_use`` member), ``inactive``, ``error`` (503) or ``crash`` (500)."""

    behaviour: dict[str, str] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    arrived: dict[str, asyncio.Event] = field(default_factory=dict)
    holds: dict[str, asyncio.Event] = field(default_factory=dict)

    def arrival(self, token: str) -> asyncio.Event:
        return self.arrived.setdefault(token, asyncio.Event())

    def hold(self, token: str) -> asyncio.Event:
        return self.holds.setdefault(token, asyncio.Event())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        assert scope["path"] == "/introspect"
        headers = dict(scope["headers"])
        assert headers[b"authorization"] == AUTHORIZATION.encode()
        token = parse_qs(body.decode())["token"][0]
        self.requests[token] += 1
        kind = self.behaviour.get(token, "inactive")  # decided on arrival
        self.arrival(token).set()
        if token in self.holds:
            await self.holds[token].wait()
        if kind == "crash":
            raise RuntimeError("crashed")  # uvicorn answers 500
        status = 200
        answer: dict[str, Any] = {"active": False}
        if kind == "error":
            status, answer = 503, {"error": "temporarily_unavailable"}
        elif kind in ("active", "single_use", "unmarked"):
            answer = {"active": True, "jti": token}
            if kind != "unmarked":
                answer["single_use"] = kind == "single_use"
        data = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": data})


@pytest.fixture
def stub() -> StubAuthority:
    return StubAuthority()


@pytest.fixture
async def url(stub: StubAuthority) -> AsyncIterator[str]:
    async with serving(stub) as served:
        yield served


@pytest.fixture
async def introspector(url: str) -> AsyncIterator[Introspector]:
    http = httpx.AsyncClient()
    introspector = Introspector(
        url,
        http,
        httpx.BasicAuth(CLIENT, SECRET),
        authorization=AUTHORIZATION,
        connections=AuthorityConnections(url, max_connections=1, timeout=10),
        endpoint=url + "/introspect",
    )
    try:
        yield introspector
    finally:
        await introspector.aclose()
        await http.aclose()


async def until(condition: Any) -> None:
    """Let the event loop run until ``condition()`` holds (no clock involved)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def behind_a_held_request(
    stub: StubAuthority, introspector: Introspector, checks: Sequence[Awaitable[Any]]
) -> list[Any]:
    """Run ``checks`` while the only connection is busy with another token's request, so
    that all of them begin before any of their requests can be written."""
    stub.behaviour[HOLD] = "active"
    stub.hold(HOLD)
    held = asyncio.create_task(introspector.introspect(HOLD))
    await stub.arrival(HOLD).wait()
    tasks = [asyncio.ensure_future(c) for c in checks]
    connections = introspector.connections
    assert connections is not None
    await until(lambda: len(connections._queue) >= 1 and all(not t.done() for t in tasks))
    for _ in range(50):
        await asyncio.sleep(0)  # every check has had its turn to join
    stub.hold(HOLD).set()
    answers = await asyncio.gather(*tasks)
    assert await held != "unavailable"
    return list(answers)


async def test_concurrent_checks_of_one_token_make_one_request(
    stub: StubAuthority, introspector: Introspector
) -> None:
    stub.behaviour["t1"] = "active"
    answers = await behind_a_held_request(
        stub, introspector, [introspector.introspect("t1") for _ in range(8)]
    )
    assert stub.requests["t1"] == 1
    assert all(isinstance(a, dict) and a["active"] is True for a in answers)


async def test_different_tokens_are_not_coalesced(
    stub: StubAuthority, introspector: Introspector
) -> None:
    stub.behaviour.update(good="active", bad="inactive")
    checks = [introspector.introspect(t) for t in ("good", "bad") * 4]
    answers = await behind_a_held_request(stub, introspector, checks)
    assert stub.requests["good"] == 1
    assert stub.requests["bad"] == 1
    for token, answer in zip(("good", "bad") * 4, answers, strict=True):
        if token == "good":
            assert isinstance(answer, dict)
            assert answer["jti"] == "good"
        else:
            assert answer == "inactive"


@pytest.mark.parametrize("kind", ["error", "crash"])
async def test_a_failed_request_refuses_every_waiter(
    stub: StubAuthority, url: str, introspector: Introspector, kind: str
) -> None:
    stub.behaviour["t1"] = kind
    gate = TokenGate(
        issuer=url,
        audience="https://tools.test",
        http=introspector.http,
        client_id=CLIENT,
        client_secret=SECRET,
        use_feed=False,
        unavailable_status=503,
    )
    gate.introspector = introspector
    checks = [_refused(gate, "t1") for _ in range(6)]
    answers = await behind_a_held_request(stub, introspector, checks)
    assert stub.requests["t1"] == 1
    assert answers == [(503, "temporarily_unavailable")] * 6


async def _refused(gate: TokenGate, token: str) -> Any:
    try:
        await gate.check_live(_verified(token), introspect=True, dpop=False)
    except Refusal as refusal:
        return refusal.status, refusal.error
    return "passed"


def _verified(token: str) -> VerifiedToken:
    return VerifiedToken(
        raw=token,
        claims={},
        jti=token,
        owner_id="o",
        agent_id="a",
        delegation_id="d",
        issued_at=0,
        expires_at=0,
        tool="t",
        resource="r",
        action="x",
        dpop_jkt=None,
    )


async def test_an_unreachable_authority_refuses_every_waiter() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with httpx.AsyncClient() as http:
        introspector = Introspector(
            dead,
            http,
            httpx.BasicAuth(CLIENT, SECRET),
            authorization="Basic x",
            connections=AuthorityConnections(dead, max_connections=1, timeout=10),
            endpoint=dead + "/introspect",
        )
        answers = await asyncio.gather(*(introspector.introspect("t1") for _ in range(5)))
        await introspector.aclose()
    assert answers == ["unavailable"] * 5


async def test_closing_answers_checks_whose_request_never_started(
    introspector: Introspector,
) -> None:
    # The check's request task exists but has not run when the introspector closes: its
    # cancellation never reaches the code that answers the waiters.
    check = asyncio.create_task(introspector.introspect("t1"))
    await until(lambda: "t1" in introspector._open)
    await introspector.aclose()
    assert await asyncio.wait_for(check, 10) == "unavailable"
    assert introspector._open == {}
    # A later check of the same token joins no stale request: it is answered too.
    assert await asyncio.wait_for(introspector.introspect("t1"), 10) == "unavailable"


async def test_a_single_use_token_lets_exactly_one_waiter_through(
    stub: StubAuthority, introspector: Introspector
) -> None:
    stub.behaviour["once"] = "single_use"
    answers = await behind_a_held_request(
        stub, introspector, [introspector.introspect("once") for _ in range(5)]
    )
    assert stub.requests["once"] == 1
    assert sum(isinstance(a, dict) for a in answers) == 1
    assert sorted(a for a in answers if isinstance(a, str)) == ["inactive"] * 4


async def test_an_answer_not_marked_reusable_is_given_once_and_the_others_ask_again(
    stub: StubAuthority, introspector: Introspector
) -> None:
    stub.behaviour["old"] = "unmarked"
    answers = await behind_a_held_request(
        stub, introspector, [introspector.introspect("old") for _ in range(4)]
    )
    assert all(isinstance(a, dict) for a in answers)
    assert stub.requests["old"] == 4  # each waiter had an answer of its own


async def test_a_check_begun_after_the_request_was_written_gets_a_fresh_answer(
    stub: StubAuthority, url: str
) -> None:
    """The authority decided "active" for the first request; the token is revoked; a check
    that begins now must not be handed that answer, though it is still on its way."""
    stub.behaviour["t1"] = "active"
    async with httpx.AsyncClient() as http:
        introspector = Introspector(
            url,
            http,
            httpx.BasicAuth(CLIENT, SECRET),
            authorization=AUTHORIZATION,
            connections=AuthorityConnections(url, max_connections=2, timeout=10),
            endpoint=url + "/introspect",
        )
        stub.hold("t1")
        first = asyncio.create_task(introspector.introspect("t1"))
        await stub.arrival("t1").wait()  # written and answered "active", not yet received
        stub.behaviour["t1"] = "inactive"  # revoked
        second = asyncio.create_task(introspector.introspect("t1"))
        await until(lambda: stub.requests["t1"] == 2)
        stub.hold("t1").set()
        answers = await first, await second
        await introspector.aclose()
    assert isinstance(answers[0], dict)
    assert answers[1] == "inactive"


async def test_connections_are_kept_and_reused(stub: StubAuthority, url: str) -> None:
    stub.behaviour["t1"] = "active"
    seen: set[int] = set()
    connections = AuthorityConnections(url, max_connections=1)
    try:
        for _ in range(5):
            answer = await connections.post(
                "/introspect",
                [(b"Authorization", AUTHORIZATION.encode())],
                b"token=t1",
            )
            assert answer.status == 200
            seen.add(id(connections._idle[-1]))
    finally:
        await connections.aclose()
    assert stub.requests["t1"] == 5
    assert len(seen) == 1


# --- against the real authority ------------------------------------------------------------------
async def test_a_revoked_token_is_refused_on_the_next_request(world: World, app: Starlette) -> None:
    """Over the persistent connections: active, then the delegation is revoked, then the
    very next check of the same token is refused (nothing of the first answer is kept)."""
    value = (await world.exchange()).json()["access_token"]
    async with serving(app) as served:
        gate = TokenGate(
            issuer=ISSUER,
            audience=RS_AUDIENCE,
            http=world.client,
            client_id=world.server_id,
            client_secret=world.server_secret,
            use_feed=False,
            clock=world.clock.now,
        )
        gate.introspector = Introspector(
            ISSUER,
            world.client,
            gate.auth,
            authorization=_basic(world),
            connections=AuthorityConnections(served),
            endpoint=served + "/oauth2/introspect",
        )
        try:
            passed = await asyncio.gather(
                *(gate.check_live(_verified(value), introspect=True, dpop=False) for _ in range(4))
            )
            revoked = await world.client.post(
                f"/v1/delegations/{world.delegation_id}/revoke",
                headers=world.auth(world.owner_key),
            )
            assert revoked.status_code == 200
            refused = await _refused(gate, value)
        finally:
            await gate.stop()
    assert all(p is not None and p["active"] is True for p in passed)
    assert refused == (401, "invalid_token")


async def test_concurrent_checks_make_one_request_to_the_real_authority(
    world: World, app: Starlette
) -> None:
    value = (await world.exchange()).json()["access_token"]
    seen: list[str] = []

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append(scope["path"])
        await app(scope, receive, send)

    async with serving(counting) as served:
        introspector = Introspector(
            ISSUER,
            world.client,
            httpx.BasicAuth(world.server_id, world.server_secret),
            authorization=_basic(world),
            connections=AuthorityConnections(served),
            endpoint=served + "/oauth2/introspect",
        )
        try:
            answers = await asyncio.gather(*(introspector.introspect(value) for _ in range(10)))
        finally:
            await introspector.aclose()
    assert seen == ["/oauth2/introspect"]
    assert all(isinstance(a, dict) and a["active"] is True for a in answers)


async def test_the_middleware_refuses_a_token_revoked_after_it_passed(world: World) -> None:
    """Through the middleware's own client (introspect=True): pass, revoke, refuse."""
    from tests.integration.sdk.test_middleware import call_tool, revoke_delegation, tool_server

    middleware = tool_server(world, introspect=True)
    value = (await world.exchange()).json()["access_token"]
    first = await call_tool(middleware, value)
    await revoke_delegation(world)
    second = await call_tool(middleware, value)
    assert first.status_code == 200, first.text
    assert second.status_code == 401
    assert "not active" in second.headers["www-authenticate"]


async def test_the_authority_marks_single_use_answers(world: World) -> None:
    """What lets an enforcement point share an answer: ``single_use`` in each active one."""
    await world.add_tool("github.issues.delete", actions=["delete"], single_use=True)
    await world.delegate(
        scope=[
            {"tool": "github.issues.create", "resources": ["acme/*"], "actions": ["create"]},
            {"tool": "github.issues.delete", "resources": ["acme/*"], "actions": ["delete"]},
        ]
    )
    basic = httpx.BasicAuth(world.server_id, world.server_secret)
    answers = []
    for tool, action in (("github.issues.create", "create"), ("github.issues.delete", "delete")):
        value = (await world.exchange(tool=tool, action=action)).json()["access_token"]
        answered = await world.client.post("/oauth2/introspect", data={"token": value}, auth=basic)
        answers.append(answered.json())
    assert answers[0]["active"] is True
    assert answers[0]["single_use"] is False
    assert answers[1]["active"] is True
    assert answers[1]["single_use"] is True


def _basic(world: World) -> str:
    pair = f"{world.server_id}:{world.server_secret}".encode()
    return "Basic " + base64.b64encode(pair).decode()
