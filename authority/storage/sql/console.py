"""The console's port (``storage.console``) in SQL, through the engine.

Single use is one statement each: a challenge is taken by ``DELETE ... RETURNING`` and an
enrolment link by a conditional ``UPDATE ... RETURNING``, so of concurrent takers exactly
one gets a row. The writes that change who may act append their ledger entry in the
same transaction (``storage.sql.ledger``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from authority.ledger.entries import Entry
from authority.storage.console import Challenge, Credential, Enrolment, Person, Session
from authority.storage.schema import (
    console_challenges,
    console_credentials,
    console_enrolments,
    console_people,
    console_sessions,
    owners,
)
from authority.storage.sql.ledger import append, append_many

_PERSON = select(*console_people.c, owners.c.status.label("owner_status")).select_from(
    console_people.outerjoin(owners, owners.c.id == console_people.c.owner_id)
)


class _Lost(Exception):
    """A conditional write found nothing to change: the transaction rolls back."""


def _person(row: Any) -> Person:
    return Person(**row._mapping)


def _values(item: Any) -> dict[str, Any]:
    return {name: getattr(item, name) for name in item.__dataclass_fields__}


def _append(conn: Any, entry: Entry) -> Any:
    kind, version, created_at, record = entry
    return append(conn, kind=kind, version=version, created_at=created_at, record=record)


class SqlConsoleStore:
    def __init__(self, engine: AsyncEngine, reader: AsyncEngine) -> None:
        self._engine = engine
        self._reader = reader

    # --- people -------------------------------------------------------------------------
    async def create_person(
        self, person: Person, enrolment: Enrolment, entries: Sequence[Entry]
    ) -> bool:
        values = _values(person)
        values.pop("owner_status")
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(console_people).values(values))
                await conn.execute(insert(console_enrolments).values(_values(enrolment)))
                await append_many(conn, entries)
        except IntegrityError:
            return False
        return True

    async def person(self, person_id: str) -> Person | None:
        async with self._reader.connect() as conn:
            row = (await conn.execute(_PERSON.where(console_people.c.id == person_id))).first()
        return None if row is None else _person(row)

    async def people(self, *, limit: int) -> list[Person]:
        query = _PERSON.order_by(console_people.c.created_at, console_people.c.id).limit(limit)
        async with self._reader.connect() as conn:
            return [_person(row) for row in (await conn.execute(query)).all()]

    async def add_enrolment(self, enrolment: Enrolment, entry: Entry) -> bool:
        async with self._engine.begin() as conn:
            status = (
                await conn.execute(
                    select(console_people.c.status)
                    .where(console_people.c.id == enrolment.person_id)
                    .with_for_update()
                )
            ).scalar()
            if status is None or status == "retired":
                return False
            await conn.execute(insert(console_enrolments).values(_values(enrolment)))
            await _append(conn, entry)
        return True

    async def retire_person(self, person_id: str, *, now: int, entry: Entry) -> Person | None:
        async with self._engine.begin() as conn:
            changed = (
                await conn.execute(
                    update(console_people)
                    .where(console_people.c.id == person_id, console_people.c.status != "retired")
                    .values(status="retired", updated_at=now)
                    .returning(console_people.c.id)
                )
            ).first()
            if changed is None:
                return None
            await conn.execute(
                delete(console_sessions).where(console_sessions.c.person_id == person_id)
            )
            await conn.execute(
                update(console_enrolments)
                .where(
                    console_enrolments.c.person_id == person_id,
                    console_enrolments.c.used_at.is_(None),
                )
                .values(used_at=now)
            )
            await _append(conn, entry)
            row = (await conn.execute(_PERSON.where(console_people.c.id == person_id))).one()
        return _person(row)

    # --- enrolment ----------------------------------------------------------------------
    async def enrolment(self, enrolment_id: str, now: int) -> tuple[Enrolment, Person] | None:
        query = select(*console_enrolments.c).where(
            console_enrolments.c.id == enrolment_id,
            console_enrolments.c.used_at.is_(None),
            console_enrolments.c.expires_at > now,
        )
        async with self._reader.connect() as conn:
            row = (await conn.execute(query)).first()
            if row is None:
                return None
            person = (
                await conn.execute(_PERSON.where(console_people.c.id == row.person_id))
            ).first()
        if person is None or person.status == "retired":
            return None
        return Enrolment(**row._mapping), _person(person)

    async def use_enrolment(
        self, enrolment_id: str, credential: Credential, *, now: int, entry: Entry
    ) -> Person | None:
        try:
            async with self._engine.begin() as conn:
                used = (
                    await conn.execute(
                        update(console_enrolments)
                        .where(
                            console_enrolments.c.id == enrolment_id,
                            console_enrolments.c.person_id == credential.person_id,
                            console_enrolments.c.used_at.is_(None),
                            console_enrolments.c.expires_at > now,
                        )
                        .values(used_at=now)
                        .returning(console_enrolments.c.id)
                    )
                ).first()
                if used is None:
                    return None
                activated = (
                    await conn.execute(
                        update(console_people)
                        .where(
                            console_people.c.id == credential.person_id,
                            console_people.c.status != "retired",
                        )
                        .values(status="active", updated_at=now)
                        .returning(console_people.c.id)
                    )
                ).first()
                if activated is None:
                    raise _Lost  # rolls the link's use back with the transaction
                await conn.execute(insert(console_credentials).values(_values(credential)))
                await _append(conn, entry)
                row = (
                    await conn.execute(_PERSON.where(console_people.c.id == credential.person_id))
                ).one()
        except (_Lost, IntegrityError):
            return None  # retired meanwhile, or the same credential registered twice
        return _person(row)

    # --- passkeys -----------------------------------------------------------------------
    async def credential(self, credential_id: str) -> Credential | None:
        query = select(console_credentials).where(
            console_credentials.c.credential_id == credential_id
        )
        async with self._reader.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else Credential(**row._mapping)

    async def credentials_of(self, person_id: str) -> list[Credential]:
        query = (
            select(console_credentials)
            .where(console_credentials.c.person_id == person_id)
            .order_by(console_credentials.c.created_at, console_credentials.c.id)
        )
        async with self._reader.connect() as conn:
            return [Credential(**row._mapping) for row in (await conn.execute(query)).all()]

    async def use_credential(
        self, credential_id: str, *, seen_count: int, new_count: int, now: int
    ) -> bool:
        async with self._engine.begin() as conn:
            changed = (
                await conn.execute(
                    update(console_credentials)
                    .where(
                        console_credentials.c.credential_id == credential_id,
                        console_credentials.c.sign_count == seen_count,
                    )
                    .values(sign_count=new_count, last_used_at=now)
                    .returning(console_credentials.c.id)
                )
            ).first()
        return changed is not None

    # --- challenges ---------------------------------------------------------------------
    async def put_challenge(self, challenge: Challenge) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(console_challenges).where(
                    console_challenges.c.expires_at <= challenge.created_at
                )
            )
            await conn.execute(insert(console_challenges).values(_values(challenge)))

    async def take_challenge(self, challenge_id: str, now: int) -> Challenge | None:
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    delete(console_challenges)
                    .where(console_challenges.c.id == challenge_id)
                    .returning(*console_challenges.c)
                )
            ).first()
        if row is None or row.expires_at <= now:
            return None
        return Challenge(**row._mapping)

    # --- sessions -----------------------------------------------------------------------
    async def create_session(self, session: Session) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(console_sessions).where(console_sessions.c.expires_at <= session.created_at)
            )
            await conn.execute(insert(console_sessions).values(_values(session)))

    async def session(self, session_id: str) -> tuple[Session, Person] | None:
        query = select(*console_sessions.c).where(console_sessions.c.id == session_id)
        async with self._reader.connect() as conn:
            row = (await conn.execute(query)).first()
            if row is None:
                return None
            person = (
                await conn.execute(_PERSON.where(console_people.c.id == row.person_id))
            ).first()
        if person is None:
            return None
        return Session(**row._mapping), _person(person)

    async def touch_session(self, session_id: str, now: int) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(console_sessions)
                .where(console_sessions.c.id == session_id, console_sessions.c.last_seen_at < now)
                .values(last_seen_at=now)
            )

    async def end_session(self, session_id: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(console_sessions).where(console_sessions.c.id == session_id))
