"""The revocation feed client against scripted streams (``httpx.MockTransport``): ``retry:``,
``Retry-After``, backoff, ``Last-Event-ID``, refusals, and the decoding (httpx-sse)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from authority.sdk.feed import FeedError, Message, RevocationEvent, RevocationFeed, parse_sse

URL = "https://authority.test/v1/revocations/feed"
STREAM = {"content-type": "text/event-stream"}


def event(i: int, jti: str = "at_1") -> bytes:
    data = b'{"id":%d,"kind":"token","time":1,"jti":"%s"}' % (i, jti.encode())
    return b"id: %d\nevent: revocation\ndata: %s\n\n" % (i, data)


class Stop(Exception):
    """Ends a test's feed at its n-th wait."""


class Script:
    def __init__(self, answers: list[Callable[[], httpx.Response] | Exception], waits: int):
        self.answers = iter(answers)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self.waits = waits

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = next(self.answers)
        if isinstance(answer, Exception):
            raise answer
        return answer()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if len(self.sleeps) == self.waits:
            raise Stop

    async def run(self, **kwargs: object) -> tuple[RevocationFeed, list[RevocationEvent]]:
        received: list[RevocationEvent] = []
        async with httpx.AsyncClient(transport=httpx.MockTransport(self.handle)) as http:
            feed = RevocationFeed(URL, http=http, sleep=self.sleep, jitter=lambda: 1.0, **kwargs)  # type: ignore[arg-type]

            async def follow() -> None:
                async for item in feed.events():
                    received.append(item)

            with pytest.raises(Stop):
                await follow()
        return feed, received


def stream(body: bytes, status: int = 200, **headers: str) -> Callable[[], httpx.Response]:
    return lambda: httpx.Response(status, headers={**STREAM, **headers}, content=body)


async def test_the_stream_s_retry_time_is_waited_and_the_position_resumed() -> None:
    script = Script(
        [stream(b"retry: 2500\nid: 0\n\n" + event(1)), stream(b"id: 1\n\n" + event(2))], waits=2
    )
    feed, received = await script.run()
    assert [e.id for e in received] == [1, 2]
    assert script.sleeps == [2.5, 2.5]  # the second stream set no retry: it is kept
    assert [r.headers.get("last-event-id") for r in script.requests] == [None, "1"]
    assert feed.last_event_id == "2"


async def test_retry_after_of_a_503_or_429_is_honoured() -> None:
    busy = stream(b"{}", 503, **{"Retry-After": "7"})
    limited = stream(b"{}", 429, **{"Retry-After": "3"})
    script = Script([busy, limited], waits=2)
    await script.run()
    assert script.sleeps == [7.0, 3.0]


async def test_failures_back_off_exponentially_from_the_retry_time_up_to_a_ceiling() -> None:
    down = httpx.ConnectError("refused")
    script = Script([down] * 6, waits=6)
    await script.run(max_delay=5.0)
    assert script.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


async def test_a_working_stream_resets_the_backoff() -> None:
    down = httpx.ConnectError("refused")
    script = Script([down, down, stream(b"id: 0\n\n" + event(1)), down], waits=4)
    await script.run()
    assert script.sleeps == [1.0, 2.0, 1.0, 1.0]


async def test_a_refusal_is_raised_not_retried() -> None:
    body = b'{"error": "invalid_client"}'
    refused = lambda: httpx.Response(401, content=body)  # noqa: E731
    script = Script([refused], waits=1)
    async with httpx.AsyncClient(transport=httpx.MockTransport(script.handle)) as http:
        feed = RevocationFeed(URL, http=http, sleep=script.sleep)
        with pytest.raises(FeedError) as raised:
            await anext(feed.events())
    assert (raised.value.status, raised.value.error) == (401, "invalid_client")
    assert script.sleeps == []


async def test_what_is_not_an_event_stream_is_not_read_as_one() -> None:
    page = lambda: httpx.Response(200, content=event(1), headers={"content-type": "text/html"})  # noqa: E731
    script = Script([page], waits=1)
    _, received = await script.run()
    assert received == []


async def test_a_fresh_client_assertion_for_each_connection() -> None:
    """An assertion's jti is single use: a reconnection never sends the same one."""
    counter = itertools.count()
    script = Script([stream(b"id: 0\n\n"), stream(b"id: 0\n\n")], waits=2)
    await script.run(client_id="rs_1", assertion=lambda: f"assertion-{next(counter)}")
    bodies = [r.content.decode() for r in script.requests]
    assert [r.method for r in script.requests] == ["POST", "POST"]
    assert "assertion-0" in bodies[0]
    assert "assertion-1" in bodies[1]


async def test_heartbeats_are_signs_of_life_and_ready_catches_up() -> None:
    heard: list[int] = []
    ready: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        yield b"id: 0\n\n"
        yield b": heartbeat\n\n"
        yield b'event: ready\ndata: {"id":0}\n\n'
        yield b": heartbeat\n\n"

    script = Script([lambda: httpx.Response(200, headers=STREAM, content=body())], waits=1)
    feed, _ = await script.run(on_heard=lambda: heard.append(1), on_ready=lambda: ready.append(1))
    assert len(heard) == 4
    assert ready == [1]
    assert not feed.caught_up  # the stream ended: not caught up until the next ready


async def test_a_line_separator_inside_data_does_not_split_the_event() -> None:
    """SSE lines end at CR or LF only; U+2028 is a character of the data (a JSON string)."""
    data = '{"id":1,"kind":"tool","time":1,"tool":"a\u2028b"}'.encode()
    script = Script([stream(b"id: 1\nevent: revocation\ndata: " + data + b"\n\n")], waits=1)
    _, received = await script.run()
    assert [e.tool for e in received] == ["a\u2028b"]


async def lines(text: str) -> AsyncIterator[str]:
    for line in text.split("\n"):
        yield line


async def test_the_last_event_id_carries_over_from_the_previous_connection() -> None:
    messages = [m async for m in parse_sse(lines("data: x\n\nid: 6\ndata: y\n\n"), "5")]
    assert messages == [Message("message", "x", "5"), Message("message", "y", "6")]


async def test_an_empty_id_resets_the_last_event_id() -> None:
    messages = [m async for m in parse_sse(lines("id\ndata: x\n\n"), "5")]
    assert messages == [Message("message", "x", "")]


async def test_heartbeats_and_blocks_without_data_are_not_messages() -> None:
    text = "id: 1\n\n: heartbeat\n\n: heartbeat\n\nevent: ready\n\nid: 2\n\n"
    messages = [m async for m in parse_sse(lines(text))]
    assert messages == [Message("", "", "1"), Message("", "", "2")]


async def test_only_a_reconnection_time_in_digits_is_taken() -> None:
    taken: list[int] = []
    text = "retry: -5\n\nretry: 250\n\n"
    assert [m async for m in parse_sse(lines(text), "", taken.append)] == []
    assert taken == [250]


def test_an_event_id_is_one_line() -> None:
    with pytest.raises(ValueError, match="one line"):
        RevocationFeed(URL, last_event_id="1\r\nX-Injected: 1")


async def test_the_middleware_s_follower_reconnects_as_the_stream_asks() -> None:
    """The follower runs on the same client: ``retry:`` and ``Last-Event-ID`` apply to it."""
    from authority.sdk.revocations import FeedFollower

    script = Script([stream(b"retry: 300\nid: 0\n\n" + event(1)), stream(b"id: 1\n\n")], waits=2)
    async with httpx.AsyncClient(transport=httpx.MockTransport(script.handle)) as http:
        follower = FeedFollower(URL, http, sleep=script.sleep, clock=lambda: 10.0)
        with pytest.raises(Stop):
            await follower.follow()
    assert script.sleeps == [0.3, 0.3]
    assert [r.headers.get("last-event-id") for r in script.requests] == [None, "1"]
    assert "at_1" in follower.revoked.tokens


async def test_an_event_whose_handling_failed_is_asked_for_again() -> None:
    """The position moves past an event only once its consumer took it: a follower whose
    handling raised resumes at that event, never after it."""
    script = Script([stream(b"id: 0\n\n" + event(1) + event(2))], waits=1)
    async with httpx.AsyncClient(transport=httpx.MockTransport(script.handle)) as http:
        feed = RevocationFeed(URL, http=http, sleep=script.sleep, jitter=lambda: 1.0)

        async def apply() -> None:
            async for item in feed.events():
                if item.id == 2:
                    raise RuntimeError("the consumer could not apply it")

        with pytest.raises(RuntimeError):
            await apply()
    assert feed.last_event_id == "1"
