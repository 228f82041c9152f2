"""The revocation feed (Server-Sent Events): format, resumption, no gaps, authentication.

Streams need a real HTTP server (an ASGI test transport buffers whole responses), so the
app runs under uvicorn on a loopback port, sharing the test's started services.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from authority.sdk.feed import FeedError, Message, RevocationEvent, RevocationFeed, parse_sse
from authority.settings import Settings
from authority.storage.schema import revocation_events
from tests.revocation_support import (
    FEED,
    Server,
    add_server,
    basic,
    client_assertion,
    issue,
    revoke_as_server,
    serving,
    world_server,
)
from tests.support import ISSUER, AgentKey, World


@pytest.fixture
def settings(settings_factory: Any) -> Settings:
    result: Settings = settings_factory(
        revocation_feed_heartbeat=0.3,
        revocation_feed_poll_interval=0.5,
        revocation_feed_buffer=16,
    )
    return result


@pytest.fixture
async def base_url(app: Starlette) -> AsyncIterator[str]:
    async with serving(app) as url:
        yield url


async def revoke_one(world: World) -> None:
    token = await issue(world)
    assert (await revoke_as_server(world, token)).status_code == 200


async def all_event_ids(world: World) -> list[int]:
    async with world.services.engine.connect() as conn:
        query = select(revocation_events.c.id).order_by(revocation_events.c.id)
        return [int(i) for i in (await conn.execute(query)).scalars().all()]


WAIT = 3.0


def scope_of(tool: str) -> dict[str, Any]:
    return {"tool": tool, "resources": ["acme/*"], "actions": ["create"]}


async def tool_server(
    world: World, audience: str, tool: str, method: str = "client_secret_basic"
) -> Server:
    """Another resource server, hosting one tool of its own."""
    server = await add_server(world, audience, method=method)
    body = {"name": tool, "resource_server_id": server.id, "actions": ["create"], "risk_tier": 1}
    await world.post("/v1/tools", world.admin, body)
    return server


class Reader:
    """One raw SSE connection: lines as sent, and messages as a client parses them."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines: list[str] = []
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def _lines(self) -> AsyncIterator[str]:
        async for line in self.response.aiter_lines():
            self.lines.append(line)
            yield line

    async def _run(self) -> None:
        async for message in parse_sse(self._lines()):
            self._queue.put_nowait(message)

    async def next(self) -> Message:
        return await asyncio.wait_for(self._queue.get(), WAIT)

    async def event(self) -> RevocationEvent:
        while True:
            message = await self.next()
            if message.event == "revocation":
                return RevocationEvent.from_json(message.data)

    async def until_ready(self) -> tuple[list[RevocationEvent], Message]:
        """The events sent before the ``ready`` message, and that message."""
        replayed: list[RevocationEvent] = []
        while True:
            message = await self.next()
            if message.event == "ready":
                return replayed, message
            if message.event == "revocation":
                replayed.append(RevocationEvent.from_json(message.data))

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def connect(
    http: httpx.AsyncClient,
    url: str,
    world: World,
    headers: dict[str, str] | None = None,
    server: Server | None = None,
) -> tuple[httpx.Response, Reader]:
    server = server or world_server(world)
    assert server.secret is not None
    request = http.build_request(
        "GET", url + FEED, headers={**basic(server.id, server.secret), **(headers or {})}
    )
    response = await http.send(request, stream=True)
    assert response.status_code == 200, await response.aread()
    return response, Reader(response)


async def test_an_event_arrives_in_the_documented_format(world: World, base_url: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        response, reader = await connect(http, base_url, world)
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        start = await reader.next()
        assert (start.data, start.last_event_id) == ("", "0")
        ready = await reader.next()
        assert (ready.event, json.loads(ready.data), ready.last_event_id) == (
            "ready",
            {"id": 0},
            "0",
        )
        token = await issue(world)
        await revoke_as_server(world, token)
        event = await reader.event()
        await reader.close()
        await response.aclose()
    assert reader.lines[:3] == ["retry: 1000", "id: 0", ""]
    assert reader.lines[3:7] == ["id: 0", "event: ready", 'data: {"id":0}', ""]
    i = reader.lines.index(f"id: {event.id}")
    assert reader.lines[i + 1] == "event: revocation"
    data = json.loads(reader.lines[i + 2].removeprefix("data: "))
    assert reader.lines[i + 3] == ""
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    assert data == {
        "id": event.id,
        "kind": "token",
        "time": world.services.now(),
        "expires_at": data["expires_at"],
        "jti": jti,
        "delegation_id": world.delegation_id,
        "agent_id": world.agent_id,
        "owner_id": world.owner_id,
    }
    assert data["expires_at"] >= data["time"]


async def test_idle_stream_carries_heartbeats(world: World, base_url: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        response, reader = await connect(http, base_url, world)
        await asyncio.sleep(1.0)
        await reader.close()
        await response.aclose()
    assert reader.lines.count(": heartbeat") >= 2


async def test_without_last_event_id_the_stream_replays_what_is_live_then_says_ready(
    world: World, base_url: str, settings: Settings
) -> None:
    """A resource server that (re)starts must hear of revocations made before it
    connected: every event whose tokens may still be alive comes first, then ``ready``."""
    await revoke_one(world)
    [expired] = await all_event_ids(world)
    # Later than any token of that revocation can live: it has nothing left to revoke.
    world.clock.advance(settings.access_token_max_lifetime + settings.clock_skew + 1)
    token = await issue(world)
    revoked = await world.client.post(
        f"/v1/delegations/{world.delegation_id}/revoke", headers=world.auth(world.owner_key)
    )
    assert revoked.status_code == 200
    assert (await revoke_as_server(world, token)).status_code == 200
    _, delegation, second = await all_event_ids(world)
    async with httpx.AsyncClient(timeout=10) as http:
        response, reader = await connect(http, base_url, world)
        start = await reader.next()
        replayed, ready = await reader.until_ready()
        await world.delegate()
        await revoke_one(world)
        live = await reader.event()
        await reader.close()
        await response.aclose()
    assert [(e.id, e.kind) for e in replayed] == [(delegation, "delegation"), (second, "token")]
    assert replayed[0].delegation_id != world.delegation_id  # the revoked one, not the new
    assert expired < delegation
    # A cut before the first replayed event resumes at it, not after the tail.
    assert start.last_event_id == str(delegation - 1)
    assert ready.last_event_id == str(second)
    assert live.id > second


async def test_ready_comes_after_a_replay_longer_than_a_page(
    world: World, base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from authority.revocations import feed

    monkeypatch.setattr(feed, "PAGE", 2)
    for _ in range(5):
        await revoke_one(world)
    ids = await all_event_ids(world)
    async with httpx.AsyncClient(timeout=10) as http:
        response, reader = await connect(http, base_url, world)
        replayed, ready = await reader.until_ready()
        await reader.close()
        await response.aclose()
    assert [e.id for e in replayed] == ids
    assert ready.last_event_id == str(ids[-1])


async def test_last_event_id_replays_what_was_missed_then_follows(
    world: World, base_url: str
) -> None:
    for _ in range(3):
        await revoke_one(world)
    first, second, third = await all_event_ids(world)
    async with httpx.AsyncClient(timeout=10) as http:
        response, reader = await connect(http, base_url, world, {"Last-Event-ID": str(first)})
        replayed, ready = await reader.until_ready()
        await revoke_one(world)
        live = await reader.event()
        await reader.close()
        await response.aclose()
    assert [e.id for e in replayed] == [second, third]
    assert ready.last_event_id == str(third)
    assert live.id > third
    assert [e.id for e in (*replayed, live)] == (await all_event_ids(world))[1:]


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "9" * 30])
async def test_malformed_last_event_id_is_refused(world: World, base_url: str, value: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            base_url + FEED,
            headers={**basic(world.server_id, world.server_secret), "Last-Event-ID": value},
        )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_feed_needs_an_authenticated_resource_server(world: World, base_url: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        anonymous = await http.get(base_url + FEED)
        wrong = await http.get(base_url + FEED, headers=basic(world.server_id, "nope"))
        query = await http.get(
            base_url + FEED + "?x=1", headers=basic(world.server_id, world.server_secret)
        )
        agent = await http.post(
            base_url + FEED,
            data=client_assertion(world.agent_key, world.agent_id, world.clock.now()),
        )
    # RFC 6749 §5.2: 401 + challenge for the Authorization header, 400 otherwise.
    for response, status in ((anonymous, 400), (wrong, 401), (agent, 400)):
        assert response.status_code == status
        assert response.json()["error"] == "invalid_client"
        assert ("www-authenticate" in response.headers) is (status == 401)
    assert query.status_code == 400


async def test_private_key_jwt_server_follows_the_feed_by_post(world: World, base_url: str) -> None:
    server = await tool_server(world, "https://jwt.example.test", "jwt.tool", "private_key_jwt")
    await world.delegate(scope=[scope_of("jwt.tool")])
    assert server.key is not None
    key = server.key
    form = client_assertion(key, server.id, world.clock.now(), aud=ISSUER + FEED)
    async with httpx.AsyncClient(timeout=10) as http:
        request = http.build_request("POST", base_url + FEED, data=form)
        response = await http.send(request, stream=True)
        assert response.status_code == 200
        await response.aclose()
        replayed = await http.post(base_url + FEED, data=form)
        assert replayed.status_code == 400
        assert replayed.json()["error"] == "invalid_client"

        feed = RevocationFeed(
            base_url + FEED,
            client_id=server.id,
            assertion=lambda: key.attestation(server.id, world.clock.now()),
            http=http,
        )
        events = feed.events()
        waiting = asyncio.ensure_future(anext(events))
        await asyncio.sleep(0.3)
        token = await issue(world, tool="jwt.tool", audience=server.audience)
        assert (await revoke_as_server(world, token, server)).status_code == 200
        event = await asyncio.wait_for(waiting, 3)
        await events.aclose()
    assert event.kind == "token"


async def test_sdk_client_refuses_to_retry_bad_credentials(world: World, base_url: str) -> None:
    feed = RevocationFeed(base_url + FEED, client_id=world.server_id, client_secret="wrong")
    with pytest.raises(FeedError) as raised:
        await anext(feed.events())
    assert (raised.value.status, raised.value.error) == (401, "invalid_client")


# --- each server hears only of tokens it can receive ------------------------------------------
def subject(event: RevocationEvent) -> tuple[str, str | None]:
    members = {
        "token": event.jti,
        "delegation": event.delegation_id,
        "agent": event.agent_id,
        "owner": event.owner_id,
    }
    return event.kind, members[event.kind]


async def until_owner_event(reader: Reader) -> list[tuple[str, str | None]]:
    received = [subject(await reader.event())]
    while received[-1][0] != "owner":
        received.append(subject(await reader.event()))
    return received


async def test_a_server_hears_only_of_tokens_it_can_receive(world: World, base_url: str) -> None:
    """X hosts github.issues.create, Y hosts y.tool, Z hosts z.tool. Agent A's delegations
    cover X and Y, agent B's (same owner) covers Z. Each server hears of its own tokens, of
    the delegations that cover one of its tools, and of agents and owners with such a
    delegation; nothing else (no ids of other servers' tokens or other delegations)."""
    x = world_server(world)
    y = await tool_server(world, "https://y.example.test", "y.tool")
    z = await tool_server(world, "https://z.example.test", "z.tool")
    second = await world.post(
        "/v1/agents",
        world.owner_key,
        {"name": "second", "autonomy_level": 2, "jwks": AgentKey().jwks()},
    )

    async def revoke_delegation(delegation_id: str) -> None:
        path = f"/v1/delegations/{delegation_id}/revoke"
        revoked = await world.client.post(path, headers=world.auth(world.owner_key))
        assert revoked.status_code == 200

    def jti(token: str) -> str:
        return str(jwt.decode(token, options={"verify_signature": False})["jti"])

    async with httpx.AsyncClient(timeout=10) as http:
        live = {
            name: await connect(http, base_url, world, server=s)
            for name, s in (("x", x), ("y", y), ("z", z))
        }
        for _, reader in live.values():
            await reader.until_ready()
        both = await world.delegate(scope=[scope_of("github.issues.create"), scope_of("y.tool")])
        for_x = await issue(world)
        only_y = await world.delegate(scope=[scope_of("y.tool")])
        for_y = await issue(world, tool="y.tool", audience=y.audience)
        only_z = await world.delegate(agent_id=second["id"], scope=[scope_of("z.tool")])
        assert (await revoke_as_server(world, for_y, y)).status_code == 200
        assert (await revoke_as_server(world, for_x, x)).status_code == 200
        await revoke_delegation(only_y["id"])
        await revoke_delegation(both["id"])
        await revoke_delegation(only_z["id"])
        retired = await world.client.delete(
            f"/v1/agents/{world.agent_id}", headers=world.auth(world.owner_key)
        )
        assert retired.status_code == 200
        retired = await world.client.delete(
            f"/v1/owners/{world.owner_id}", headers=world.auth(world.admin)
        )
        assert retired.status_code == 200
        heard = {name: await until_owner_event(reader) for name, (_, reader) in live.items()}
        for response, reader in live.values():
            await reader.close()
            await response.aclose()
        replayed = {}
        for name, server in (("x", x), ("y", y), ("z", z)):
            response, reader = await connect(http, base_url, world, server=server)
            replayed[name] = [subject(e) for e in (await reader.until_ready())[0]]
            await reader.close()
            await response.aclose()
    agent, owner = ("agent", world.agent_id), ("owner", world.owner_id)
    expected = {
        "x": [("token", jti(for_x)), ("delegation", both["id"]), agent, owner],
        "y": [
            ("token", jti(for_y)),
            ("delegation", only_y["id"]),
            ("delegation", both["id"]),
            agent,
            owner,
        ],
        "z": [("delegation", only_z["id"]), owner],
    }
    assert heard == expected
    # A server that starts now replays exactly what it would have heard.
    assert replayed == expected


# --- no gaps, no duplicates -----------------------------------------------------------------------
async def test_catch_up_reaches_beyond_the_in_memory_buffer(world: World, base_url: str) -> None:
    """A client further behind than the instance's buffer (16 here) is served from SQL,
    page by page, and joins the live tail after."""
    async with httpx.AsyncClient(timeout=10) as http:
        response, reader = await connect(http, base_url, world)  # the hub starts here
        for _ in range(20):
            await revoke_one(world)
        ids = await all_event_ids(world)
        assert [(await reader.event()).id for _ in ids] == ids
        await reader.close()
        await response.aclose()
        response, reader = await connect(http, base_url, world, {"Last-Event-ID": str(ids[1])})
        replayed = [(await reader.event()).id for _ in ids[2:]]
        await revoke_one(world)
        live = await reader.event()
        await reader.close()
        await response.aclose()
    assert replayed == ids[2:]
    assert live.id == (await all_event_ids(world))[-1]


async def test_sdk_follows_across_stream_ends_without_gaps_or_duplicates(
    world: World, settings_factory: Any
) -> None:
    from authority.app import build_services, create_app, start, stop

    settings = settings_factory(
        revocation_feed_heartbeat=0.2,
        revocation_feed_poll_interval=0.5,
        revocation_feed_max_duration=1.0,
        revocation_feed_buffer=16,
    )
    services = build_services(settings, clock=world.clock)
    await start(services)
    try:
        async with serving(create_app(settings, services=services)) as url:
            feed = RevocationFeed(
                url + FEED, client_id=world.server_id, client_secret=world.server_secret
            )
            received: list[RevocationEvent] = []

            async def follow() -> None:
                async for event in feed.events():
                    received.append(event)

            follower = asyncio.create_task(follow())
            await asyncio.sleep(0.3)
            # Writers race each other (ids drawn by concurrent transactions) while the
            # stream ends and resumes several times; the buffer (16) is smaller than the
            # burst, so resumption also reads from SQL.
            for _ in range(4):
                tokens = [await issue(world) for _ in range(10)]
                await asyncio.gather(*(revoke_as_server(world, t) for t in tokens))
                await asyncio.sleep(0.4)
            expected = await all_event_ids(world)
            deadline = asyncio.get_running_loop().time() + 5
            while len(received) < len(expected):
                assert asyncio.get_running_loop().time() < deadline, (len(received), expected)
                await asyncio.sleep(0.05)
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
    finally:
        await stop(services)
    assert [e.id for e in received] == expected
    assert len(expected) == 40


# --- the client's parser --------------------------------------------------------------------------
async def _parse(text: str, last_event_id: str = "") -> list[Message]:
    async def lines() -> AsyncIterator[str]:
        for line in text.split("\n"):
            yield line

    return [m async for m in parse_sse(lines(), last_event_id)]


async def test_parser_follows_the_html_standard() -> None:
    text = ": comment\nretry: 500\nid: 7\n\nid: 8\nevent: revocation\ndata: a\ndata:b\n\n"
    text += "data: no id here\n\nid: 9\ndata: cut off"
    messages = await _parse(text)
    assert messages == [
        Message("", "", "7"),
        Message("revocation", "a\nb", "8"),
        Message("message", "no id here", "8"),
    ]


async def test_an_interrupted_message_does_not_move_the_last_event_id() -> None:
    messages = await _parse("id: 3\ndata: x\n\nid: 4\ndata: half", "2")
    assert [m.last_event_id for m in messages] == ["3"]
