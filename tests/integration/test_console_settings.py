"""The console's cookies: Secure and __Host- prefixed, unless a loopback test says not."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from authority.app import create_app
from authority.settings import Settings


def test_insecure_cookies_only_for_a_loopback_issuer(settings_factory: Any) -> None:
    assert not settings_factory(console_secure_cookies=False).console_secure_cookies
    with pytest.raises(ValidationError):
        settings_factory(issuer="https://authority.example", console_secure_cookies=False)


@pytest.mark.parametrize("backend", ["embedded"])
async def test_secure_cookies_are_host_prefixed(settings_factory: Any, backend: str) -> None:
    settings: Settings = settings_factory(issuer="https://authority.example")
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://authority.example") as c:
        response = await c.get("/console/sign-in")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-authority-console-ceremony=")
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie
