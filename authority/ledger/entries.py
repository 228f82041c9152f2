"""Ledger entries: versioned, canonical JSON records appended with the effect they record.

An entry is appended inside the transaction of what it records (by the storage port that
writes the grant, the revocation or the status change): both commit, or neither does.
Here is the entry as a value and its row; the insert is ``storage.sql.ledger``.
"""

from __future__ import annotations

from typing import Any

from .schemas import MalformedEntry, build_body, canonical_json

__all__ = ["Entry", "MalformedEntry", "canonical_json", "entry_row"]


def entry_row(
    *, kind: str, version: int, created_at: int, record: dict[str, Any]
) -> dict[str, Any]:
    """The ``ledger_entries`` row (``storage.sql.ledger.COLUMNS``) of an entry of body ``record``.

    The record is validated against the schema of ``kind`` and ``version``
    (``authority.ledger.schemas``): ``MalformedEntry`` (a ``ValueError``) means a
    programming error in the caller, and nothing may be written with it.
    """
    body = build_body(kind, version, created_at, record)
    decision = record.get("decision")
    return {
        "created_at": created_at,
        "kind": kind,
        "version": version,
        "body": body,
        "agent_id": record.get("agent_id"),
        "owner_id": record.get("owner_id"),
        "delegation_id": record.get("delegation_id"),
        "tool": record.get("tool"),
        "decision": decision if isinstance(decision, str) else None,
    }


#: One entry for ``append_many``: (kind, version, created_at, record).
Entry = tuple[str, int, int, dict[str, Any]]
