"""Offline verification of a ledger export against signed checkpoints (RFC 9162 §2.1, §4.10).

The auditor trusts nothing but the ledger's public keys. In one pass over the export, in
leaf order, the verifier checks that

* line i is leaf i (a deleted, inserted or reordered line is caught where it happens);
* its body is canonical JSON that matches the schema of its kind and version
  (``authority.ledger.schemas``, the definitions ``append`` writes with);
* its body hashes to the leaf hash the export states (an edited body is caught here);
* at every tree size a checkpoint names, the Merkle tree of the leaves so far has the
  signed root, and every checkpoint is signed by a known ledger key;
* two checkpoints never sign different roots for one size (a fork);
* the tree it verified on an earlier run (the state file: tree size and root) is still
  a prefix of this one, so history cannot be rewritten between two audits, nor rolled
  back to a shorter tree.

Only what a checkpoint signs is verified. Entries after the newest checkpoint's tree
size (an unsigned tail) could be anything, a forged grant or revocation appended to an
honest export among them: they fail the run, unless the caller accepts an unsigned tail
(``allow_unsigned_tail``), and even then they are counted as unverified, never as
verified. With no checkpoint at all, nothing verifies.

Every line that is not what an export line must be (not UTF-8, not JSON, members of the
wrong type) fails the run naming its leaf index and its line number in the export.

Checkpoints are checked when the pass reaches their tree size, so the failure reported
is the one at the lowest index. When the leaf hashes were rewritten along with the
bodies, only a signed root can tell: the failure then names the first index after the
last checkpoint that matched, the earliest entry that can be wrong.

Memory is one compact range (O(log n) hashes) plus the checkpoints' sizes and roots,
whatever the export's length.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from joserfc.jwk import KeySet

from .checkpoints import (
    InvalidCheckpoint,
    VerifiedCheckpoint,
    decode_hash,
    encode_hash,
    verify_checkpoint,
)
from .merkle import CompactRange, leaf_hash
from .schemas import MalformedEntry, parse_body

MAX_LINE_BYTES = 1 << 20


class VerificationFailed(Exception):
    """The ledger does not verify; ``index`` is the first leaf index found bad.

    ``line`` is the line number (from 1) in the export, where the failure is one line's.
    """

    def __init__(self, index: int, message: str, line: int | None = None) -> None:
        where = f"index {index}" if line is None else f"index {index} (line {line})"
        super().__init__(f"{where}: {message}")
        self.index = index
        self.message = message
        self.line = line


@dataclass(frozen=True, slots=True)
class State:
    """What an earlier run verified: a tree size and its root."""

    tree_size: int
    root_hash: bytes

    @classmethod
    def load(cls, path: Path) -> State | None:
        if not path.exists():
            return None
        try:
            value = orjson.loads(path.read_bytes())
            size = value["tree_size"]
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise ValueError("bad tree size")
            return cls(size, decode_hash(value["root_hash"]))
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"the state file {path} is unreadable: {exc}") from None

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves the old state or the new one, never half."""
        data = orjson.dumps(
            {"tree_size": self.tree_size, "root_hash": encode_hash(self.root_hash)},
            option=orjson.OPT_INDENT_2,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ledger-state-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@dataclass(frozen=True, slots=True)
class _Point:
    """One checkpoint as the pass needs it: where it came from, and what it signs."""

    position: int  # its place among the checkpoints presented, from 1
    tree_size: int
    root_hash: bytes | None  # None: the checkpoint itself did not verify
    kid: str | None
    problem: str | None = None


@dataclass
class Report:
    """What verified: ``entries`` are the leaves a signed checkpoint covers, and only those.

    ``unverified`` counts the entries after the newest checkpoint (only ever non-zero when
    an unsigned tail was allowed), ``unverified_kinds`` their kinds.
    """

    entries: int = 0
    checkpoints: int = 0
    latest: VerifiedCheckpoint | None = None
    kinds: dict[str, int] = field(default_factory=dict)
    unverified: int = 0
    unverified_kinds: dict[str, int] = field(default_factory=dict)


def describe_kinds(kinds: dict[str, int]) -> str:
    return ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))


def checkpoint_items(document: Any) -> list[Any]:
    """The checkpoints of a file or API answer: a list, ``{"items": [...]}`` or one."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict) and isinstance(document.get("items"), list):
        items: list[Any] = document["items"]
        return items
    return [document]


def _signed(item: Any) -> Any:
    return item.get("signed") if isinstance(item, dict) else item


def _claimed_size(signed: Any) -> int | None:
    """The tree size an unverifiable checkpoint claims, to place its failure."""
    try:
        payload = signed.split(".")[1]
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        size = claims["tree_size"]
        return size if isinstance(size, int) and not isinstance(size, bool) else None
    except Exception:
        return None


def prepare_checkpoints(items: Iterable[Any], keys: KeySet) -> tuple[list[_Point], Report]:
    """Verify every checkpoint's signature; keep only sizes, roots and problems."""
    points: list[_Point] = []
    report = Report()
    for position, item in enumerate(items, start=1):
        signed = _signed(item)
        try:
            checkpoint = verify_checkpoint(signed, keys)
        except InvalidCheckpoint as exc:
            size = _claimed_size(signed)
            points.append(_Point(position, size if size is not None else 0, None, None, str(exc)))
            continue
        if (
            isinstance(item, dict)
            and "tree_size" in item
            and item["tree_size"] != (checkpoint.tree_size)
        ):
            problem = "its tree_size member differs from the signed one"
            points.append(_Point(position, checkpoint.tree_size, None, checkpoint.kid, problem))
            continue
        points.append(_Point(position, checkpoint.tree_size, checkpoint.root_hash, checkpoint.kid))
        report.checkpoints += 1
        if report.latest is None or checkpoint.tree_size > report.latest.tree_size:
            report.latest = checkpoint
    points.sort(key=lambda p: (p.tree_size, p.position))
    return points, report


async def verify_export(
    lines: AsyncIterable[bytes | str],
    checkpoints: Iterable[Any],
    keys: KeySet,
    *,
    state: State | None = None,
    allow_unsigned_tail: bool = False,
) -> Report:
    """Verify an export; raise ``VerificationFailed`` naming the first bad index."""
    points, report = prepare_checkpoints(checkpoints, keys)
    return await verify_lines(
        lines, points, report, state=state, allow_unsigned_tail=allow_unsigned_tail
    )


async def verify_lines(
    lines: AsyncIterable[bytes | str],
    points: list[_Point],
    report: Report,
    *,
    state: State | None = None,
    allow_unsigned_tail: bool = False,
    observe: Callable[[int, str], None] | None = None,
) -> Report:
    """Verify an export against checkpoints from ``prepare_checkpoints``.

    ``observe`` is called with each line's leaf index and text once the line checked out
    (``verify_recordings`` picks the entries it needs from it in the same pass).
    """
    if not points:
        raise VerificationFailed(0, "no checkpoint was presented: nothing signs these entries")
    if (
        state is not None
        and report.latest is not None
        and (report.latest.tree_size < state.tree_size)
    ):
        raise VerificationFailed(
            report.latest.tree_size,
            f"rolled back: the newest checkpoint covers {report.latest.tree_size} entries, "
            f"but {state.tree_size} were verified before",
        )
    tree = CompactRange()
    next_point = 0
    last_good = 0
    # Kinds of the entries since the last checkpoint that matched: counted as verified
    # only once a checkpoint covers them.
    pending: dict[str, int] = {}

    def check(size: int) -> None:
        """Every checkpoint and the saved state at ``size``, now that the pass is there."""
        nonlocal next_point, last_good
        group: list[_Point] = []
        while next_point < len(points) and points[next_point].tree_size <= size:
            group.append(points[next_point])
            next_point += 1
        for point in group:
            if point.root_hash is None:
                raise VerificationFailed(
                    max(point.tree_size - 1, 0),
                    f"checkpoint #{point.position} (tree size {point.tree_size}) is invalid: "
                    f"{point.problem}",
                )
        root = tree.root()
        wrong = [p for p in group if p.root_hash != root]
        if wrong and len(wrong) < len(group):
            right = next(p for p in group if p.root_hash == root)
            raise VerificationFailed(
                max(size - 1, 0),
                f"forked: checkpoints #{right.position} and #{wrong[0].position} sign different "
                f"roots for tree size {size}; #{wrong[0].position} (key {wrong[0].kid!r}) does "
                "not match the entries",
            )
        if wrong:
            point = wrong[0]
            raise VerificationFailed(
                last_good,
                f"the entries do not match checkpoint #{point.position} (tree size {size}, key "
                f"{point.kid!r}): an entry from index {last_good} to {size - 1} was altered, "
                "removed or inserted",
            )
        if group:
            last_good = size
            for kind, count in pending.items():
                report.kinds[kind] = report.kinds.get(kind, 0) + count
            pending.clear()
        if state is not None and state.tree_size == size and state.root_hash != root:
            raise VerificationFailed(
                0,
                f"history rewritten: the first {size} entries are not the ones verified "
                "before (state file)",
            )

    index = 0
    line_number = 0
    async for raw in lines:
        line_number += 1
        if isinstance(raw, bytes):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise VerificationFailed(
                    index, "the line is not valid UTF-8", line_number
                ) from None
        else:
            text = raw
        if not text.strip():
            continue
        check(index)
        try:
            leaf, kind = _leaf(index, text)
        except VerificationFailed as exc:
            raise VerificationFailed(exc.index, exc.message, line_number) from None
        if observe is not None:
            observe(index, text)
        pending[kind] = pending.get(kind, 0) + 1
        tree.append(leaf)
        index += 1
    check(index)
    if next_point < len(points):
        beyond = points[next_point]
        if beyond.root_hash is None:
            check(beyond.tree_size)  # reports the invalid checkpoint itself
        raise VerificationFailed(
            index,
            f"truncated: the export ends after {index} entries, but checkpoint "
            f"#{points[-1].position} covers {points[-1].tree_size}",
        )
    if state is not None and index < state.tree_size:
        raise VerificationFailed(
            index,
            f"truncated: the export ends after {index} entries, but {state.tree_size} were "
            "verified before (state file)",
        )
    report.entries = last_good
    tail = index - last_good
    if tail:
        if not allow_unsigned_tail:
            raise VerificationFailed(
                last_good,
                f"unsigned tail: {tail} entries after the newest checkpoint (tree size "
                f"{last_good}) are signed by no checkpoint, so nothing vouches for them "
                f"({describe_kinds(pending)}); export up to a checkpoint, or pass "
                "--allow-unsigned-tail to verify the rest and report these as unverified",
            )
        report.unverified = tail
        report.unverified_kinds = dict(pending)
    return report


def _leaf(index: int, text: str) -> tuple[bytes, str]:
    """Check one export line; return its leaf hash and the entry's kind."""
    if len(text) > MAX_LINE_BYTES:
        raise VerificationFailed(index, "the line is too long")
    try:
        line = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise VerificationFailed(index, "the line is not valid JSON") from None
    if not isinstance(line, dict):
        raise VerificationFailed(index, "the line is not a JSON object")
    found = line.get("leaf_index")
    if type(found) is not int or found != index:  # not a bool, not a float
        raise VerificationFailed(
            index,
            f"expected leaf {index}, found {found!r}: an entry is missing, inserted or out "
            "of order",
        )
    body = line.get("body")
    if not isinstance(body, str):
        raise VerificationFailed(index, "the line has no body string")
    try:
        value, _ = parse_body(body)
    except MalformedEntry as exc:
        raise VerificationFailed(index, f"the entry does not match its schema: {exc}") from None
    digest = leaf_hash(body.encode())
    stated = line.get("leaf_hash")
    if stated is not None:
        try:
            matches = decode_hash(stated) == digest
        except ValueError:
            matches = False
        if not matches:
            raise VerificationFailed(
                index, "the entry's body does not hash to its leaf hash: it was altered"
            )
    return digest, str(value["kind"])
