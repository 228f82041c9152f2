"""The console's people: who signs in with a passkey, in which role, for which owner.

A person is an admin, an auditor or one owner's; an admin enrols them with a one-time
link (``authority console enrol``, ``POST /v1/console/people``, or the console's admin
pages), which they open to create their passkey. The link's secret travels in the URL's
fragment, so no server or proxy log ever holds it; it is stored as its keyed hash and is
good once, for ``console_enrolment_lifetime`` seconds. A new link for the same person
(a new device) is another enrolment; retiring a person ends their sessions for good.

Acting in the console, a person is a ``management.auth.Principal`` whose key id is their
actor: ``console:<person id>``, and ``console:<person id>+passkey`` for an action they
have just confirmed with a fresh passkey assertion (``console.step_up``). So every
ledger entry names who acted, and whether a passkey confirmed it, with no new member.

Every change here is a ``registry_changed`` entry (version 2, ``object_type`` person or
passkey) in the same transaction: who may approve, kill and audit is audited too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import StringConstraints

from authority.context import Services
from authority.errors import Conflict, InvalidRequest, NotFound
from authority.ledger.entries import Entry
from authority.management import owners
from authority.management.auth import ADMIN, Principal, require_role
from authority.management.inputs import Body, Name
from authority.secrets import new_id, new_secret
from authority.storage.console import Enrolment, Person

ACTOR_PREFIX: Final = "console:"
#: Appended to the actor of an action confirmed by a fresh passkey assertion.
PASSKEY_CONFIRMED: Final = "+passkey"
ENROLMENT_PREFIX: Final = "enr"
ENROLMENT_PATH: Final = "/console/enrol"
NOT_FOUND: Final = "No such person."
NAME_TAKEN: Final = "A person with this name exists."
MAX_PEOPLE: Final = 1000

_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
OwnerId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,40}$")]


class PersonCreate(Body):
    name: Name
    role: Literal["admin", "owner", "auditor"]
    owner_id: OwnerId | None = None


@dataclass(frozen=True, slots=True)
class Issued:
    """A person and their one-time enrolment link, shown once."""

    person: Person
    link: str
    expires_at: int


def actor(person: Person, *, confirmed: bool = False) -> str:
    """Who acted, as the ledger names it."""
    return f"{ACTOR_PREFIX}{person.id}{PASSKEY_CONFIRMED if confirmed else ''}"


def principal(person: Person, *, confirmed: bool = False) -> Principal:
    """The person as the management layer sees a caller."""
    return Principal(
        key_id=actor(person, confirmed=confirmed), role=person.role, owner_id=person.owner_id
    )


def enrolment_id(services: Services, secret: str) -> str:
    return services.hasher.hash("console-enrolment:" + secret)


def _change(now: int, by: str, person: Person, change: str, changes: dict[str, Any]) -> Entry:
    return (
        "registry_changed",
        2,
        now,
        {
            "object_type": "person",
            "object_id": person.id,
            "change": change,
            "changes": changes,
            "owner_id": person.owner_id,
            "actor": by,
        },
    )


def _link(services: Services, person: Person, by: str, now: int) -> tuple[str, Enrolment]:
    secret = new_secret(ENROLMENT_PREFIX)
    enrolment = Enrolment(
        id=enrolment_id(services, secret),
        person_id=person.id,
        created_by=by,
        created_at=now,
        expires_at=now + services.settings.console_enrolment_lifetime,
        used_at=None,
    )
    # The fragment never leaves the browser: no access log, proxy or Referer holds it.
    return f"{services.settings.issuer}{ENROLMENT_PATH}#{secret}", enrolment


async def create(services: Services, by: Principal, body: PersonCreate) -> Issued:
    """A new, invited person and their first link (admins only)."""
    require_role(by, *ADMIN)
    if (body.role == "owner") != (body.owner_id is not None):
        raise InvalidRequest("The owner_id field is required for an owner, and only for one.")
    if body.owner_id is not None:
        owner = await owners.get(services, by, body.owner_id)
        if owner.status == "retired":
            raise InvalidRequest("The owner is retired.")
    now = services.now()
    person = Person(
        id=new_id("per"),
        name=body.name,
        role=body.role,
        owner_id=body.owner_id,
        status="invited",
        created_at=now,
        updated_at=now,
    )
    link, enrolment = _link(services, person, by.key_id, now)
    entry = _change(
        now,
        by.key_id,
        person,
        "created",
        {"name": person.name, "role": person.role, "enrolment_expires_at": enrolment.expires_at},
    )
    if not await services.console_store.create_person(person, enrolment, [entry]):
        raise Conflict(NAME_TAKEN)
    return Issued(person, link, enrolment.expires_at)


async def get(services: Services, by: Principal, person_id: str) -> Person:
    require_role(by, *ADMIN)
    if _ID.match(person_id) is None:
        raise NotFound(NOT_FOUND)
    person = await services.console_store.person(person_id)
    if person is None:
        raise NotFound(NOT_FOUND)
    return person


async def enrol_again(services: Services, by: Principal, person_id: str) -> Issued:
    """Another one-time link, for a new passkey of a person who is not retired."""
    person = await get(services, by, person_id)
    now = services.now()
    link, enrolment = _link(services, person, by.key_id, now)
    entry = _change(
        now, by.key_id, person, "updated", {"enrolment_expires_at": enrolment.expires_at}
    )
    if not await services.console_store.add_enrolment(enrolment, entry):
        raise Conflict("The person is retired.")
    return Issued(person, link, enrolment.expires_at)


async def retire(services: Services, by: Principal, person_id: str) -> Person:
    person = await get(services, by, person_id)
    if person.id == by.key_id.removeprefix(ACTOR_PREFIX).removesuffix(PASSKEY_CONFIRMED):
        raise Conflict("A person cannot retire themselves.")
    now = services.now()
    retired = await services.console_store.retire_person(
        person_id, now=now, entry=_change(now, by.key_id, person, "retired", {})
    )
    if retired is None:
        raise Conflict("The person is retired already.")
    return retired


async def list_people(services: Services, by: Principal) -> list[Person]:
    require_role(by, *ADMIN)
    return await services.console_store.people(limit=MAX_PEOPLE)
