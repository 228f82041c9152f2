from __future__ import annotations

import asyncio

import httpx
import pytest

from authority.context import Services
from authority.tokens.keyring import KeyringNotLoaded


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_every_check(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {
            "database": "ok",
            "hot_state": "ok",
            "signing_keys": "ok",
            "sequencer": "ok",
            "shutdown": "running",
        },
    }


async def test_unknown_route_is_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_readyz_is_503_while_the_instance_drains(
    client: httpx.AsyncClient, services: Services
) -> None:
    services.drain.begin()
    response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "draining"
    assert body["checks"]["shutdown"] == "draining"
    assert body["checks"]["database"] == "ok"  # nothing else is wrong
    assert (await client.get("/healthz")).status_code == 200  # alive, only not ready


async def test_readyz_is_503_without_a_usable_signing_key(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_key(purpose: str = "token") -> str:
        raise KeyringNotLoaded(f"no active {purpose} signing key is loaded")

    monkeypatch.setattr(services.keyring, "active_kid", no_key)
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"]["signing_keys"] == "unavailable"


async def test_readyz_is_503_with_an_unpublished_signing_key(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services.keyring, "public_key", lambda kid, purpose="token": None)
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["signing_keys"] == "unavailable"


async def test_readyz_is_503_when_the_sequencer_fails_or_stops(
    client: httpx.AsyncClient, services: Services
) -> None:
    sequencer = services.sequencer
    assert sequencer is not None
    sequencer.failing = True  # as its loop records a round that raised
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["sequencer"] == "unavailable"
    sequencer.failing = False
    assert (await client.get("/readyz")).status_code == 200
    await sequencer.stop()
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["sequencer"] == "unavailable"


async def test_a_failed_sequencing_round_marks_the_sequencer_failing(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    sequencer = services.sequencer
    assert sequencer is not None
    tried = asyncio.Event()

    async def failing_round() -> None:
        tried.set()
        raise OSError("database gone")

    monkeypatch.setattr(sequencer, "run_once", failing_round)
    monkeypatch.setattr(sequencer, "_interval", 0.01)
    await sequencer.stop()
    sequencer.start()
    await tried.wait()
    await asyncio.sleep(0)  # the loop records the failure after the round raised
    assert sequencer.failing and not sequencer.usable
