"""The policy versions port (``storage.policies``) in SQL, through the engine.

A new version's number is the largest stored plus one, read in the transaction that
inserts it, and every change holds the policy's write lock until it commits: on
PostgreSQL an advisory transaction lock, on SQLite the ``BEGIN IMMEDIATE`` every
transaction starts with (storage/database.py). So two changes at once are written one
after the other, each with the number and the ``previous_version`` the other left.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authority.storage.policies import ChangeEntry, NewPolicy, PolicyVersion, StoredPolicy
from authority.storage.schema import policy_activations, policy_versions
from authority.storage.sql.ledger import append

_v = policy_versions.c
_a = policy_activations.c
_INFO = (_v.version, _v.digest, _v.author, _v.comment, _v.created_at)
_ACTIVE = select(_a.version).order_by(_a.id.desc()).limit(1)
#: pg_advisory_xact_lock key: "authority policy versions", fixed for every instance.
_ADVISORY_LOCK = int.from_bytes(
    hashlib.sha256(b"authority policy versions").digest()[:8], "big", signed=True
)


def _info(row: Any) -> PolicyVersion:
    return PolicyVersion(row.version, row.digest, row.author, row.comment, row.created_at)


class SqlPolicyStore:
    def __init__(self, engine: AsyncEngine, reader: AsyncEngine) -> None:
        self._engine = engine
        self._reader = reader

    async def active_version(self) -> int | None:
        async with self._reader.connect() as conn:
            version: int | None = (await conn.execute(_ACTIVE)).scalar()
        return version

    async def get(self, version: int) -> StoredPolicy | None:
        query = select(*_INFO, _v.text).where(_v.version == version)
        async with self._reader.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else StoredPolicy(_info(row), row.text)

    async def versions(self) -> list[PolicyVersion]:
        query = select(*_INFO).order_by(_v.version.desc())
        async with self._reader.connect() as conn:
            return [_info(row) for row in await conn.execute(query)]

    async def create(
        self, policy: NewPolicy, *, actor: str, entry: ChangeEntry, only_first: bool = False
    ) -> PolicyVersion | None:
        async with self._engine.begin() as conn:
            await _serialize(conn)
            return await _create(conn, policy, actor, entry, only_first)

    async def activate(
        self, version: int, *, actor: str, now: int, entry: ChangeEntry
    ) -> PolicyVersion | None:
        async with self._engine.begin() as conn:
            await _serialize(conn)
            row = (await conn.execute(select(*_INFO).where(_v.version == version))).first()
            if row is None:
                return None
            info = _info(row)
            previous = (await conn.execute(_ACTIVE)).scalar()
            await _activate(conn, info, actor, now, entry(info, previous))
        return info


async def _serialize(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(select(func.pg_advisory_xact_lock(_ADVISORY_LOCK)))


async def _create(
    conn: AsyncConnection, policy: NewPolicy, actor: str, entry: ChangeEntry, only_first: bool
) -> PolicyVersion | None:
    last = (await conn.execute(select(func.max(_v.version)))).scalar()
    if only_first and last is not None:
        return None
    info = PolicyVersion(
        (last or 0) + 1, policy.digest, policy.author, policy.comment, policy.created_at
    )
    values = {
        "version": info.version,
        "text": policy.text,
        "digest": info.digest,
        "author": info.author,
        "comment": info.comment,
        "created_at": info.created_at,
    }
    await conn.execute(insert(policy_versions).values(values))
    previous = (await conn.execute(_ACTIVE)).scalar()
    await _activate(conn, info, actor, policy.created_at, entry(info, previous))
    return info


async def _activate(
    conn: AsyncConnection,
    info: PolicyVersion,
    actor: str,
    now: int,
    change: tuple[str, int, int, dict[str, Any]],
) -> None:
    values = {"version": info.version, "actor": actor, "activated_at": now}
    await conn.execute(insert(policy_activations).values(values))
    kind, version, created_at, record = change
    await append(conn, kind=kind, version=version, created_at=created_at, record=record)
