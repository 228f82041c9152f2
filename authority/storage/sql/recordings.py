"""The recording port (``storage.recordings``) in SQL, through the engine.

The lookup is one query on the autocommit reader: the submitting server's registration
and the token's grant. A record is two statements in one transaction: the ledger entry
(``INSERT ... RETURNING id``), then the recording that names it, inserted with
``ON CONFLICT DO NOTHING`` on the (server, submission id) key; when that inserts nothing
a resubmission won the race (or came first), and the transaction is rolled back, entry
and all, before the winner's call id is read.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, bindparam, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authority.ledger.entries import Entry, entry_row
from authority.storage.recordings import (
    NewRecording,
    Recorded,
    StoredRecording,
    SubmissionFacts,
)
from authority.storage.schema import (
    call_recordings,
    grants,
    ledger_entries,
    ledger_leaves,
    resource_servers,
)

from .columns import SERVER_COLUMNS
from .ledger import INSERT as INSERT_ENTRY
from .records import valid_id

_ONE = select(literal(1).label("one")).subquery("one")
_LOOKUP = select(
    *SERVER_COLUMNS,
    grants.c.id.label("grant_id"),
    grants.c.decision,
    grants.c.audience.label("grant_audience"),
    grants.c.agent_id,
    grants.c.owner_id,
    grants.c.delegation_id,
    grants.c.tool,
    grants.c.resource,
    grants.c.action,
).select_from(
    _ONE.outerjoin(resource_servers, resource_servers.c.id == bindparam("client_id")).outerjoin(
        grants, grants.c.jti == bindparam("jti")
    )
)

_INSERT_ENTRY = INSERT_ENTRY.returning(ledger_entries.c.id)

_r = call_recordings
_READ: Select[Any] = select(
    _r.c.id,
    _r.c.created_at,
    _r.c.server_id,
    _r.c.grant_id,
    _r.c.jti,
    _r.c.request_head,
    _r.c.response_head,
    _r.c.swept_at,
    ledger_entries.c.body.label("entry_body"),
    ledger_leaves.c.leaf_index,
    ledger_leaves.c.leaf_hash,
).select_from(
    _r.join(ledger_entries, ledger_entries.c.id == _r.c.entry_id).outerjoin(
        ledger_leaves, ledger_leaves.c.entry_id == _r.c.entry_id
    )
)


class _Resubmitted(Exception):
    """Rolls the transaction back: this server's submission id is stored already."""


def _insert_recording(dialect: str, values: dict[str, Any]) -> Any:
    module = postgresql if dialect == "postgresql" else sqlite
    return (
        module.insert(_r)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[_r.c.server_id, _r.c.submission_id])
        .returning(_r.c.id)
    )


def _stored(row: Any) -> StoredRecording:
    return StoredRecording(
        id=row.id,
        created_at=int(row.created_at),
        server_id=row.server_id,
        grant_id=row.grant_id,
        jti=row.jti,
        request_head=None if row.request_head is None else bytes(row.request_head),
        response_head=None if row.response_head is None else bytes(row.response_head),
        swept_at=row.swept_at,
        entry_body=row.entry_body,
        leaf_index=None if row.leaf_index is None else int(row.leaf_index),
        leaf_hash=None if row.leaf_hash is None else bytes(row.leaf_hash),
    )


class SqlRecordingStore:
    def __init__(self, engine: AsyncEngine, reader: AsyncEngine) -> None:
        self._engine = engine
        self._reader = reader

    async def lookup(self, client_id: str, jti: str) -> SubmissionFacts:
        async with self._reader.connect() as conn:
            row = (await conn.execute(_LOOKUP, {"client_id": client_id, "jti": jti})).one()
        return SubmissionFacts(**row._mapping)

    async def record(self, recording: NewRecording, entry: Entry) -> Recorded:
        kind, version, created_at, body = entry
        # Validated before the transaction: a malformed entry writes nothing.
        row = entry_row(kind=kind, version=version, created_at=created_at, record=body)
        try:
            async with self._engine.begin() as conn:
                entry_id = (await conn.execute(_INSERT_ENTRY, row)).scalar_one()
                values = {
                    "id": recording.id,
                    "created_at": recording.created_at,
                    "server_id": recording.server_id,
                    "submission_id": recording.submission_id,
                    "entry_id": entry_id,
                    "grant_id": recording.grant_id,
                    "jti": recording.jti,
                    "request_head": recording.request_head,
                    "response_head": recording.response_head,
                }
                inserted = await conn.execute(_insert_recording(conn.dialect.name, values))
                if inserted.first() is None:
                    raise _Resubmitted()
        except _Resubmitted:
            async with self._reader.connect() as conn:
                earlier = await self._submitted(conn, recording)
            return Recorded(earlier, created=False)
        return Recorded(recording.id, created=True)

    @staticmethod
    async def _submitted(conn: AsyncConnection, recording: NewRecording) -> str:
        query = select(_r.c.id).where(
            _r.c.server_id == recording.server_id,
            _r.c.submission_id == recording.submission_id,
        )
        found: str = (await conn.execute(query)).scalar_one()
        return found

    async def get(self, call_id: str) -> StoredRecording | None:
        if not valid_id(call_id):
            return None
        async with self._reader.connect() as conn:
            row = (await conn.execute(_READ.where(_r.c.id == call_id))).first()
        return None if row is None else _stored(row)

    async def of_grant(
        self,
        *,
        grant_id: str | None = None,
        jti: str | None = None,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[StoredRecording]:
        query = _READ.where(_r.c.grant_id == grant_id if jti is None else _r.c.jti == jti)
        if after is not None:
            at, last_id = after
            query = query.where(
                (_r.c.created_at > at) | ((_r.c.created_at == at) & (_r.c.id > last_id))
            )
        query = query.order_by(_r.c.created_at, _r.c.id).limit(limit)
        async with self._reader.connect() as conn:
            return [_stored(row) for row in await conn.execute(query)]

    async def sweep(self, before: int, *, now: int, limit: int) -> int:
        due = (
            select(_r.c.id)
            .where(_r.c.swept_at.is_(None), _r.c.created_at < before)
            .order_by(_r.c.swept_at, _r.c.created_at)
            .limit(limit)
        )
        statement = (
            update(_r)
            .where(_r.c.id.in_(due))
            .values(request_head=None, response_head=None, swept_at=now)
        )
        async with self._engine.begin() as conn:
            result = await conn.execute(statement)
        return int(result.rowcount)
