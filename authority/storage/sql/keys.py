"""The keys port (``storage.keys``, the keyring's ``KeyStore``) in SQL: ``signing_keys``.

Every write that changes which key signs is serialised across instances and commits
with its ``key_rotated`` ledger entry, or not at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import func, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authority.storage.keys import KeyInfo, Purpose, Status, StoredKey
from authority.storage.schema import signing_keys
from authority.storage.sql import ledger

_ADVISORY_LOCK = int.from_bytes(
    hashlib.sha256(b"authority.signing_keys").digest()[:8], "big", signed=True
)


class SqlKeyStore:
    """Signing keys in SQL (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def published(self, now: int) -> Sequence[StoredKey]:
        table = signing_keys.c
        query = select(signing_keys).where(
            or_(
                table.status != "retired",
                table.publish_until.is_(None),
                table.publish_until > now,
            )
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_stored(row) for row in rows]

    async def create_first(self, values: dict[str, Any], *, actor: str) -> bool:
        async with self._engine.begin() as conn:
            await _serialize_key_writes(conn)
            if await _kid_with_status(conn, values["purpose"], "active") is not None:
                return False
            await conn.execute(signing_keys.insert().values(**values))
            await _record_rotation(conn, values, previous_kid=None, actor=actor)
        return True

    async def schedule(
        self, values: dict[str, Any], *, actor: str
    ) -> tuple[str | None, str | None]:
        async with self._engine.begin() as conn:
            await _serialize_key_writes(conn)
            pending = await _kid_with_status(conn, values["purpose"], "next")
            active = await _kid_with_status(conn, values["purpose"], "active")
            if pending is not None or active is None:
                return pending, active
            await conn.execute(signing_keys.insert().values(**values))
            await _record_rotation(conn, values, previous_kid=active, actor=actor)
        return None, active

    async def promote(
        self, purpose: Purpose, kid: str, now: int, *, retired_publish_until: int | None
    ) -> bool:
        table = signing_keys.c
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(signing_keys)
                .where(table.kid == kid, table.status == "next", table.activated_at <= now)
                .values(status="active", activated_at=now)
            )
            if result.rowcount != 1:
                return False
            # Retired keys never sign again: their private half is erased, not kept.
            await conn.execute(
                update(signing_keys)
                .where(table.purpose == purpose, table.status == "active", table.kid != kid)
                .values(
                    status="retired",
                    retired_at=now,
                    publish_until=retired_publish_until,
                    private_key=b"",
                )
            )
        return True

    async def all_keys(self) -> list[KeyInfo]:
        table = signing_keys.c
        query = select(
            table.kid,
            table.purpose,
            table.alg,
            table.status,
            table.created_at,
            table.activated_at,
            table.retired_at,
            table.publish_until,
        ).order_by(table.purpose.desc(), table.created_at, table.kid)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [KeyInfo(*row) for row in rows]


def _stored(row: Row[Any]) -> StoredKey:
    return StoredKey(
        kid=row.kid,
        purpose=row.purpose,
        alg=row.alg,
        status=row.status,
        public_jwk=row.public_jwk,
        private_key=row.private_key,
        created_at=row.created_at,
        activated_at=row.activated_at,
        publish_until=row.publish_until,
    )


async def _serialize_key_writes(conn: AsyncConnection) -> None:
    """Hold the key-writing lock until ``conn``'s transaction ends.

    PostgreSQL: an advisory transaction lock, so that a check-then-insert by one instance
    cannot interleave with another's. SQLite: every transaction already begins with
    ``BEGIN IMMEDIATE`` (storage/database.py), which admits one writer at a time.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(select(func.pg_advisory_xact_lock(_ADVISORY_LOCK)))


async def _kid_with_status(conn: AsyncConnection, purpose: Purpose, status: Status) -> str | None:
    table = signing_keys.c
    kid = await conn.scalar(
        select(table.kid)
        .where(table.purpose == purpose, table.status == status)
        .order_by(table.created_at.desc())
        .limit(1)
    )
    return cast(str | None, kid)


async def _record_rotation(
    conn: AsyncConnection, values: dict[str, Any], *, previous_kid: str | None, actor: str
) -> None:
    record: dict[str, Any] = {
        "purpose": values["purpose"],
        "kid": values["kid"],
        "alg": values["alg"],
        "actor": actor,
    }
    if previous_kid is not None:
        record["previous_kid"] = previous_kid
    await ledger.append(
        conn, kind="key_rotated", version=1, created_at=values["created_at"], record=record
    )
