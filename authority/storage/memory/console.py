"""The console's port (``storage.console``) on ``Tables``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from authority.ledger.entries import Entry, entry_row
from authority.storage.console import Challenge, Credential, Enrolment, Person, Session

from . import Tables


def _row(entry: Entry) -> dict[str, Any]:
    kind, version, created_at, record = entry
    return entry_row(kind=kind, version=version, created_at=created_at, record=record)


class MemoryConsoleStore:
    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    def _person(self, row: dict[str, Any]) -> Person:
        owner = self._tables.owners.get(row["owner_id"]) if row["owner_id"] else None
        return Person(**row, owner_status=None if owner is None else owner["status"])

    # --- people -------------------------------------------------------------------------
    async def create_person(
        self, person: Person, enrolment: Enrolment, entries: Sequence[Entry]
    ) -> bool:
        people = self._tables.console_people
        if any(row["name"] == person.name for row in people.values()) or person.id in people:
            return False
        rows = [_row(entry) for entry in entries]  # validated before anything changes
        values = dataclasses.asdict(person)
        values.pop("owner_status")
        people[person.id] = values
        self._tables.console_enrolments[enrolment.id] = dataclasses.asdict(enrolment)
        self._tables.ledger_entries.extend(rows)
        return True

    async def person(self, person_id: str) -> Person | None:
        row = self._tables.console_people.get(person_id)
        return None if row is None else self._person(row)

    async def people(self, *, limit: int) -> list[Person]:
        rows = sorted(
            self._tables.console_people.values(), key=lambda r: (r["created_at"], r["id"])
        )
        return [self._person(row) for row in rows[:limit]]

    async def add_enrolment(self, enrolment: Enrolment, entry: Entry) -> bool:
        person = self._tables.console_people.get(enrolment.person_id)
        if person is None or person["status"] == "retired":
            return False
        row = _row(entry)
        self._tables.console_enrolments[enrolment.id] = dataclasses.asdict(enrolment)
        self._tables.ledger_entries.append(row)
        return True

    async def retire_person(self, person_id: str, *, now: int, entry: Entry) -> Person | None:
        tables = self._tables
        person = tables.console_people.get(person_id)
        if person is None or person["status"] == "retired":
            return None
        row = _row(entry)
        person.update(status="retired", updated_at=now)
        for session_id in [
            k for k, s in tables.console_sessions.items() if s["person_id"] == person_id
        ]:
            del tables.console_sessions[session_id]
        for link in tables.console_enrolments.values():
            if link["person_id"] == person_id and link["used_at"] is None:
                link["used_at"] = now
        tables.ledger_entries.append(row)
        return self._person(person)

    # --- enrolment ----------------------------------------------------------------------
    def _usable(self, enrolment_id: str, now: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
        link = self._tables.console_enrolments.get(enrolment_id)
        if link is None or link["used_at"] is not None or link["expires_at"] <= now:
            return None
        person = self._tables.console_people.get(link["person_id"])
        if person is None or person["status"] == "retired":
            return None
        return link, person

    async def enrolment(self, enrolment_id: str, now: int) -> tuple[Enrolment, Person] | None:
        found = self._usable(enrolment_id, now)
        if found is None:
            return None
        return Enrolment(**found[0]), self._person(found[1])

    async def use_enrolment(
        self, enrolment_id: str, credential: Credential, *, now: int, entry: Entry
    ) -> Person | None:
        tables = self._tables
        found = self._usable(enrolment_id, now)
        if found is None or found[0]["person_id"] != credential.person_id:
            return None
        taken = {row["credential_id"] for row in tables.console_credentials.values()}
        if credential.credential_id in taken or credential.id in tables.console_credentials:
            return None
        row = _row(entry)
        link, person = found
        link["used_at"] = now
        person.update(status="active", updated_at=now)
        tables.console_credentials[credential.id] = dataclasses.asdict(credential)
        tables.ledger_entries.append(row)
        return self._person(person)

    # --- passkeys -----------------------------------------------------------------------
    def _credential_row(self, credential_id: str) -> dict[str, Any] | None:
        for row in self._tables.console_credentials.values():
            if row["credential_id"] == credential_id:
                return row
        return None

    async def credential(self, credential_id: str) -> Credential | None:
        row = self._credential_row(credential_id)
        return None if row is None else Credential(**row)

    async def credentials_of(self, person_id: str) -> list[Credential]:
        rows = [r for r in self._tables.console_credentials.values() if r["person_id"] == person_id]
        return [Credential(**r) for r in sorted(rows, key=lambda r: (r["created_at"], r["id"]))]

    async def use_credential(
        self, credential_id: str, *, seen_count: int, new_count: int, now: int
    ) -> bool:
        row = self._credential_row(credential_id)
        if row is None or row["sign_count"] != seen_count:
            return False
        row.update(sign_count=new_count, last_used_at=now)
        return True

    # --- challenges ---------------------------------------------------------------------
    async def put_challenge(self, challenge: Challenge) -> None:
        challenges = self._tables.console_challenges
        for key in [k for k, c in challenges.items() if c["expires_at"] <= challenge.created_at]:
            del challenges[key]
        challenges[challenge.id] = dataclasses.asdict(challenge)

    async def take_challenge(self, challenge_id: str, now: int) -> Challenge | None:
        row = self._tables.console_challenges.pop(challenge_id, None)
        if row is None or row["expires_at"] <= now:
            return None
        return Challenge(**row)

    # --- sessions -----------------------------------------------------------------------
    async def create_session(self, session: Session) -> None:
        sessions = self._tables.console_sessions
        for key in [k for k, s in sessions.items() if s["expires_at"] <= session.created_at]:
            del sessions[key]
        sessions[session.id] = dataclasses.asdict(session)

    async def session(self, session_id: str) -> tuple[Session, Person] | None:
        row = self._tables.console_sessions.get(session_id)
        if row is None:
            return None
        person = self._tables.console_people.get(row["person_id"])
        if person is None:
            return None
        return Session(**row), self._person(person)

    async def touch_session(self, session_id: str, now: int) -> None:
        row = self._tables.console_sessions.get(session_id)
        if row is not None and row["last_seen_at"] < now:
            row["last_seen_at"] = now

    async def end_session(self, session_id: str) -> None:
        self._tables.console_sessions.pop(session_id, None)
