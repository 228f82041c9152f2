"""The owner's notification webhook: registered with a secret shown once, signed in the
manner of Standard Webhooks, verifiable by the receiver, and never in an exchange's way."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authority.clock import FrozenClock
from authority.sdk.webhooks import WebhookVerificationError, verify_webhook
from authority.storage.schema import owners
from tests.revocation_support import serving
from tests.support import World

from .support import approvals_page, ask_pending, with_risky_tool, world_with


@dataclass
class Receiver:
    """An owner's endpoint: records what arrives; can fail, or hold every request."""

    status: int = 204
    gate: asyncio.Event | None = None  # when set, requests wait for it
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    started: int = 0
    finished: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            self.started += 1
            body = await request.body()
            self.received.append((dict(request.headers), body))
            self.arrived.set()
            if self.gate is not None:
                await self.gate.wait()
            self.finished += 1
            return Response(status_code=self.status)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    async def wait_for(self, count: int, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.received)} of {count} deliveries arrived")
            await asyncio.sleep(0.01)


@pytest.fixture
def dev_settings(settings_factory: Any) -> Any:
    def make(**overrides: Any) -> Any:
        return settings_factory(
            webhook_allow_http=True, webhook_allow_private_addresses=True, **overrides
        )

    return make


async def register(world: World, url: str, key: str | None = None) -> httpx.Response:
    return await world.client.put(
        f"/v1/owners/{world.owner_id}/webhook",
        json={"url": url},
        headers=world.auth(key or world.owner_key),
    )


async def registered_world(
    dev_settings: Any, clock: FrozenClock, receiver: Receiver, **overrides: Any
) -> AsyncIterator[tuple[World, str]]:
    async with serving(receiver.app()) as base, world_with(dev_settings(**overrides), clock) as w:
        await with_risky_tool(w)
        response = await register(w, base + "/hook")
        assert response.status_code == 200, response.text
        yield w, response.json()["secret"]


def sign_by_hand(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The Standard Webhooks scheme, written from the specification, not from our code."""
    key = base64.b64decode(secret.split("_", 1)[1])
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


async def wait_for_metric(world: World, outcome: str, value: float) -> None:
    counter = world.services.metrics.webhooks
    deadline = time.monotonic() + 10
    while counter.labels(outcome)._value.get() < value:
        if time.monotonic() > deadline:
            raise AssertionError(f"webhook {outcome} never reached {value}")
        await asyncio.sleep(0.01)


# --- registration ---------------------------------------------------------------------------
async def test_the_secret_is_shown_once_and_stored_sealed(world: World) -> None:
    response = await register(world, "https://hooks.example.test/authority")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    secret = response.json()["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    shown = await world.client.get(
        f"/v1/owners/{world.owner_id}/webhook", headers=world.auth(world.owner_key)
    )
    assert shown.json()["url"] == "https://hooks.example.test/authority"
    assert "secret" not in shown.json()
    async with world.services.engine.connect() as conn:
        sealed = (
            await conn.execute(select(owners.c.webhook_secret).where(owners.c.id == world.owner_id))
        ).scalar_one()
    assert secret.encode() not in sealed and base64.b64decode(secret[6:]) not in sealed
    # A new registration is a new secret.
    again = await register(world, "https://hooks.example.test/authority")
    assert again.json()["secret"] != secret
    deleted = await world.client.delete(
        f"/v1/owners/{world.owner_id}/webhook", headers=world.auth(world.owner_key)
    )
    assert deleted.status_code == 200 and deleted.json()["url"] is None


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.test/x",  # https only by default
        "ftp://hooks.example.test/x",
        "https://user:pw@hooks.example.test/x",
        "https://hooks.example.test/x#frag",
        "https:///nohost",
        "https://hooks.example.test/a b",
        "https://[::1",  # urlsplit raises on these: still a 400, never a 500
        "https://[abc]/",
        "https://hooks.example.test:99999/x",
    ],
)
async def test_only_https_urls_without_credentials(world: World, url: str) -> None:
    response = await register(world, url)
    assert response.status_code == 400
    assert response.json()["error_description"].startswith("The url field ")


async def test_another_owner_cannot_see_or_set_the_webhook(world: World) -> None:
    owner = await world.post("/v1/owners", world.admin, {"name": "other-owner"})
    other = (await world.post(f"/v1/owners/{owner['id']}/api-keys", world.admin, {}))["api_key"]
    assert (await register(world, "https://evil.example.test/", other)).status_code == 404
    shown = await world.client.get(
        f"/v1/owners/{world.owner_id}/webhook", headers=world.auth(other)
    )
    assert shown.status_code == 404


# --- delivery -------------------------------------------------------------------------------
async def test_an_approval_request_is_delivered_signed_and_verifies(
    dev_settings: Any, clock: FrozenClock
) -> None:
    receiver = Receiver()
    async for world, secret in registered_world(dev_settings, clock, receiver):
        await ask_pending(world)
        await receiver.wait_for(1)
        headers, body = receiver.received[0]
        event = verify_webhook(secret, headers, body, now=clock.now())
        assert event.type == "approval.requested"
        [item] = (await approvals_page(world, world.owner_key))["items"]
        assert event.data["approval_id"] == item["id"]
        assert (event.data["tool"], event.data["action"]) == ("deploy.run", "run")
        assert event.data["agent_id"] == world.agent_id
        # The header is exactly the specification's scheme, computed independently.
        expected = sign_by_hand(secret, headers["webhook-id"], headers["webhook-timestamp"], body)
        assert headers["webhook-signature"] == expected
        # The auth_req_id, the agent's secret, is not in the notice.
        assert "ar_" not in body.decode()
        # Tampering, another secret, or an old delivery do not verify.
        with pytest.raises(WebhookVerificationError):
            verify_webhook(secret, headers, body.replace(b"run", b"rum"), now=clock.now())
        other_secret = "whsec_" + base64.b64encode(b"x" * 32).decode()
        with pytest.raises(WebhookVerificationError):
            verify_webhook(other_secret, headers, body, now=clock.now())
        with pytest.raises(WebhookVerificationError):
            verify_webhook(secret, headers, body, now=clock.now() + 3600)
        forged = {**headers, "webhook-id": "msg_other"}
        with pytest.raises(WebhookVerificationError):
            verify_webhook(secret, forged, body, now=clock.now())
        await wait_for_metric(world, "delivered", 1)


async def test_a_failing_receiver_is_retried_with_the_same_id_then_given_up(
    dev_settings: Any, clock: FrozenClock
) -> None:
    receiver = Receiver(status=500)
    settings = {"webhook_retry_base": 0.01, "webhook_max_attempts": 3}
    async for world, _ in registered_world(dev_settings, clock, receiver, **settings):
        assert (await ask(world)).status_code == 200
        await receiver.wait_for(3)
        await wait_for_metric(world, "failed", 1)
        ids = {headers["webhook-id"] for headers, _ in receiver.received}
        assert len(ids) == 1 and len(receiver.received) == 3
        assert world.services.metrics.webhooks.labels("retried")._value.get() == 2


async def test_a_receiver_that_hangs_does_not_hold_up_exchanges(
    dev_settings: Any, clock: FrozenClock
) -> None:
    """The receiver holds every delivery until released (longer than any exchange takes):
    every exchange has been answered while the first delivery is still waiting."""
    receiver = Receiver(gate=asyncio.Event())
    async for world, _ in registered_world(dev_settings, clock, receiver, webhook_workers=1):
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            response = await ask(world)
            timings.append(time.perf_counter() - started)
            assert response.status_code == 200
            assert "auth_req_id" in response.json()
        await receiver.arrived.wait()
        # Ordering, not timing: all five answered, no delivery has completed.
        assert receiver.started == 1 and receiver.finished == 0
        print(f"exchange latency with a hanging receiver: max {max(timings) * 1000:.1f} ms")
        assert receiver.gate is not None
        receiver.gate.set()
        await receiver.wait_for(5)


async def test_a_full_queue_drops_notices_not_exchanges(
    dev_settings: Any, clock: FrozenClock
) -> None:
    receiver = Receiver(gate=asyncio.Event())
    settings = {"webhook_workers": 1, "webhook_queue_size": 1}
    async for world, _ in registered_world(dev_settings, clock, receiver, **settings):
        await ask_pending(world)
        await receiver.arrived.wait()  # the one worker holds the first notice
        for _ in range(3):
            await ask_pending(world)  # one waits in the queue, two are dropped
        assert world.services.metrics.webhooks.labels("dropped")._value.get() == 2
        assert receiver.gate is not None
        receiver.gate.set()
        await receiver.wait_for(2)


async def test_private_addresses_are_refused_unless_allowed(
    settings_factory: Any, clock: FrozenClock
) -> None:
    receiver = Receiver()
    settings = settings_factory(webhook_allow_http=True)
    async with serving(receiver.app()) as base, world_with(settings, clock) as world:
        await with_risky_tool(world)
        assert (await register(world, base + "/hook")).status_code == 200
        await ask_pending(world)
        await wait_for_metric(world, "refused", 1)
        assert receiver.received == []


async def ask(world: World) -> httpx.Response:
    from .support import ask as ask_risky

    return await ask_risky(world)


def test_verify_webhook_reads_headers_in_any_case() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    body = json.dumps({"type": "approval.requested", "data": {"a": 1}}).encode()
    now = int(time.time())
    signature = sign_by_hand(secret, "msg_1", str(now), body)
    headers = {"Webhook-Id": "msg_1", "Webhook-Timestamp": str(now), "Webhook-Signature": signature}
    event = verify_webhook(secret, headers, body)
    assert (event.id, event.type, event.data) == ("msg_1", "approval.requested", {"a": 1})
    # Several signatures (a rotation): any valid v1 one is enough.
    headers["Webhook-Signature"] = "v1,AAAA " + signature
    assert verify_webhook(secret, headers, body).id == "msg_1"
