"""``authority ledger verify`` on a real export: it catches each tampering and names the index."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from authority.cli import main
from authority.context import Services
from authority.ledger.checkpoints import (
    CHECKPOINT_TYP,
    checkpoint_claims,
    decode_hash,
    encode_hash,
    ledger_keyset,
)
from authority.ledger.cli import verify_sources
from authority.ledger.merkle import leaf_hash
from authority.ledger.schemas import LATEST, build_body, canonical_json
from authority.ledger.verify import State, VerificationFailed, verify_export
from authority.storage.sql.ledger import append
from tests.unit.ledger.records import grant

from .conftest import StaticSigner
from .ledgerdata import auditor_headers, fetch_checkpoints, fetch_export, populate

EVERY = 3  # a checkpoint every 3 entries


@dataclass
class Ledger:
    services: Services
    lines: list[str]
    checkpoints: list[object]
    jwks: dict[str, object]

    @property
    def size(self) -> int:
        return len(self.lines)


@pytest.fixture
async def ledger(services: Services, client: httpx.AsyncClient) -> Ledger:
    await populate(services, count=30, every=EVERY)
    headers = await auditor_headers(services)
    lines = await fetch_export(client, headers)
    checkpoints = await fetch_checkpoints(client, headers)
    jwks = (await client.get("/v1/ledger/keys")).json()
    return Ledger(services, lines, checkpoints, jwks)


async def _lines(lines: list[str]) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def run(
    ledger: Ledger,
    lines: list[str] | None = None,
    checkpoints: list[object] | None = None,
    state: State | None = None,
) -> None:
    await verify_export(
        _lines(ledger.lines if lines is None else lines),
        ledger.checkpoints if checkpoints is None else checkpoints,
        ledger_keyset(ledger.jwks),
        state=state,
    )


async def expect_failure(ledger: Ledger, index: int, match: str, **kwargs: object) -> str:
    with pytest.raises(VerificationFailed) as caught:
        await run(ledger, **kwargs)  # type: ignore[arg-type]
    assert caught.value.index == index, str(caught.value)
    assert match in caught.value.message, str(caught.value)
    return caught.value.message


def edit(line: str, **changes: object) -> str:
    value = orjson.loads(line)
    body = orjson.loads(value["body"])
    body.update(changes)
    value["body"] = canonical_json(body)
    return orjson.dumps(value).decode()


async def test_the_real_export_verifies(ledger: Ledger) -> None:
    await run(ledger)
    assert ledger.size > 30


async def test_changed_entry(ledger: Ledger) -> None:
    lines = list(ledger.lines)
    k = 17
    lines[k] = edit(lines[k], agent_id="agt_innocent")
    await expect_failure(ledger, k, "does not hash to its leaf hash", lines=lines)


async def test_changed_entry_with_its_leaf_hash_rewritten(ledger: Ledger) -> None:
    """Only a signed root can tell: the first index after the last good checkpoint."""
    lines = list(ledger.lines)
    k = 17
    changed = orjson.loads(edit(lines[k], agent_id="agt_innocent"))
    changed["leaf_hash"] = encode_hash(leaf_hash(changed["body"].encode()))
    lines[k] = orjson.dumps(changed).decode()
    sizes = [c["tree_size"] for c in ledger.checkpoints if isinstance(c, dict)]
    last_good = max(s for s in sizes if s <= k)
    message = await expect_failure(ledger, last_good, "do not match checkpoint", lines=lines)
    assert f"from index {last_good} to" in message


async def test_entry_that_breaks_its_schema(ledger: Ledger) -> None:
    lines = list(ledger.lines)
    k = 9
    changed = orjson.loads(lines[k])
    body = orjson.loads(changed["body"])
    body["unexpected"] = True
    changed["body"] = canonical_json(body)
    changed["leaf_hash"] = encode_hash(leaf_hash(changed["body"].encode()))
    lines[k] = orjson.dumps(changed).decode()
    await expect_failure(ledger, k, "schema", lines=lines)


async def test_deleted_entry(ledger: Ledger) -> None:
    lines = list(ledger.lines)
    del lines[12]
    await expect_failure(ledger, 12, "expected leaf 12, found 13", lines=lines)


async def test_swapped_entries(ledger: Ledger) -> None:
    lines = list(ledger.lines)
    lines[20], lines[21] = lines[21], lines[20]
    await expect_failure(ledger, 20, "out of order", lines=lines)


async def test_swapped_entries_renumbered(ledger: Ledger) -> None:
    lines = list(ledger.lines)
    a, b = orjson.loads(lines[20]), orjson.loads(lines[22])
    a["leaf_index"], b["leaf_index"] = 22, 20
    lines[20], lines[22] = orjson.dumps(b).decode(), orjson.dumps(a).decode()
    last_good = 18  # checkpoints every 3 entries, plus the keyring's first 2
    with pytest.raises(VerificationFailed) as caught:
        await run(ledger, lines=lines)
    assert caught.value.index <= 20 and caught.value.index >= last_good


async def test_inserted_entry(ledger: Ledger) -> None:
    lines = list(ledger.lines)
    lines.insert(8, lines[3])
    await expect_failure(ledger, 8, "found 3", lines=lines)


async def test_truncated_tail(ledger: Ledger) -> None:
    lines = ledger.lines[:25]
    await expect_failure(ledger, 25, "truncated", lines=lines)


async def test_forked_checkpoint(ledger: Ledger) -> None:
    """Same size, different root, signed with the real ledger key."""
    honest = ledger.checkpoints[4]
    assert isinstance(honest, dict)
    size = honest["tree_size"]
    forged_root = leaf_hash(b"another history")
    signed = ledger.services.keyring.sign(
        checkpoint_claims(ledger.services.settings.issuer, size, forged_root, 1),
        typ=CHECKPOINT_TYP,
        purpose="ledger",
    )
    forged = {"tree_size": size, "signed": signed}
    message = await expect_failure(
        ledger, size - 1, "forked", checkpoints=[*ledger.checkpoints, forged]
    )
    assert f"tree size {size}" in message
    # Alone, the forged one does not match the entries.
    await expect_failure(
        ledger,
        ledger.checkpoints[3]["tree_size"],  # type: ignore[index]
        "do not match",
        checkpoints=[c for c in ledger.checkpoints if c is not honest] + [forged],
    )


async def test_checkpoint_signed_by_an_unknown_key(ledger: Ledger) -> None:
    honest = ledger.checkpoints[2]
    assert isinstance(honest, dict)
    size = honest["tree_size"]
    stranger = StaticSigner()
    signed = stranger.sign(
        checkpoint_claims("http://127.0.0.1:8400", size, decode_hash(honest["root_hash"]), 1),
        typ=CHECKPOINT_TYP,
        purpose="ledger",
    )
    await expect_failure(
        ledger,
        size - 1,
        "unknown key",
        checkpoints=[*ledger.checkpoints, {"tree_size": size, "signed": signed}],
    )


async def test_token_key_signature_is_not_a_checkpoint(ledger: Ledger) -> None:
    honest = ledger.checkpoints[1]
    assert isinstance(honest, dict)
    signed = ledger.services.keyring.sign(
        checkpoint_claims("x", honest["tree_size"], decode_hash(honest["root_hash"]), 1),
        typ=CHECKPOINT_TYP,
        purpose="token",
    )
    await expect_failure(ledger, honest["tree_size"] - 1, "unknown key", checkpoints=[signed])


async def test_no_checkpoint_no_trust(ledger: Ledger) -> None:
    await expect_failure(ledger, 0, "no checkpoint", checkpoints=[])


async def test_state_catches_rewritten_history_and_rollback(ledger: Ledger) -> None:
    last = ledger.checkpoints[-1]
    assert isinstance(last, dict)
    good = State(last["tree_size"], decode_hash(last["root_hash"]))
    await run(ledger, state=good)
    await expect_failure(
        ledger, 0, "history rewritten", state=State(10, leaf_hash(b"another tree"))
    )
    await expect_failure(
        ledger,
        last["tree_size"],
        "rolled back",
        state=State(last["tree_size"] + 5, leaf_hash(b"a longer tree")),
    )


async def test_verify_from_the_api_and_the_cli(
    ledger: Ledger, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    headers = await auditor_headers(ledger.services)
    client.headers.update(headers)
    state = tmp_path / "state.json"
    base = "http://127.0.0.1:8400"
    line = await verify_sources(
        export=f"{base}/v1/ledger/export",
        checkpoints=f"{base}/v1/ledger/checkpoints",
        keys=None,
        state_path=state,
        client=client,
    )
    assert line.startswith(f"ok: {ledger.size} entries")
    assert State.load(state) is not None

    export = tmp_path / "export.jsonl"
    export.write_text("\n".join(ledger.lines) + "\n")
    checkpoints = tmp_path / "checkpoints.json"
    checkpoints.write_bytes(orjson.dumps({"items": ledger.checkpoints}))
    keys = tmp_path / "keys.json"
    keys.write_bytes(orjson.dumps(ledger.jwks))
    args = ["ledger", "verify", "--export", str(export), "--checkpoints", str(checkpoints)]
    args += ["--keys", str(keys), "--state", str(state)]
    assert await asyncio.to_thread(main, args) == 0

    lines = list(ledger.lines)
    lines[5] = edit(lines[5], reason="rewritten")
    export.write_text("\n".join(lines) + "\n")
    assert await asyncio.to_thread(main, args) == 1
    missing = [*args[:3], str(tmp_path / "nope.jsonl"), *args[4:]]
    assert await asyncio.to_thread(main, missing) == 2  # an input that cannot be read
    no_keys = ["ledger", "verify", "--export", str(export), "--checkpoints", str(checkpoints)]
    assert await asyncio.to_thread(main, no_keys) == 2


# --- only what a checkpoint signs is verified ---------------------------------------------
def forged_line(index: int, kind: str, record: dict[str, Any]) -> str:
    """A well-formed export line, with a leaf hash that matches its body: all it lacks is
    a checkpoint that signs it."""
    body = build_body(kind, LATEST[kind], 1_800_000_000, record)
    return orjson.dumps(
        {"leaf_index": index, "leaf_hash": encode_hash(leaf_hash(body.encode())), "body": body}
    ).decode()


def forged_tail(ledger: Ledger) -> list[str]:
    """The honest export, and after it a forged grant and a forged revocation."""
    issued = grant(999, "issued")
    revoked = {
        "delegation_id": "dlg_honest",
        "owner_id": "own_1",
        "agent_id": "agt_1",
        "actor": "key_forger",
    }
    return [
        *ledger.lines,
        forged_line(ledger.size, "grant", issued),
        forged_line(ledger.size + 1, "delegation_revoked", revoked),
    ]


async def test_an_unsigned_tail_fails(ledger: Ledger) -> None:
    message = await expect_failure(ledger, ledger.size, "unsigned tail", lines=forged_tail(ledger))
    assert "2 entries after the newest checkpoint" in message
    assert "delegation_revoked 1, grant 1" in message


async def test_an_allowed_unsigned_tail_is_reported_unverified(ledger: Ledger) -> None:
    report = await verify_export(
        _lines(forged_tail(ledger)),
        ledger.checkpoints,
        ledger_keyset(ledger.jwks),
        allow_unsigned_tail=True,
    )
    assert report.entries == ledger.size  # only what the newest checkpoint signs
    assert report.unverified == 2
    assert report.unverified_kinds == {"grant": 1, "delegation_revoked": 1}
    assert sum(report.kinds.values()) == ledger.size


async def test_entries_after_an_older_checkpoint_are_not_verified(ledger: Ledger) -> None:
    """Honest entries too: without the checkpoint that signs them, they are a tail."""
    older = ledger.checkpoints[:-2]
    last = older[-1]
    assert isinstance(last, dict)
    await expect_failure(ledger, last["tree_size"], "unsigned tail", checkpoints=older)


def write_inputs(ledger: Ledger, tmp_path: Path, lines: list[bytes]) -> list[str]:
    export = tmp_path / "export.jsonl"
    export.write_bytes(b"\n".join(lines) + b"\n")
    checkpoints = tmp_path / "checkpoints.json"
    checkpoints.write_bytes(orjson.dumps(ledger.checkpoints))
    keys = tmp_path / "keys.json"
    keys.write_bytes(orjson.dumps(ledger.jwks))
    args = ["ledger", "verify", "--export", str(export), "--checkpoints", str(checkpoints)]
    return [*args, "--keys", str(keys)]


async def test_the_cli_refuses_an_unsigned_tail_unless_told(
    ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = write_inputs(ledger, tmp_path, [line.encode() for line in forged_tail(ledger)])
    assert await asyncio.to_thread(main, args) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert f"FAILED at index {ledger.size}: unsigned tail: 2 entries" in err

    assert await asyncio.to_thread(main, [*args, "--allow-unsigned-tail"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"ok: {ledger.size} entries verified")
    assert f"UNVERIFIED: 2 entries after tree size {ledger.size}" in out


async def test_the_cli_verifies_nothing_without_a_checkpoint(
    ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = write_inputs(ledger, tmp_path, [line.encode() for line in ledger.lines])
    (tmp_path / "checkpoints.json").write_bytes(b"[]")
    for extra in ([], ["--allow-unsigned-tail"]):
        assert await asyncio.to_thread(main, [*args, *extra]) == 1
        assert "no checkpoint" in capsys.readouterr().err


def _retyped(line: str, **members: object) -> bytes:
    value = orjson.loads(line)
    value.update(members)
    return orjson.dumps(value)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda line: b"\xff\xfe" + line.encode(), id="not-utf8"),
        pytest.param(lambda line: line.encode()[:-1] + b"\xc3", id="truncated-utf8"),
        pytest.param(lambda line: line.encode()[:-2], id="bad-json"),
        pytest.param(lambda line: b"[1, 2]", id="not-an-object"),
        pytest.param(lambda line: _retyped(line, leaf_index="7"), id="index-string"),
        pytest.param(lambda line: _retyped(line, leaf_index=7.0), id="index-float"),
        pytest.param(lambda line: _retyped(line, leaf_index=True), id="index-bool"),
        pytest.param(lambda line: _retyped(line, leaf_hash=7), id="hash-number"),
        pytest.param(lambda line: _retyped(line, body={"kind": "grant"}), id="body-object"),
        pytest.param(lambda line: _retyped(line, body=None), id="body-null"),
    ],
)
async def test_a_malformed_line_fails_naming_its_line(
    ledger: Ledger,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: Callable[[str], bytes],
) -> None:
    k = 7
    lines = [line.encode() for line in ledger.lines]
    lines[k] = damage(ledger.lines[k])
    args = write_inputs(ledger, tmp_path, lines)
    assert await asyncio.to_thread(main, args) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"FAILED at index {k} (line {k + 1}): "), err
    assert "Traceback" not in err


async def test_a_blank_line_does_not_shift_the_line_numbers(
    ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [line.encode() for line in ledger.lines]
    lines[7] = b"\xff"
    lines.insert(3, b"")
    assert await asyncio.to_thread(main, write_inputs(ledger, tmp_path, lines)) == 1
    assert capsys.readouterr().err.startswith(
        "FAILED at index 7 (line 9): the line is not valid UTF-8"
    )


async def test_an_export_url_is_read_up_to_the_newest_checkpoint_fetched(
    ledger: Ledger, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """The server signs more while the auditor reads: the export stops at what was
    fetched, so an honest ledger verifies in full rather than with an unsigned tail."""
    client.headers.update(await auditor_headers(ledger.services))
    older = ledger.checkpoints[:-2]
    last = older[-1]
    assert isinstance(last, dict)
    checkpoints = tmp_path / "checkpoints.json"
    checkpoints.write_bytes(orjson.dumps(older))
    line = await verify_sources(
        export="http://127.0.0.1:8400/v1/ledger/export",
        checkpoints=str(checkpoints),
        keys="http://127.0.0.1:8400/v1/ledger/keys",
        state_path=None,
        client=client,
    )
    assert line.startswith(f"ok: {last['tree_size']} entries verified")
    assert "UNVERIFIED" not in line


async def test_an_honest_export_from_the_database_verifies_in_full(
    ledger: Ledger,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``authority ledger export`` stops at the newest checkpoint: entries appended (and
    not yet signed) meanwhile are left for the next export, not handed over unsigned."""
    settings = ledger.services.settings
    values = {
        "data_dir": str(settings.data_dir),
        "secret_key": settings.secret_key,
        "database_url": settings.database_url,
        "auto_migrate": "false",
    }
    for name, value in values.items():
        if value is not None:
            monkeypatch.setenv(f"AUTHORITY_{name.upper()}", str(value))
    async with ledger.services.engine.begin() as conn:
        await append(
            conn, kind="grant", version=1, created_at=ledger.services.now(), record=grant(500)
        )
    export, checkpoints, keys = (tmp_path / name for name in ("e.jsonl", "c.jsonl", "k.json"))
    command = ["ledger", "export", "--out", str(export), "--checkpoints", str(checkpoints)]
    assert await asyncio.to_thread(main, [*command, "--keys", str(keys)]) == 0
    verify = ["ledger", "verify", "--export", str(export), "--checkpoints", str(checkpoints)]
    assert await asyncio.to_thread(main, [*verify, "--keys", str(keys)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ok: {ledger.size} entries verified"), out
    assert "UNVERIFIED" not in out


async def test_checkpoints_are_listed_up_to_a_tree_size(ledger: Ledger) -> None:
    sizes = [c["tree_size"] for c in ledger.checkpoints if isinstance(c, dict)]
    bound = sizes[len(sizes) // 2]
    reader = ledger.services.ledger_reader
    rows = await reader.checkpoints(after=None, limit=len(sizes), up_to=bound)
    assert [row.tree_size for row in rows] == [s for s in sizes if s <= bound]
