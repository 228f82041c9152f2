"""Keyset cursors: stable while rows are added, opaque, refused when forged or misused."""

from __future__ import annotations

import base64

import httpx
import pytest

from authority.clock import FrozenClock

from .conftest import Keys


async def collect(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=params, headers=headers)
        assert response.status_code == 200
        page = response.json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


async def test_order_is_by_creation_time(
    client: httpx.AsyncClient, keys: Keys, clock: FrozenClock
) -> None:
    made = []
    for i in range(5):
        made.append((await keys.owner(f"o{i}")).id)
        clock.advance(1)
    assert await collect(client, "/v1/owners", keys.admin) == made


async def test_rows_added_while_paging_are_neither_repeated_nor_skipped(
    client: httpx.AsyncClient, keys: Keys, clock: FrozenClock
) -> None:
    made = []
    for i in range(4):
        made.append((await keys.owner(f"o{i}")).id)
        clock.advance(1)
    first = (await client.get("/v1/owners?limit=2", headers=keys.admin)).json()
    made.append((await keys.owner("late")).id)
    rest = (
        await client.get(
            "/v1/owners", params={"limit": "10", "cursor": first["next_cursor"]}, headers=keys.admin
        )
    ).json()
    ids = [item["id"] for item in first["items"] + rest["items"]]
    assert ids == made


async def test_default_and_maximum_page_size(client: httpx.AsyncClient, keys: Keys) -> None:
    for i in range(3):
        await keys.owner(f"o{i}")
    page = (await client.get("/v1/owners", headers=keys.admin)).json()
    assert len(page["items"]) == 3
    assert page["next_cursor"] is None


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "", "1.5", "501", "9" * 30, "\u0661"])
async def test_bad_limits_are_400(client: httpx.AsyncClient, keys: Keys, limit: str) -> None:
    response = await client.get("/v1/owners", params={"limit": limit}, headers=keys.admin)
    assert response.status_code == 400
    assert response.json()["error_description"] == (
        "The limit parameter must be an integer between 1 and 500."
    )


async def test_forged_cursors_are_400(client: httpx.AsyncClient, keys: Keys) -> None:
    for i in range(3):
        await keys.owner(f"o{i}")
    cursor = (await client.get("/v1/owners?limit=1", headers=keys.admin)).json()["next_cursor"]
    encoded, tag = cursor.split(".")
    payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    forged = base64.urlsafe_b64encode(("0." + payload.split(".", 1)[1]).encode()).decode()
    for bad in (
        forged.rstrip("=") + "." + tag,
        encoded + "." + "0" * len(tag),
        encoded,
        "",
        "...",
        "%%%",
        "x" * 500,
        cursor + "x",
    ):
        response = await client.get("/v1/owners", params={"cursor": bad}, headers=keys.admin)
        assert response.status_code == 400, bad
        assert response.json()["error_description"] == "The cursor parameter is invalid."


async def test_a_cursor_belongs_to_its_collection(client: httpx.AsyncClient, keys: Keys) -> None:
    for i in range(3):
        await keys.owner(f"o{i}")
    cursor = (await client.get("/v1/owners?limit=1", headers=keys.admin)).json()["next_cursor"]
    response = await client.get("/v1/agents", params={"cursor": cursor}, headers=keys.admin)
    assert response.status_code == 400


async def test_another_owners_cursor_shows_nothing_of_theirs(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    alice, bob = await keys.owner("alice"), await keys.owner("bob")
    for i in range(3):
        await keys.agent(bob, f"b{i}")
    cursor = (await client.get("/v1/agents?limit=1", headers=bob.headers)).json()["next_cursor"]
    page = (await client.get("/v1/agents", params={"cursor": cursor}, headers=alice.headers)).json()
    assert page == {"items": [], "next_cursor": None}
