"""What the auditor's pages read: ledger entries by filter, one entry with its proof checked.

Entries are read through the ledger's port (``storage.ledger_reader``), in ledger order.
An entry's page shows its inclusion proof *checked* here, as an auditor's own verifier
would (RFC 9162 §2.1.3.2, ``ledger.merkle.verify_inclusion``): the leaf hash recomputed
from the body, the audit path from the stored tree, the root from the newest checkpoint
whose signature is verified with the ledger's published keys
(``ledger.checkpoints.verify_checkpoint``). The console does not ask to be trusted: the
page also gives the commands that check the whole ledger offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from authority.context import Services
from authority.ledger import store
from authority.ledger.checkpoints import (
    InvalidCheckpoint,
    encode_hash,
    ledger_keyset,
    verify_checkpoint,
)
from authority.ledger.merkle import InvalidProof, leaf_hash, verify_inclusion
from authority.storage.ledger_reader import EntryFilter, SequencedEntry

#: Entries read at most to fill one page when a filter only the body can answer (the
#: reason) is set: a page may then hold fewer than asked, and says where to go on.
SCAN_LIMIT: Final = 2000


@dataclass(frozen=True, slots=True)
class Row:
    leaf_index: int
    body: dict[str, Any]
    raw: str  # verbatim, as its leaf hash covers it

    @property
    def time(self) -> int:
        return int(self.body["time"])

    @property
    def kind(self) -> str:
        return str(self.body["kind"])


@dataclass(frozen=True, slots=True)
class LedgerPage:
    rows: list[Row]
    next_cursor: int | None
    scanned: int


def _row(entry: SequencedEntry) -> Row:
    return Row(entry.leaf_index, orjson.loads(entry.body), entry.body)


async def entries(
    services: Services,
    filters: EntryFilter,
    *,
    reason: str | None,
    after: int | None,
    limit: int,
) -> LedgerPage:
    """One page of entries matching ``filters`` (columns) and ``reason`` (in the body)."""
    reader = services.ledger_reader
    if reason is None:
        found = await reader.entries(filters, after=after, limit=limit + 1)
        rows = [_row(e) for e in found[:limit]]
        more = len(found) > limit
        return LedgerPage(rows, rows[-1].leaf_index if more and rows else None, len(found))
    rows, scanned, cursor = [], 0, after
    while len(rows) < limit and scanned < SCAN_LIMIT:
        batch = await reader.entries(filters, after=cursor, limit=min(500, SCAN_LIMIT - scanned))
        if not batch:
            return LedgerPage(rows, None, scanned)
        for entry in batch:
            scanned += 1
            cursor = entry.leaf_index
            row = _row(entry)
            if row.body.get("reason") == reason:
                rows.append(row)
                if len(rows) == limit:
                    break
    return LedgerPage(rows, cursor, scanned)


async def entry(services: Services, leaf_index: int) -> Row | None:
    found = await services.ledger_reader.entries(
        EntryFilter(), after=leaf_index - 1 if leaf_index > 0 else None, limit=1
    )
    if not found or found[0].leaf_index != leaf_index:
        return None
    return _row(found[0])


@dataclass(frozen=True, slots=True)
class Proof:
    """The outcome of checking one entry's inclusion, for the page."""

    verified: bool
    message: str
    tree_size: int | None = None
    root_hash: str | None = None
    kid: str | None = None
    checkpoint_time: int | None = None
    leaf_hash: str | None = None
    path: tuple[str, ...] = ()


async def check_inclusion(services: Services, leaf_index: int, body: str) -> Proof:
    """Verify that the entry at ``leaf_index`` with ``body`` is in the signed tree."""
    reader = services.ledger_reader
    checkpoint = await reader.latest_checkpoint()
    if checkpoint is None or checkpoint.tree_size <= leaf_index:
        return Proof(False, "Not in a signed checkpoint yet: the next one will cover it.")
    try:
        signed = verify_checkpoint(
            checkpoint.signed, ledger_keyset(services.keyring.jwks(purpose="ledger"))
        )
    except InvalidCheckpoint:
        return Proof(False, "The newest checkpoint's signature does not verify.")
    if signed.tree_size != checkpoint.tree_size or signed.root_hash != checkpoint.root_hash:
        return Proof(False, "The newest checkpoint does not sign the tree it names.")
    leaf = leaf_hash(body.encode())
    try:
        proof = await store.inclusion_proof(reader, leaf_index, signed.tree_size)
        if proof.leaf_hash != leaf:
            raise InvalidProof("the stored leaf is not this entry's hash")
        verify_inclusion(leaf, leaf_index, signed.tree_size, proof.path, signed.root_hash)
    except (InvalidProof, LookupError, store.NoSuchTreeSize):
        return Proof(
            False, "The inclusion proof does not verify: this entry is not in the signed tree."
        )
    return Proof(
        True,
        "Verified: this entry is in the tree the newest checkpoint signs.",
        tree_size=signed.tree_size,
        root_hash=encode_hash(signed.root_hash),
        kid=signed.kid,
        checkpoint_time=signed.iat,
        leaf_hash=encode_hash(leaf),
        path=tuple(encode_hash(h) for h in proof.path),
    )
