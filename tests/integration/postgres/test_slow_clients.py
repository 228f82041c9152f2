"""Slow bodies are cut off at ``body_read_timeout``; one address holds only so many of them,
and only so many feed streams (per address and per resource server). Over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from authority.app import create_app
from authority.context import Services
from authority.settings import Settings
from tests.revocation_support import FEED, basic, serving
from tests.support import World

FORM_HEAD = (
    b"POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\n"
    b"grant_type="
)


@contextlib.asynccontextmanager
async def slow_upload(base: str) -> AsyncIterator[tuple[asyncio.StreamReader, Any]]:
    """A connection that sends headers and a first part of its body, then nothing."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(FORM_HEAD)
    await writer.drain()
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def status_line(reader: asyncio.StreamReader) -> bytes:
    # A bound on a hung test, not a timed assertion.
    return await asyncio.wait_for(reader.readline(), 30)


async def until(condition: Any) -> None:
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


@pytest.fixture
def settings(settings_factory: Any, request: pytest.FixtureRequest) -> Settings:
    """The suite's settings with this test's overrides (``indirect`` parametrisation)."""
    result: Settings = settings_factory(**getattr(request, "param", {}))
    return result


@pytest.mark.parametrize("settings", [{"body_read_timeout": 0.5}], indirect=True)
async def test_a_slow_body_is_cut_off_after_the_configured_bound(services: Services) -> None:
    app = create_app(services.settings, services=services)
    async with serving(app) as base, slow_upload(base) as (reader, _):
        assert await status_line(reader) == b"HTTP/1.1 400 Bad Request\r\n"
        rest = await asyncio.wait_for(reader.read(), 30)  # read() ends: it hung up
        assert b"The request body was not received in time." in rest
        assert b"connection: close" in rest.lower()


@pytest.mark.parametrize(
    "settings", [{"body_read_timeout": 300, "max_body_uploads_per_client": 2}], indirect=True
)
async def test_one_address_cannot_hold_more_slow_bodies_than_the_cap(services: Services) -> None:
    uploads = services.open_items.uploads
    async with serving(create_app(services.settings, services=services)) as base:
        async with slow_upload(base), slow_upload(base):
            await until(lambda: uploads.open.get("127.0.0.1") == 2)
            async with slow_upload(base) as (reader, _):
                assert await status_line(reader) == b"HTTP/1.1 429 Too Many Requests\r\n"
        # Hung up: the slots are free again.
        await until(lambda: "127.0.0.1" not in uploads.open)


@pytest.mark.parametrize(
    ("settings", "description"),
    [
        ({"revocation_feed_max_streams_per_client": 2}, "Too many requests; retry later."),
        (
            {"revocation_feed_max_streams_per_server": 2},
            "Too many open feed streams for this client.",
        ),
    ],
    indirect=["settings"],
)
async def test_feed_streams_are_capped_per_address_and_per_server(
    world: World, services: Services, description: str
) -> None:
    async with serving(create_app(services.settings, services=services)) as base:
        auth = basic(world.server_id, world.server_secret)
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            async with (
                http.stream("GET", FEED, headers=auth) as first,
                http.stream("GET", FEED, headers=auth) as second,
            ):
                assert (first.status_code, second.status_code) == (200, 200)
                # Streamed, so that a stream served in spite of the cap fails the test
                # at its status line instead of being read for ever.
                async with http.stream("GET", FEED, headers=auth) as refused:
                    assert refused.status_code == 429
                    await refused.aread()
                assert refused.json() == {
                    "error": "too_many_requests",
                    "error_description": description,
                }
            # Both streams closed: a new one is served again.
            await until(lambda: not services.open_items.server_streams.open)
            await until(lambda: not services.open_items.client_streams.open)
            async with http.stream("GET", FEED, headers=auth) as again:
                assert again.status_code == 200
