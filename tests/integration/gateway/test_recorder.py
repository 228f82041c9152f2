"""The gateway's recorder against a real authority: queue, retries, fail closed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from authority.gateway.contracts import CallRecord, RecordedBody, RecorderUnavailable
from authority.gateway.recorder import AuthorityRecorder, RecorderBounds, document
from authority.settings import Settings
from authority.storage.schema import call_recordings, ledger_entries
from tests.integration.recordings.support import auditor, b64url, digest, issued_jti
from tests.revocation_support import Proxy, add_server, serving
from tests.support import ISSUER, AgentKey, World

BODY = b'{"jsonrpc":"2.0","method":"tools/call","params":{"name":"github.issues.create"}}'


@pytest.fixture
def settings(settings_factory: Any) -> Settings:
    result: Settings = settings_factory(checkpoint_interval=3600.0)
    return result


class Clock:
    """A monotonic clock that moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Switch(httpx.AsyncBaseTransport):
    """The authority's app, reachable or not; ``lose`` answers lost after the fact."""

    def __init__(self, app: Starlette) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.down = False
        self.lose = 0
        self.attempts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        response = await self.inner.handle_async_request(request)
        if self.lose:
            self.lose -= 1
            await response.aread()
            raise httpx.ReadError("connection reset after the request", request=request)
        return response


def body(data: bytes) -> RecordedBody:
    return RecordedBody(digest=digest(data), size=len(data), head=data, truncated=False)


def call(jti: str | None, **changes: Any) -> CallRecord:
    values: dict[str, Any] = {
        "upstream": "github",
        "kind": "mcp",
        "method": "tools/call",
        "target": "github.issues.create",
        "outcome": "forwarded" if jti else "refused",
        "status": 200 if jti else 401,
        "started_at": 1_800_000_000.0,
        "duration_ms": 3.0,
        "jti": jti,
        "request": body(BODY),
        "response": body(b'{"result": "ok"}'),
        **changes,
    }
    return CallRecord(**values)


@pytest.fixture
def switch(app: Starlette) -> Switch:
    return Switch(app)


@pytest.fixture
def mono() -> Clock:
    return Clock()


@pytest.fixture
async def recorder(world: World, switch: Switch, mono: Clock) -> AsyncIterator[AuthorityRecorder]:
    http = httpx.AsyncClient(transport=switch)
    recorder = AuthorityRecorder(
        ISSUER,
        client_id=world.server_id,
        client_secret=world.server_secret,
        bounds=RecorderBounds(queue_size=5, max_outage=10.0, retry_base=0.01, retry_max=0.05),
        http=http,
        clock=mono,
    )
    try:
        yield recorder
    finally:
        await recorder.close()
        await http.aclose()


async def stored(world: World) -> int:
    async with world.services.engine.connect() as conn:
        count: int = (
            await conn.execute(select(func.count()).where(ledger_entries.c.kind == "gateway_call"))
        ).scalar_one()
    return count


async def eventually(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not reached in 10 s")


async def flushed(recorder: AuthorityRecorder) -> None:
    async with asyncio.timeout(10):
        await recorder.flush()


async def test_records_reach_the_ledger_and_the_auditor(
    world: World, recorder: AuthorityRecorder
) -> None:
    jtis = [await issued_jti(world) for _ in range(3)]
    for jti in jtis:
        await recorder.record(call(jti))
    await flushed(recorder)
    assert (recorder.sent, recorder.rejected, recorder.pending) == (3, 0, 0)
    assert await stored(world) == 3
    listed = await world.client.get(
        "/v1/recordings", params={"jti": jtis[0]}, headers=await auditor(world)
    )
    [item] = listed.json()["items"]
    assert item["request_head"] == b64url(BODY)
    assert orjson.loads(item["entry"]["body"])["agent_id"] == world.agent_id


async def test_a_gateway_with_a_key_records_with_assertions(world: World, switch: Switch) -> None:
    server = await add_server(world, "https://keyed.example", method="private_key_jwt")
    key = server.key
    assert key is not None
    http = httpx.AsyncClient(transport=switch)
    recorder = AuthorityRecorder(
        ISSUER,
        client_id=server.id,
        assertion=lambda: key.attestation(server.id, world.clock.now()),
        http=http,
    )
    try:
        for _ in range(3):  # each submission spends an assertion of its own
            await recorder.record(call(None))
        await flushed(recorder)
    finally:
        await recorder.close()
        await http.aclose()
    assert recorder.sent == 3 and await stored(world) == 3


async def test_retries_until_the_authority_is_back(
    world: World, recorder: AuthorityRecorder, switch: Switch
) -> None:
    jti = await issued_jti(world)
    switch.down = True
    for _ in range(3):
        await recorder.record(call(jti))
    await eventually(lambda: recorder.retries >= 6)
    assert await stored(world) == 0 and recorder.pending == 3
    switch.down = False
    await flushed(recorder)
    assert (recorder.sent, await stored(world)) == (3, 3)


async def test_a_lost_answer_is_not_stored_twice(
    world: World, recorder: AuthorityRecorder, switch: Switch
) -> None:
    switch.lose = 2  # stored, but the gateway never hears it: it tries again
    await recorder.record(call(await issued_jti(world)))
    await flushed(recorder)
    assert recorder.sent == 1 and recorder.retries == 2
    assert await stored(world) == 1


async def test_fails_closed_once_the_authority_is_down_too_long(
    world: World, recorder: AuthorityRecorder, switch: Switch, mono: Clock
) -> None:
    jti = await issued_jti(world)
    switch.down = True
    await recorder.record(call(jti))
    mono.now += 9.9
    await recorder.record(call(jti))  # within the bound: taken
    assert recorder.available()
    mono.now += 0.1
    assert not recorder.available()
    with pytest.raises(RecorderUnavailable, match="has not taken records for too long"):
        await recorder.record(call(jti))
    switch.down = False
    await flushed(recorder)
    assert recorder.available()  # the backlog is in: calls are taken again
    await recorder.record(call(jti))
    await flushed(recorder)
    assert await stored(world) == 3


async def test_fails_closed_when_the_queue_is_full(
    world: World, recorder: AuthorityRecorder, switch: Switch
) -> None:
    switch.down = True
    for _ in range(5):
        await recorder.record(call(None))
    with pytest.raises(RecorderUnavailable, match="queue is full"):
        await recorder.record(call(None))
    switch.down = False
    await flushed(recorder)
    assert await stored(world) == 5
    await recorder.record(call(None))


async def test_wrong_credentials_are_retried_not_dropped(
    world: World, switch: Switch, mono: Clock
) -> None:
    http = httpx.AsyncClient(transport=switch)
    recorder = AuthorityRecorder(
        ISSUER,
        client_id=world.server_id,
        client_secret="rss_not-the-secret",
        bounds=RecorderBounds(max_outage=5.0, retry_base=0.01, retry_max=0.02, drain_timeout=0.1),
        http=http,
        clock=mono,
    )
    try:
        await recorder.record(call(None))
        await eventually(lambda: recorder.retries >= 3)
        assert recorder.rejected == 0 and recorder.pending == 1
        mono.now += 5
        with pytest.raises(RecorderUnavailable):
            await recorder.record(call(None))
    finally:
        assert await recorder.close() == 1  # the record never taken is lost, and said so
        await http.aclose()
    assert await stored(world) == 0


async def test_a_refused_assertion_is_retried_not_dropped(
    world: World, switch: Switch, mono: Clock
) -> None:
    """``invalid_client`` in a 400 (an assertion, in the body) is about the gateway's
    credentials, not the record: retried, and in time the calls stop."""
    server = await add_server(world, "https://keyed.example", method="private_key_jwt")
    stranger = AgentKey()  # not the key the server registered
    http = httpx.AsyncClient(transport=switch)
    recorder = AuthorityRecorder(
        ISSUER,
        client_id=server.id,
        assertion=lambda: stranger.attestation(server.id, world.clock.now()),
        bounds=RecorderBounds(max_outage=5.0, retry_base=0.01, retry_max=0.02, drain_timeout=0.1),
        http=http,
        clock=mono,
    )
    try:
        await recorder.record(call(None))
        await eventually(lambda: recorder.retries >= 3)
        assert recorder.rejected == 0 and recorder.pending == 1
        mono.now += 5
        assert not recorder.available()
    finally:
        assert await recorder.close() == 1
        await http.aclose()


async def test_a_refused_record_is_dropped_and_the_calls_go_on(
    world: World, recorder: AuthorityRecorder
) -> None:
    await recorder.record(call("at_never-issued"))  # invalid_grant: retrying cannot help
    await flushed(recorder)
    assert (recorder.rejected, recorder.sent) == (1, 0)
    assert recorder.available()
    await recorder.record(call(None))
    await flushed(recorder)
    assert recorder.sent == 1 and await stored(world) == 1


async def test_no_content_makes_a_record_malformed(
    world: World, recorder: AuthorityRecorder
) -> None:
    long = b"x" * (200 * 1024)
    hostile = call(
        await issued_jti(world),
        upstream="",
        target="/a\x00b\n" + "c" * 5000,
        method="\x7f",
        response=RecordedBody(digest(long), len(long), long, False),
        masked={"rule\n" + "r" * 300: 2},
        duration_ms=-1.0,
    )
    await recorder.record(hostile)
    await flushed(recorder)
    assert (recorder.sent, recorder.rejected) == (1, 0)
    async with world.services.engine.connect() as conn:
        body = (
            await conn.execute(
                select(ledger_entries.c.body).where(ledger_entries.c.kind == "gateway_call")
            )
        ).scalar_one()
    entry = orjson.loads(body)
    assert entry["response"]["truncated"] is True
    assert entry["response"]["head_size"] == 64 * 1024
    assert entry["response"]["digest"] == digest(long)
    assert len(entry["target"]) == 2048 and "\x00" not in entry["target"]
    assert entry["upstream"] == "-"


def test_the_document_is_the_authoritys_form() -> None:
    submission = uuid.uuid4().hex
    value = document(call("jti-1", blocked_by="no-rm", outcome="blocked"), submission, 4)
    assert value["submission_id"] == submission
    assert value["request"] == {
        "digest": digest(BODY),
        "size": len(BODY),
        "head": b64url(BODY[:4]),
        "truncated": True,
    }
    assert value["blocked_by"] == "no-rm" and "agent_id" not in value


async def test_over_the_network_a_dead_authority_stops_the_calls(
    world: World, app: Starlette, mono: Clock
) -> None:
    async with serving(app) as url:
        host, port = url.removeprefix("http://").split(":")
        proxy = Proxy(host, int(port))
        await proxy.up()
        recorder = AuthorityRecorder(
            f"http://127.0.0.1:{proxy.port}",
            client_id=world.server_id,
            client_secret=world.server_secret,
            bounds=RecorderBounds(max_outage=2.0, retry_base=0.01, retry_max=0.05),
            clock=mono,
        )
        try:
            await recorder.record(call(None))
            await flushed(recorder)
            await proxy.down()
            await recorder.record(call(None))
            await eventually(lambda: recorder.retries >= 3)
            mono.now += 2
            with pytest.raises(RecorderUnavailable):
                await recorder.record(call(None))
            await proxy.up()
            await flushed(recorder)
            assert recorder.available()
        finally:
            await recorder.close()
            await proxy.down()
    assert await stored(world) == 2
    async with world.services.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(call_recordings))).scalar() == 2
