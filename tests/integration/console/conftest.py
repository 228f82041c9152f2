"""The console's route tests: real HTTP through the app, a software passkey per person.

Like the other HTTP suites of ``tests/integration`` (all but ``postgres/``), these run on
both backends: the console is served by every deployment. The browser tests
(``test_browser.py``) run a real uvicorn authority on the embedded backend instead.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from authority.settings import Settings
from tests.conftest import BACKENDS
from tests.support import ISSUER, World

from .authenticator import Authenticator

_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(settings_factory: Any) -> Settings:
    result: Settings = settings_factory(console_secure_cookies=False)
    return result


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, html[:500]
    return match.group(1)


@dataclass
class Person:
    """One person in their own browser: a cookie jar and a passkey."""

    client: httpx.AsyncClient
    passkey: Authenticator = field(
        default_factory=lambda: Authenticator(origin=ISSUER, rp_id="127.0.0.1")
    )
    csrf: str = ""
    id: str = ""

    async def open(self, path: str) -> httpx.Response:
        response = await self.client.get(path)
        if response.status_code == 200 and "text/html" in response.headers["content-type"]:
            self.csrf = csrf_of(response.text)
        return response

    async def script(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(path, json=body, headers={"X-CSRF-Token": self.csrf})

    async def enrol(self, link: str) -> httpx.Response:
        secret = link.split("#", 1)[1]
        assert (await self.open("/console/enrol")).status_code == 200
        options = await self.script("/console/enrol/options", {"secret": secret})
        assert options.status_code == 200, options.text
        credential = self.passkey.create(options.json())
        return await self.script("/console/enrol", {"secret": secret, "credential": credential})

    async def sign_in(self) -> httpx.Response:
        assert (await self.open("/console/sign-in")).status_code == 200
        options = await self.script("/console/sign-in/options", {})
        assert options.status_code == 200, options.text
        return await self.script(
            "/console/sign-in", {"credential": self.passkey.get(options.json())}
        )

    async def confirm(self, action: str, target: str) -> str:
        """A step-up assertion for one action, as step-up.js gets it."""
        options = await self.script("/console/step-up", {"action": action, "target": target})
        assert options.status_code == 200, options.text
        return self.passkey.get(options.json())

    async def submit(self, path: str, **fields: str) -> httpx.Response:
        return await self.client.post(path, data={"csrf": self.csrf, **fields})


@dataclass
class Console:
    app: Starlette
    world: World

    def browser(self) -> Person:
        transport = httpx.ASGITransport(app=self.app)
        return Person(httpx.AsyncClient(transport=transport, base_url=ISSUER))

    async def person(self, role: str, *, owner_id: str | None = None) -> Person:
        """A person enrolled (by the admin API key) and signed in."""
        body: dict[str, Any] = {"name": f"{role}-{uuid.uuid4().hex[:6]}", "role": role}
        if owner_id is not None:
            body["owner_id"] = owner_id
        made = await self.world.post("/v1/console/people", self.world.admin, body)
        person = self.browser()
        person.id = made["id"]
        response = await person.enrol(made["enrolment_url"])
        assert response.status_code == 200, response.text
        return person

    async def owner(self) -> Person:
        return await self.person("owner", owner_id=self.world.owner_id)


@pytest.fixture
async def console(world: World, app: Starlette) -> Console:
    return Console(app, world)


__all__ = ["Console", "Person", "csrf_of"]
