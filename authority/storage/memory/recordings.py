"""The recording port (``storage.recordings``) on ``Tables``."""

from __future__ import annotations

from typing import Any

from authority.ledger.entries import Entry, entry_row
from authority.storage.recordings import (
    NewRecording,
    Recorded,
    StoredRecording,
    SubmissionFacts,
)

from . import Tables
from . import column as _get


class MemoryRecordingStore:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def lookup(self, client_id: str, jti: str) -> SubmissionFacts:
        server = self._tables.resource_servers.get(client_id)
        grant = self._tables.grant_by("jti", jti)
        return SubmissionFacts(
            rs_id=_get(server, "id"),
            rs_audience=_get(server, "audience"),
            rs_auth_method=_get(server, "auth_method"),
            rs_secret_hash=_get(server, "secret_hash"),
            rs_jwks=_get(server, "jwks"),
            rs_status=_get(server, "status"),
            grant_id=_get(grant, "id"),
            decision=_get(grant, "decision"),
            grant_audience=_get(grant, "audience"),
            agent_id=_get(grant, "agent_id"),
            owner_id=_get(grant, "owner_id"),
            delegation_id=_get(grant, "delegation_id"),
            tool=_get(grant, "tool"),
            resource=_get(grant, "resource"),
            action=_get(grant, "action"),
        )

    async def record(self, recording: NewRecording, entry: Entry) -> Recorded:
        # No await from the test to the writes: atomic on the event loop.
        tables = self._tables
        kind, version, created_at, body = entry
        row = entry_row(kind=kind, version=version, created_at=created_at, record=body)
        for earlier in tables.call_recordings.values():
            if (earlier["server_id"], earlier["submission_id"]) == (
                recording.server_id,
                recording.submission_id,
            ):
                return Recorded(earlier["id"], created=False)
        tables.ledger_entries.append(row)
        tables.call_recordings[recording.id] = {
            "id": recording.id,
            "created_at": recording.created_at,
            "server_id": recording.server_id,
            "submission_id": recording.submission_id,
            "entry_id": len(tables.ledger_entries),
            "grant_id": recording.grant_id,
            "jti": recording.jti,
            "request_head": recording.request_head,
            "response_head": recording.response_head,
            "swept_at": None,
        }
        return Recorded(recording.id, created=True)

    def _stored(self, row: dict[str, Any]) -> StoredRecording:
        entry = self._tables.ledger_entries[row["entry_id"] - 1]
        return StoredRecording(
            id=row["id"],
            created_at=row["created_at"],
            server_id=row["server_id"],
            grant_id=row["grant_id"],
            jti=row["jti"],
            request_head=row["request_head"],
            response_head=row["response_head"],
            swept_at=row["swept_at"],
            entry_body=entry["body"],
            # Memory has no sequencer: no entry has a leaf.
            leaf_index=None,
            leaf_hash=None,
        )

    async def get(self, call_id: str) -> StoredRecording | None:
        row = self._tables.call_recordings.get(call_id)
        return None if row is None else self._stored(row)

    async def of_grant(
        self,
        *,
        grant_id: str | None = None,
        jti: str | None = None,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[StoredRecording]:
        column, value = ("grant_id", grant_id) if jti is None else ("jti", jti)
        rows = sorted(
            (
                row
                for row in self._tables.call_recordings.values()
                if row[column] == value
                and (after is None or (row["created_at"], row["id"]) > after)
            ),
            key=lambda row: (row["created_at"], row["id"]),
        )
        return [self._stored(row) for row in rows[:limit]]

    async def sweep(self, before: int, *, now: int, limit: int) -> int:
        due = sorted(
            (
                row
                for row in self._tables.call_recordings.values()
                if row["swept_at"] is None and row["created_at"] < before
            ),
            key=lambda row: row["created_at"],
        )[:limit]
        for row in due:
            row.update(request_head=None, response_head=None, swept_at=now)
        return len(due)
