"""``authority ledger``: export the ledger, and verify an export offline (``verify``).

``verify`` reads each input from a file or from the authority's ledger API (an http(s)
URL, with the auditor's API key from ``--api-key-file``). It prints one line and exits 0
when everything verifies, 1 naming the first bad index when something does not, 2 when
an input cannot be read at all, and 3 when a URL cannot be reached (or answers 5xx).
With ``--recordings`` it also checks call recordings (the auditor API's JSON of one or
more) against their entries (``verify_recordings``).

Only entries a signed checkpoint covers count as verified. Entries after the newest
checkpoint (an unsigned tail) fail the run (exit 1); with ``--allow-unsigned-tail`` the
run exits 0 but says how many entries are unverified. An export URL is read up to the
newest checkpoint fetched (``end=``), so an honest export read from the API ends where
a checkpoint signs it, even while new entries are being appended.

``export`` writes, from this instance's own database, the files ``verify`` takes: the
entries as JSON Lines up to the newest checkpoint's tree size, the checkpoints up to that
size, and the ledger's public keys; so an honest export verifies in full.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import orjson

from authority.cli_api import printable, shown_url

from .checkpoints import encode_hash, ledger_keyset
from .store import export_line
from .verify import (
    State,
    VerificationFailed,
    checkpoint_items,
    describe_kinds,
    prepare_checkpoints,
    verify_lines,
)
from .verify_recordings import RecordingsCheck, UnreadableRecordings, parse_recordings

if TYPE_CHECKING:
    from authority.settings import Settings
    from authority.storage.ledger_reader import LedgerReader

#: Opens the ledger's read port for one export (``authority.app.ledger_reader``, passed in
#: by ``authority.cli``, so that this module never imports what wires it).
OpenLedger = Callable[["Settings"], AbstractAsyncContextManager["LedgerReader"]]

KEYS_PATH = "/v1/ledger/keys"
TIMEOUT = httpx.Timeout(30.0, read=300.0)
MAX_CHECKPOINT_PAGES = 1_000_000


class InputError(Exception):
    """An input that cannot be read: exit 2, nothing was verified."""


class Unreachable(InputError):
    """An input URL that cannot be reached, or answers 5xx: exit 3, nothing was verified."""


def _is_url(source: str) -> bool:
    return source.startswith(("https://", "http://"))


def _origin_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _export_up_to(url: str, tree_size: int) -> str:
    """The export URL limited to ``tree_size`` entries, unless it already names an end.

    The checkpoints are fetched first; an export read afterwards could hold entries that
    were sequenced meanwhile and that no checkpoint fetched signs (an unsigned tail).
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "end" for name, _ in query):
        return url
    query.append(("end", str(tree_size)))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


async def _get_json(client: httpx.AsyncClient, url: str, **params: str) -> Any:
    try:
        response = await client.get(url, params=params or None)
    except httpx.HTTPError as exc:
        raise Unreachable(f"cannot reach {shown_url(url)}: {type(exc).__name__}") from None
    if response.status_code >= 500:
        raise Unreachable(f"{shown_url(url)}: HTTP {response.status_code}")
    if response.status_code != 200:
        # The server's words, escaped: they reach the auditor's terminal.
        said = printable(response.text[:200])
        raise InputError(f"{shown_url(url)}: HTTP {response.status_code} {said}")
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise InputError(f"{url}: the answer is not JSON") from None


def _read_json_file(path: str) -> Any:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror}") from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:  # JSON Lines: one checkpoint per line
        return [orjson.loads(line) for line in data.splitlines() if line.strip()]
    except orjson.JSONDecodeError:
        raise InputError(f"{path}: neither JSON nor JSON Lines") from None


async def load_checkpoints(
    source: str, client: httpx.AsyncClient, state: State | None
) -> list[Any]:
    if not _is_url(source):
        return checkpoint_items(_read_json_file(source))
    items: list[Any] = []
    params: dict[str, str] = {}
    if state is not None and state.tree_size > 0:
        # Only the checkpoints from the one verified last time on (it is included).
        params["cursor"] = str(state.tree_size - 1)
    for _ in range(MAX_CHECKPOINT_PAGES):
        page = await _get_json(client, source, **params)
        items.extend(checkpoint_items(page))
        cursor = page.get("next_cursor") if isinstance(page, dict) else None
        if not isinstance(cursor, str):
            return items
        params["cursor"] = cursor
    raise InputError(f"{source}: too many pages")


async def load_keys(source: str | None, checkpoints: str, client: httpx.AsyncClient) -> Any:
    if source is None:
        if not _is_url(checkpoints):
            raise InputError("--keys is needed when the checkpoints come from a file")
        source = _origin_path(checkpoints, KEYS_PATH)
        print(
            f"warning: trusting the ledger keys served by the authority itself ({source}); "
            "pin them with --keys",
            file=sys.stderr,
        )
    document = await _get_json(client, source) if _is_url(source) else _read_json_file(source)
    try:
        return ledger_keyset(document)
    except ValueError as exc:
        raise InputError(f"{source}: {exc}") from None


async def export_lines(source: str, client: httpx.AsyncClient) -> AsyncIterator[bytes | str]:
    if not _is_url(source):
        try:
            with open(source, "rb") as lines:  # noqa: ASYNC230 (a local file, read in order)
                for line in lines:
                    yield line
        except OSError as exc:
            raise InputError(f"{source}: {exc.strerror}") from None
        return
    try:
        async with client.stream("GET", source) as response:
            if response.status_code != 200:
                await response.aread()
                failed = Unreachable if response.status_code >= 500 else InputError
                raise failed(f"{source}: HTTP {response.status_code}")
            async for text in response.aiter_lines():
                yield text
    except httpx.HTTPError as exc:
        raise Unreachable(f"cannot reach {source}: {type(exc).__name__}") from None


async def load_recordings(source: str | None, client: httpx.AsyncClient) -> RecordingsCheck | None:
    if source is None:
        return None
    document = await _get_json(client, source) if _is_url(source) else _read_json_file(source)
    try:
        return RecordingsCheck(parse_recordings(document))
    except UnreadableRecordings as exc:
        raise InputError(f"{source}: {exc}") from None


async def verify_sources(
    *,
    export: str,
    checkpoints: str,
    keys: str | None,
    state_path: Path | None,
    client: httpx.AsyncClient,
    allow_unsigned_tail: bool = False,
    recordings: str | None = None,
) -> str:
    """Verify; return the success line, or raise ``VerificationFailed`` / ``InputError``."""
    try:
        state = State.load(state_path) if state_path is not None else None
    except ValueError as exc:
        raise InputError(str(exc)) from None
    calls = await load_recordings(recordings, client)
    keyset = await load_keys(keys, checkpoints, client)
    items = await load_checkpoints(checkpoints, client, state)
    points, prepared = prepare_checkpoints(items, keyset)
    if _is_url(export) and prepared.latest is not None:
        export = _export_up_to(export, prepared.latest.tree_size)
    report = await verify_lines(
        export_lines(export, client),
        points,
        prepared,
        state=state,
        allow_unsigned_tail=allow_unsigned_tail,
        observe=None if calls is None else calls.observe,
    )
    checked = None if calls is None else calls.finish(report)
    latest = report.latest
    if latest is None:  # verify_lines refuses an export with no valid checkpoint
        raise VerificationFailed(0, "no valid checkpoint")
    if state_path is not None:
        State(latest.tree_size, latest.root_hash).save(state_path)
    summary = (
        f"ok: {report.entries} entries verified against {report.checkpoints} checkpoints; "
        f"tree size {latest.tree_size}, root {encode_hash(latest.root_hash)}, "
        f"signed by {latest.kid} at {latest.iat}"
    )
    if checked is not None:
        summary += f"; {checked[0]} recordings verified ({checked[1]} past retention: entry only)"
    if report.unverified:
        summary += (
            f"; UNVERIFIED: {report.unverified} entries after tree size {report.entries} "
            f"are signed by no checkpoint ({describe_kinds(report.unverified_kinds)}) "
            "and were not verified"
        )
    return summary


def _client(api_key_file: Path | None) -> httpx.AsyncClient:
    headers = {}
    if api_key_file is not None:
        try:
            key = api_key_file.read_text().strip()
        except OSError as exc:
            raise InputError(f"{api_key_file}: {exc.strerror}") from None
        headers["Authorization"] = f"Bearer {key}"
    return httpx.AsyncClient(headers=headers, timeout=TIMEOUT, follow_redirects=False)


def cmd_verify(args: argparse.Namespace) -> int:
    async def run() -> str:
        async with _client(args.api_key_file) as client:
            return await verify_sources(
                export=args.export,
                checkpoints=args.checkpoints,
                keys=args.keys,
                state_path=args.state,
                client=client,
                allow_unsigned_tail=args.allow_unsigned_tail,
                recordings=args.recordings,
            )

    try:
        summary = asyncio.run(run())
    except VerificationFailed as exc:
        where = f"index {exc.index}" if exc.line is None else f"index {exc.index} (line {exc.line})"
        if args.json:
            failed = {"ok": False, "index": exc.index, "line": exc.line, "error": exc.message}
            print(json.dumps(failed, sort_keys=True))
        print(f"FAILED at {where}: {exc.message}", file=sys.stderr)
        return 1
    except InputError as exc:
        print(f"error: {printable(str(exc))}", file=sys.stderr)
        return 3 if isinstance(exc, Unreachable) else 2
    print(json.dumps({"ok": True, "summary": summary}, sort_keys=True) if args.json else summary)
    return 0


# --- export from this instance's database -----------------------------------------------------
async def _export(args: argparse.Namespace) -> int:
    from authority.cli_local import require_database
    from authority.settings import load_settings

    overrides: dict[str, object] = {}
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    settings = load_settings(**overrides)
    require_database(settings)
    opened: AbstractAsyncContextManager[LedgerReader] = args.open_ledger(settings)
    async with opened as ledger:
        latest = await ledger.latest_checkpoint()
        size = 0 if latest is None else latest.tree_size
        if args.checkpoints is not None:
            # Up to the exported size: a checkpoint sequenced meanwhile would sign
            # entries the export does not hold.
            rows = await ledger.checkpoints(after=None, limit=size + 1, up_to=size)
            with open(args.checkpoints, "wb") as out:  # noqa: ASYNC230
                for row in rows:
                    out.write(orjson.dumps({"tree_size": row.tree_size, "signed": row.signed}))
                    out.write(b"\n")
        if args.keys is not None:
            jwks = {"keys": [orjson.loads(value) for value in await ledger.ledger_keys()]}
            data = orjson.dumps(jwks, option=orjson.OPT_INDENT_2)
            Path(args.keys).write_bytes(data)  # noqa: ASYNC240
        # A one-shot command: blocking writes to a local file are what it is for.
        out_file = sys.stdout.buffer if args.out is None else open(args.out, "wb")  # noqa: ASYNC230, SIM115
        try:
            async for entry in ledger.export(start=0, end=size):
                out_file.write(export_line(entry))
        finally:
            if args.out is not None:
                out_file.close()
    return size


def cmd_export(args: argparse.Namespace) -> int:
    if args.json and args.out is None:
        print("error: --json needs --out (stdout would hold the export)", file=sys.stderr)
        return 2
    size = asyncio.run(_export(args))
    if args.json:
        print(json.dumps({"entries": size, "out": args.out}, sort_keys=True))
    else:
        print(f"exported {size} entries (the latest checkpoint's tree size)", file=sys.stderr)
    return 0


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], *, open_ledger: OpenLedger
) -> None:
    """``open_ledger`` opens the ledger's read port for ``export`` (``authority.cli``)."""
    ledger = sub.add_parser("ledger", help="export and verify the tamper-evident ledger")
    ledger.set_defaults(open_ledger=open_ledger)
    commands = ledger.add_subparsers(dest="ledger_command", required=True)

    verify = commands.add_parser(
        "verify", help="check an export against signed checkpoints (exit 1 if it fails)"
    )
    verify.add_argument("--export", required=True, metavar="FILE|URL", help="JSON Lines export")
    verify.add_argument("--checkpoints", required=True, metavar="FILE|URL")
    verify.add_argument(
        "--keys", metavar="FILE|URL", help="JWK Set of the ledger keys (default: the server's)"
    )
    verify.add_argument(
        "--state", type=Path, metavar="FILE", help="the tree verified last time; updated"
    )
    verify.add_argument(
        "--api-key-file", type=Path, metavar="FILE", help="auditor API key, for URLs"
    )
    verify.add_argument(
        "--allow-unsigned-tail",
        action="store_true",
        help="accept entries after the newest checkpoint (reported as unverified; exit 0)",
    )
    verify.add_argument(
        "--recordings",
        metavar="FILE|URL",
        help="call recordings (the auditor API's JSON) to check against their entries",
    )
    verify.add_argument(
        "--json", action="store_true", help='one JSON object: {"ok": ..., "summary"|"error": ...}'
    )
    verify.set_defaults(func=cmd_verify)

    export = commands.add_parser("export", help="write the ledger from this instance's database")
    export.add_argument("--out", metavar="FILE", help="entries as JSON Lines (default: stdout)")
    export.add_argument("--checkpoints", metavar="FILE", help="write the checkpoints here")
    export.add_argument("--keys", metavar="FILE", help="write the ledger keys' JWK Set here")
    export.add_argument("--json", action="store_true", help='print {"entries": N, "out": FILE}')
    export.set_defaults(func=cmd_export)
