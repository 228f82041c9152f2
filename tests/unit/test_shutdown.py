"""The drain: begun by the server's stop signal before the server's own handler runs."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from types import FrameType

import pytest
from sse_starlette.sse import AppStatus

from authority.shutdown import Drain, chain_signals


@pytest.fixture
def restored_signals() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        AppStatus.enable_automatic_graceful_drain_mode()  # type: ignore[no-untyped-call]


def test_nothing_is_chained_without_a_server_handler(restored_signals: None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert chain_signals(Drain()) is False
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


async def test_sigterm_begins_the_drain_then_reaches_the_server(restored_signals: None) -> None:
    received: list[int] = []

    def server_handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    signal.signal(signal.SIGTERM, server_handler)
    signal.signal(signal.SIGINT, server_handler)
    drain = Drain()
    drain.bind(asyncio.get_running_loop())
    woken = asyncio.Event()
    drain.on_begin(woken.set)
    assert chain_signals(drain) is True
    assert AppStatus.enable_automatic_graceful_drain is False  # its drain cuts streams

    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(woken.wait(), 5)
    assert drain.draining
    assert received == [signal.SIGTERM]


def test_a_drain_begins_once_and_survives_a_failing_callback() -> None:
    drain = Drain()
    calls: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    drain.on_begin(broken)
    drain.on_begin(lambda: calls.append("woken"))
    drain.begin()
    drain.begin()
    assert drain.draining
    assert calls == ["woken"]
