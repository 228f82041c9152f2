"""The auditor reads recordings back: roles, lookups by call and by grant, retention."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from authority.clock import FrozenClock
from authority.recordings import sweeper
from authority.storage.schema import call_recordings, ledger_entries
from tests.revocation_support import basic
from tests.support import World

from .support import REQUEST_MARKER, RESPONSE_MARKER, auditor, b64url, call, issued_jti, submit

DAY = 86400


async def recorded(world: World, jti: str | None = None) -> str:
    response = await submit(world, call(jti or await issued_jti(world)))
    assert response.status_code == 201, response.text
    call_id: str = response.json()["call_id"]
    return call_id


async def test_auditors_and_admins_only(world: World) -> None:
    call_id = await recorded(world)
    path = f"/v1/recordings/{call_id}"
    assert (await world.client.get(path)).status_code == 401
    owner = await world.client.get(path, headers=world.auth(world.owner_key))
    assert owner.status_code == 403
    assert owner.json()["error"] == "insufficient_scope"
    listed = await world.client.get(
        "/v1/recordings", params={"grant": "grt_x"}, headers=world.auth(world.owner_key)
    )
    assert listed.status_code == 403
    # The gateway's own credentials read nothing back.
    gateway = await world.client.get(path, headers=basic(world.server_id, world.server_secret))
    assert gateway.status_code == 401
    for headers in (await auditor(world), world.auth(world.admin)):
        response = await world.client.get(path, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"


async def test_one_recording_by_its_call_id(world: World) -> None:
    jti = await issued_jti(world)
    call_id = await recorded(world, jti)
    headers = await auditor(world)
    found = (await world.client.get(f"/v1/recordings/{call_id}", headers=headers)).json()
    now = world.services.now()
    assert {k: v for k, v in found.items() if k not in ("entry", "grant_id")} == {
        "call_id": call_id,
        "gateway": world.server_id,
        "jti": jti,
        "recorded_at": now,
        "retained_until": now + 30 * DAY,
        "retained": True,
        "request_head": b64url(REQUEST_MARKER),
        "response_head": b64url(RESPONSE_MARKER),
        "unreadable": [],
    }
    assert found["entry"]["leaf_index"] is None  # not sequenced yet
    assert world.services.sequencer is not None
    await world.services.sequencer.run_once()
    found = (await world.client.get(f"/v1/recordings/{call_id}", headers=headers)).json()
    assert isinstance(found["entry"]["leaf_index"], int)
    assert isinstance(found["entry"]["leaf_hash"], str)

    unknown = await world.client.get("/v1/recordings/cal_unknown", headers=headers)
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "not_found", "error_description": "No such recording."}
    bad = await world.client.get("/v1/recordings/not%20an%20id", headers=headers)
    assert bad.status_code == 404


async def test_the_recordings_of_a_grant(world: World) -> None:
    jti = await issued_jti(world)
    ids = [await recorded(world, jti) for _ in range(3)]
    other = await recorded(world)
    headers = await auditor(world)
    grant_id = (await world.client.get(f"/v1/recordings/{ids[0]}", headers=headers)).json()[
        "grant_id"
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"grant": grant_id, "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await world.client.get("/v1/recordings", params=params, headers=headers)
        assert page.status_code == 200, page.text
        seen.extend(item["call_id"] for item in page.json()["items"])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and other not in seen
    by_jti = await world.client.get("/v1/recordings", params={"jti": jti}, headers=headers)
    assert sorted(item["call_id"] for item in by_jti.json()["items"]) == sorted(ids)
    assert all(item["request_head"] == b64url(REQUEST_MARKER) for item in by_jti.json()["items"])


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"jti": "a", "grant": "grt_1"},
        {"grant": "not an id"},
        {"jti": "j" * 65},
        {"grant": "grt_1", "cursor": "forged.cursor"},
        {"grant": "grt_1", "limit": "0"},
        {"grant": "grt_1", "other": "x"},
    ],
)
async def test_listing_needs_one_grant(world: World, params: dict[str, str]) -> None:
    response = await world.client.get("/v1/recordings", params=params, headers=await auditor(world))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


async def test_past_retention_the_heads_go_and_the_entry_stays(
    world: World, clock: FrozenClock
) -> None:
    jti = await issued_jti(world)
    call_id = await recorded(world, jti)
    headers = await auditor(world)
    clock.advance(30 * DAY - 1)
    assert (await world.client.get(f"/v1/recordings/{call_id}", headers=headers)).status_code == 200
    clock.advance(2)
    # Not served past retention, even before the sweeper has run.
    gone = await world.client.get(f"/v1/recordings/{call_id}", headers=headers)
    assert gone.status_code == 404
    assert gone.json()["error_description"] == (
        "The recording is past retention (recording_retention): its bodies were deleted; "
        "its gateway_call ledger entry remains."
    )
    listed = (
        await world.client.get("/v1/recordings", params={"jti": jti}, headers=headers)
    ).json()["items"]
    assert [(i["retained"], i["request_head"], i["response_head"]) for i in listed] == [
        (False, None, None)
    ]

    assert await sweeper.sweep(world.services) == 1
    async with world.services.engine.connect() as conn:
        row = (
            await conn.execute(select(call_recordings).where(call_recordings.c.id == call_id))
        ).one()
        entries = (
            await conn.execute(
                select(ledger_entries.c.body).where(ledger_entries.c.kind == "gateway_call")
            )
        ).all()
    assert (row.request_head, row.response_head, row.swept_at) == (None, None, world.services.now())
    assert len(entries) == 1 and call_id in entries[0].body
    assert await sweeper.sweep(world.services) == 0


async def test_a_newer_recording_is_not_swept(world: World, clock: FrozenClock) -> None:
    old = await recorded(world)
    clock.advance(20 * DAY)
    response = await submit(world, call(None))  # a refused call: the delegation is over
    assert response.status_code == 201, response.text
    new = response.json()["call_id"]
    clock.advance(10 * DAY + 1)
    assert await sweeper.sweep(world.services) == 1
    headers = await auditor(world)
    assert (await world.client.get(f"/v1/recordings/{old}", headers=headers)).status_code == 404
    assert (await world.client.get(f"/v1/recordings/{new}", headers=headers)).status_code == 200


async def test_a_head_that_does_not_open_is_named(world: World) -> None:
    first, second = await recorded(world), await recorded(world)
    async with world.services.engine.begin() as conn:
        sealed = (
            await conn.execute(
                select(call_recordings.c.request_head).where(call_recordings.c.id == first)
            )
        ).scalar_one()
        # Another call's sealed head, copied over: it does not open under this call's id.
        await conn.execute(
            update(call_recordings)
            .where(call_recordings.c.id == second)
            .values(request_head=sealed)
        )
    found = (
        await world.client.get(f"/v1/recordings/{second}", headers=await auditor(world))
    ).json()
    assert found["request_head"] is None
    assert found["response_head"] == b64url(RESPONSE_MARKER)
    assert found["unreadable"] == ["request_head"]
