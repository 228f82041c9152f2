"""The rules a locally verifying resource server applies to revocation events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from authority.sdk.revocations import CLOCK_LEEWAY, FeedFollower, RevocationList
from authority.sdk.verifier import VerifiedToken

NOW = 1_800_000_000


def token(**overrides: object) -> VerifiedToken:
    values: dict[str, object] = {
        "raw": "t",
        "claims": {},
        "jti": "at_1",
        "owner_id": "own_1",
        "agent_id": "agt_1",
        "delegation_id": "dlg_1",
        "issued_at": NOW,
        "expires_at": NOW + 5,
        "tool": "t",
        "resource": "r",
        "action": "a",
        "dpop_jkt": None,
    }
    values.update(overrides)
    return VerifiedToken(**values)  # type: ignore[arg-type]


def test_token_event_revokes_that_jti_only() -> None:
    revoked = RevocationList()
    revoked.apply({"kind": "token", "jti": "at_1", "time": NOW, "expires_at": NOW + 60}, NOW)
    assert revoked.revokes(token())
    assert not revoked.revokes(token(jti="at_2"))


def test_delegation_event_revokes_every_token_under_it() -> None:
    revoked = RevocationList()
    revoked.apply({"kind": "delegation", "delegation_id": "dlg_1", "time": NOW}, NOW)
    assert revoked.revokes(token(jti="at_9", issued_at=NOW + 100))
    assert not revoked.revokes(token(delegation_id="dlg_2"))


def test_agent_event_revokes_tokens_issued_until_then() -> None:
    revoked = RevocationList()
    revoked.apply({"kind": "agent", "agent_id": "agt_1", "time": NOW}, NOW)
    assert revoked.revokes(token(issued_at=NOW))
    assert revoked.revokes(token(issued_at=NOW - 3))
    # Within the instances' clock leeway counts as before; well after (a release) does not.
    assert revoked.revokes(token(issued_at=NOW + CLOCK_LEEWAY))
    assert not revoked.revokes(token(issued_at=NOW + CLOCK_LEEWAY + 1))
    assert not revoked.revokes(token(agent_id="agt_2"))


def test_owner_event_revokes_every_agent_of_the_owner() -> None:
    revoked = RevocationList()
    revoked.apply({"kind": "owner", "owner_id": "own_1", "time": NOW}, NOW)
    assert revoked.revokes(token(agent_id="agt_7"))
    assert not revoked.revokes(token(owner_id="own_2"))


def test_expired_events_are_forgotten() -> None:
    revoked = RevocationList()
    revoked.apply({"kind": "token", "jti": "at_1", "time": NOW, "expires_at": NOW + 5}, NOW)
    revoked.forget_expired(NOW + 6)
    assert not revoked.tokens


async def test_feed_is_healthy_only_once_caught_up_and_while_heard() -> None:
    """Heard from is not enough: the follower trusts its list only after the feed's
    ``ready`` message on the current connection, never before it, and not after the
    connection is lost until the next ``ready``."""
    now = [float(NOW)]
    release, end, resumed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    requests: list[httpx.Request] = []
    event = b'{"id":5,"kind":"token","time":%d,"expires_at":%d,"jti":"at_1"}' % (NOW, NOW + 60)

    async def first() -> AsyncIterator[bytes]:
        yield b"retry: 1000\nid: 4\n\nid: 5\nevent: revocation\ndata: " + event + b"\n\n"
        await release.wait()
        yield b'id: 5\nevent: ready\ndata: {"id":5}\n\n'
        await end.wait()

    async def second() -> AsyncIterator[bytes]:
        yield b"retry: 1000\nid: 5\n\n"
        await asyncio.Event().wait()

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if len(requests) > 1:
            resumed.set()
        body = first() if len(requests) == 1 else second()
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    feed = FeedFollower("http://x/feed", http, max_silence=30, clock=lambda: now[0])
    assert not feed.healthy
    feed.start()
    try:
        for _ in range(1000):
            if feed.revoked.tokens:
                break
            await asyncio.sleep(0)
        assert "at_1" in feed.revoked.tokens  # heard from, events applied ...
        assert not feed.healthy  # ... but not caught up
        release.set()
        await asyncio.wait_for(feed.wait_ready(), 3)
        assert feed.healthy
        now[0] += 31
        assert not feed.healthy  # silent too long
        now[0] -= 31
        end.set()  # the connection is lost
        for _ in range(1000):
            if not feed.healthy:
                break
            await asyncio.sleep(0)
        assert not feed.healthy
        await asyncio.wait_for(resumed.wait(), 5)
        for _ in range(100):
            await asyncio.sleep(0)
        assert requests[1].headers["last-event-id"] == "5"
        assert not feed.healthy  # resumed, but no ready yet
    finally:
        await feed.stop()
        await http.aclose()
