"""What ``authority ledger verify`` prints about a server that refuses it."""

from __future__ import annotations

import httpx
import pytest

from authority.ledger.cli import InputError, Unreachable, _get_json


def _client(status: int, body: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(status, text=body))
    )


async def test_a_refusal_is_shown_escaped_and_without_the_urls_credentials() -> None:
    async with _client(403, "denied \x1b[2J\x1b]0;owned\x07") as client:
        with pytest.raises(InputError) as caught:
            await _get_json(client, "https://auditor:pw@authority.example/v1/ledger/checkpoints")
    text = str(caught.value)
    assert "\x1b" not in text and "\x07" not in text and "denied" in text
    assert "pw" not in text and "authority.example" in text


async def test_a_server_error_is_unavailable_and_names_no_credentials() -> None:
    async with _client(503, "") as client:
        with pytest.raises(Unreachable) as caught:
            await _get_json(client, "https://auditor:pw@authority.example/v1/ledger/export")
    assert "pw" not in str(caught.value)
