"""``authority ledger verify --recordings``: recordings checked offline against the ledger."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from authority.cli import main
from authority.clock import FrozenClock
from authority.ledger.gateway_entries import CallBodyV1
from authority.ledger.verify import VerificationFailed
from authority.ledger.verify_recordings import Recording, RecordingsCheck
from tests.integration.ledger.ledgerdata import fetch_checkpoints, fetch_export
from tests.support import World

from .support import REQUEST_MARKER, auditor, b64url, body, call, digest, issued_jti, submit


@dataclass
class Files:
    export: Path
    checkpoints: Path
    keys: Path
    recordings: Path

    def args(self, recordings: Path | None = None, *extra: str) -> list[str]:
        return [
            "ledger",
            "verify",
            "--export",
            str(self.export),
            "--checkpoints",
            str(self.checkpoints),
            "--keys",
            str(self.keys),
            "--recordings",
            str(recordings or self.recordings),
            *extra,
        ]


async def write_ledger(world: World, tmp_path: Path, headers: dict[str, str]) -> Files:
    assert world.services.sequencer is not None
    await world.services.sequencer.run_once()
    export = tmp_path / "export.jsonl"
    export.write_text("\n".join(await fetch_export(world.client, headers)) + "\n")
    checkpoints = tmp_path / "checkpoints.json"
    checkpoints.write_bytes(orjson.dumps(await fetch_checkpoints(world.client, headers)))
    keys = tmp_path / "keys.json"
    keys.write_bytes((await world.client.get("/v1/ledger/keys")).content)
    return Files(export, checkpoints, keys, tmp_path / "recordings.json")


async def recordings_of(world: World, jti: str, headers: dict[str, str]) -> dict[str, Any]:
    response = await world.client.get("/v1/recordings", params={"jti": jti}, headers=headers)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


async def verify(files: Files, document: Any, *extra: str) -> int:
    files.recordings.write_bytes(orjson.dumps(document))
    code: int = await asyncio.to_thread(main, files.args(None, *extra))
    return code


@pytest.fixture
async def recorded(world: World, clock: FrozenClock) -> tuple[str, list[str]]:
    jti = await issued_jti(world)
    long = b"L" * 3000 + REQUEST_MARKER
    ids = []
    for changes in ({}, {"response": body(long, head=500)}, {"request": None}):
        response = await submit(world, call(jti, **changes))
        assert response.status_code == 201, response.text
        ids.append(response.json()["call_id"])
        clock.advance(1)  # listed in this order
    return jti, ids


async def test_recordings_verify_against_the_signed_ledger(
    world: World,
    recorded: tuple[str, list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    jti, ids = recorded
    headers = await auditor(world)
    files = await write_ledger(world, tmp_path, headers)
    listing = await recordings_of(world, jti, headers)
    assert [item["call_id"] for item in listing["items"]] == ids
    assert await verify(files, listing) == 0
    assert "3 recordings verified (0 past retention: entry only)" in capsys.readouterr().out
    # One recording on its own, as GET /v1/recordings/{call_id} answers it.
    one = (await world.client.get(f"/v1/recordings/{ids[1]}", headers=headers)).json()
    assert await verify(files, one) == 0
    assert await verify(files, [one, *listing["items"]]) == 0


def edited(document: dict[str, Any], n: int, **changes: Any) -> dict[str, Any]:
    items = [dict(item) for item in document["items"]]
    items[n].update(changes)
    return {"items": items}


def edited_entry(document: dict[str, Any], n: int, **changes: Any) -> dict[str, Any]:
    entry = dict(document["items"][n]["entry"])
    body_value = orjson.loads(entry["body"])
    body_value.update(changes)
    entry["body"] = orjson.dumps(body_value, option=orjson.OPT_SORT_KEYS).decode()
    return edited(document, n, entry=entry)


async def test_tampered_recordings_fail(
    world: World,
    recorded: tuple[str, list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    jti, ids = recorded
    headers = await auditor(world)
    files = await write_ledger(world, tmp_path, headers)
    listing = await recordings_of(world, jti, headers)
    first = listing["items"][0]
    changed_head = b64url(REQUEST_MARKER.replace(b"rm -rf", b"ls -la"))
    cases = [
        (edited(listing, 0, request_head=changed_head), "request head does not match the digest"),
        (edited(listing, 1, response_head=first["response_head"]), "response head does not match"),
        (edited(listing, 0, request_head="not base64!"), "request head is not base64url"),
        (edited(listing, 0, request_head=None), "request head is missing within retention"),
        (edited(listing, 2, request_head=first["request_head"]), "head its entry does not record"),
        (edited_entry(listing, 0, status=500), "is not the ledger's entry at leaf"),
        (edited(listing, 0, call_id=ids[1]), "is not the gateway_call of this call"),
        (edited(listing, 0, unreadable=["request_head"]), "could not open request_head"),
    ]
    for document, message in cases:
        assert await verify(files, document) == 1, message
        err = capsys.readouterr().err
        assert err.startswith("FAILED at index ") and message in err, (message, err)
    moved = dict(first["entry"])
    moved["leaf_index"] = first["entry"]["leaf_index"] - 1
    assert await verify(files, edited(listing, 0, entry=moved)) == 1
    assert "is not the ledger's entry at leaf" in capsys.readouterr().err


async def test_a_recording_beyond_the_signed_ledger_fails(
    world: World,
    recorded: tuple[str, list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    jti, _ = recorded
    headers = await auditor(world)
    files = await write_ledger(world, tmp_path, headers)
    later = await submit(world, call(jti))
    assert later.status_code == 201, later.text
    unsequenced = await recordings_of(world, jti, headers)
    assert await verify(files, unsequenced) == 1
    assert "it is not in the ledger" in capsys.readouterr().err
    # Sequenced and signed, but the checkpoints presented stop before it: an unsigned
    # tail vouches for nothing, even an allowed one.
    assert world.services.sequencer is not None
    await world.services.sequencer.run_once()
    export = await fetch_export(world.client, headers)
    files.export.write_text("\n".join(export) + "\n")
    sequenced = await recordings_of(world, jti, headers)
    assert await verify(files, sequenced, "--allow-unsigned-tail") == 1
    assert "is not covered by a verified checkpoint" in capsys.readouterr().err


async def test_past_retention_the_entry_alone_verifies(
    world: World,
    recorded: tuple[str, list[str]],
    tmp_path: Path,
    clock: FrozenClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    jti, _ = recorded
    headers = await auditor(world)
    files = await write_ledger(world, tmp_path, headers)
    clock.advance(31 * 86400)
    listing = await recordings_of(world, jti, headers)
    assert all(item["retained"] is False for item in listing["items"])
    assert await verify(files, listing) == 0
    assert "3 recordings verified (3 past retention: entry only)" in capsys.readouterr().out


async def test_unreadable_recordings_are_exit_2(
    world: World, recorded: tuple[str, list[str]], tmp_path: Path
) -> None:
    files = await write_ledger(world, tmp_path, await auditor(world))
    for document in ([1], {"items": [{"call_id": "c"}]}, {"call_id": 5, "entry": {"body": ""}}):
        assert await verify(files, document) == 2
    files.recordings.write_text("not json {")
    assert await asyncio.to_thread(main, files.args()) == 2
    assert await asyncio.to_thread(main, files.args(tmp_path / "missing.json")) == 2


def test_a_whole_head_must_be_the_body() -> None:
    """A head that is not truncated is the body: its digest is the body's (the schema
    holds this for every verified entry; the verifier checks it anyway)."""
    head = b"abc"
    recorded = CallBodyV1.model_construct(
        digest=digest(b"abd"), size=3, head_digest=digest(head), head_size=3, truncated=False
    )
    recording = Recording(1, "cal_1", 0, "{}", True, (), b64url(head), None)
    with pytest.raises(VerificationFailed, match="not truncated but is not the body"):
        RecordingsCheck([recording])._head(recording, "request", b64url(head), recorded)
