"""The console's port: people, their passkeys, enrolment links, sessions and challenges.

What ``authority.console`` keeps of the people who sign in to the web console. Nothing
stored here authenticates on its own: an enrolment link, a session cookie and the cookie
a ceremony is bound to are kept as keyed hashes (``SecretHasher``), a challenge as its
SHA-256, a passkey as its public key. Every method is atomic; the ones that change who
may act write their ledger entry (an ``Entry``, built and checked by the flow) in the
same transaction.

Single use is the store's: ``take_challenge`` deletes the challenge it returns and
``use_enrolment`` consumes an unused, unexpired link, so of N concurrent takers exactly
one wins and the others get None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from authority.ledger.entries import Entry

Role = Literal["admin", "owner", "auditor"]
PersonStatus = Literal["invited", "active", "retired"]
Purpose = Literal["enrol", "sign_in", "step_up"]


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str
    role: Role
    owner_id: str | None
    status: PersonStatus
    created_at: int
    updated_at: int
    #: The status of the person's owner (``owners.status``), for an owner's person.
    owner_status: str | None = None


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A one-time link, by the keyed hash of its secret."""

    id: str
    person_id: str
    created_by: str
    created_at: int
    expires_at: int
    used_at: int | None


@dataclass(frozen=True, slots=True)
class Credential:
    """A passkey: the authenticator's credential id and COSE public key."""

    id: str
    credential_id: str  # base64url, as the browser names it
    person_id: str
    public_key: bytes
    sign_count: int
    created_at: int
    last_used_at: int | None


@dataclass(frozen=True, slots=True)
class Session:
    id: str  # keyed hash of the cookie
    person_id: str
    created_at: int
    last_seen_at: int
    expires_at: int  # the absolute end; the idle end is last_seen_at + the idle timeout


@dataclass(frozen=True, slots=True)
class Challenge:
    """A WebAuthn challenge handed out for one ceremony, bound to the cookie it went to."""

    id: str  # SHA-256 of the challenge, hex
    purpose: Purpose
    binding: str  # keyed hash of the session or ceremony cookie
    person_id: str | None
    subject: str | None  # the enrolment's id, or the action a step-up confirms
    created_at: int
    expires_at: int


class ConsoleStore(Protocol):
    # --- people -------------------------------------------------------------------------
    async def create_person(
        self, person: Person, enrolment: Enrolment, entries: Sequence[Entry]
    ) -> bool:
        """Insert an invited person and their first enrolment link; False if the name
        is taken (nothing written)."""

    async def person(self, person_id: str) -> Person | None: ...

    async def people(self, *, limit: int) -> list[Person]:
        """People by creation, oldest first."""

    async def add_enrolment(self, enrolment: Enrolment, entry: Entry) -> bool:
        """Another link for a person who is not retired; False otherwise."""

    async def retire_person(self, person_id: str, *, now: int, entry: Entry) -> Person | None:
        """Retire for good: the person's sessions end and unused links die with them.
        None when there is no such person or they are retired already."""

    # --- enrolment ----------------------------------------------------------------------
    async def enrolment(self, enrolment_id: str, now: int) -> tuple[Enrolment, Person] | None:
        """An unused, unexpired link of a person who is not retired, and the person."""

    async def use_enrolment(
        self, enrolment_id: str, credential: Credential, *, now: int, entry: Entry
    ) -> Person | None:
        """Consume the link (unused, unexpired, its person not retired), store the passkey
        and make the person active, in one transaction; the person afterwards, or None
        when the link cannot be used (another use won, or it expired)."""

    # --- passkeys -----------------------------------------------------------------------
    async def credential(self, credential_id: str) -> Credential | None:
        """The passkey of that browser credential id."""

    async def credentials_of(self, person_id: str) -> list[Credential]: ...

    async def use_credential(
        self, credential_id: str, *, seen_count: int, new_count: int, now: int
    ) -> bool:
        """Record a verified assertion's signature counter, only if the stored counter is
        still ``seen_count``: a concurrent use of the same counter value loses (False)."""

    # --- challenges ---------------------------------------------------------------------
    async def put_challenge(self, challenge: Challenge) -> None:
        """Store a new challenge (and drop the ones expired by its ``created_at``)."""

    async def take_challenge(self, challenge_id: str, now: int) -> Challenge | None:
        """Delete and return the challenge if it has not expired; None otherwise."""

    # --- sessions -----------------------------------------------------------------------
    async def create_session(self, session: Session) -> None:
        """Store a new session (and drop sessions ended by its ``created_at``)."""

    async def session(self, session_id: str) -> tuple[Session, Person] | None: ...

    async def touch_session(self, session_id: str, now: int) -> None: ...

    async def end_session(self, session_id: str) -> None: ...
