"""The console's passkey ceremonies: enrol, sign in, and step up for one action.

Each ceremony is two requests. The first hands out a fresh challenge, stored (as its
hash) with what it is for: its purpose, the cookie it went to, the person and the
subject (the enrolment link, or the one action a step-up confirms). The second takes the
challenge its response names, which deletes it, and only then verifies the response
against it: a challenge answers one response, never a second one, whether or not the
first verified, and never after it expires.

A step-up is a passkey assertion with user verification, made within
``console_step_up_window`` seconds of its challenge, by the signed-in person, in the same
session, for exactly the action named (``approve:<approval id>``, ``kill:<owner id>``,
``revoke:<delegation id>``, ``release:<agent id>``). A session cookie alone never
confirms anything: without the assertion the action is refused (403).
"""

from __future__ import annotations

from typing import Final

from authority.context import Services
from authority.errors import AuthorityError, InsufficientScope
from authority.ledger.entries import Entry
from authority.secrets import new_id
from authority.storage.console import Challenge, Credential, Person, Purpose

from . import passkeys, people
from .sessions import may_act

STEP_UP_ACTIONS: Final = frozenset({"approve", "kill", "revoke", "release", "promote"})


class PasskeyRefused(AuthorityError):
    """A sign-in or enrolment whose passkey response did not verify."""

    error = "access_denied"
    status_code = 401
    default_description = "The passkey was not accepted. Try again."


class StepUpRequired(InsufficientScope):
    """An action that needs a fresh passkey confirmation, without a valid one."""

    default_description = "This action needs a fresh passkey confirmation."


async def _hand_out(
    services: Services,
    *,
    purpose: Purpose,
    bound_to: str,
    person_id: str | None,
    subject: str | None,
    lifetime: int,
) -> bytes:
    challenge = passkeys.new_challenge()
    now = services.now()
    await services.console_store.put_challenge(
        Challenge(
            id=passkeys.challenge_id(challenge),
            purpose=purpose,
            binding=bound_to,
            person_id=person_id,
            subject=subject,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    return challenge


async def _take(
    services: Services, challenge: bytes, *, purpose: Purpose, bound_to: str
) -> Challenge | None:
    taken = await services.console_store.take_challenge(
        passkeys.challenge_id(challenge), services.now()
    )
    if taken is None or taken.purpose != purpose or taken.binding != bound_to:
        return None
    return taken


# --- enrolment ------------------------------------------------------------------------------
async def enrolment_options(services: Services, bound_to: str, secret: str) -> str:
    settings = services.settings
    found = await services.console_store.enrolment(
        people.enrolment_id(services, secret), services.now()
    )
    if found is None:
        raise PasskeyRefused("This enrolment link is not valid (used, expired or unknown).")
    enrolment, person = found
    existing = await services.console_store.credentials_of(person.id)
    challenge = await _hand_out(
        services,
        purpose="enrol",
        bound_to=bound_to,
        person_id=person.id,
        subject=enrolment.id,
        lifetime=settings.console_ceremony_timeout,
    )
    return passkeys.registration_options(
        settings,
        challenge=challenge,
        user_id=person.id,
        user_name=person.name,
        exclude=[c.credential_id for c in existing],
        timeout=settings.console_ceremony_timeout,
    )


async def enrol(services: Services, bound_to: str, secret: str, response: str) -> Person:
    """Store the new passkey and use up the link; the person, now active."""
    try:
        credential, challenge = passkeys.parse_registration(response)
    except passkeys.Refused:
        raise PasskeyRefused() from None
    taken = await _take(services, challenge, purpose="enrol", bound_to=bound_to)
    enrolment = people.enrolment_id(services, secret)
    if taken is None or taken.subject != enrolment or taken.person_id is None:
        raise PasskeyRefused()
    try:
        passkey = passkeys.verify_registration(services.settings, credential, challenge)
    except passkeys.Refused:
        raise PasskeyRefused() from None
    now = services.now()
    stored = Credential(
        id=new_id("pky"),
        credential_id=passkey.credential_id,
        person_id=taken.person_id,
        public_key=passkey.public_key,
        sign_count=passkey.sign_count,
        created_at=now,
        last_used_at=None,
    )
    entry: Entry = (
        "registry_changed",
        2,
        now,
        {
            "object_type": "passkey",
            "object_id": stored.id,
            "change": "created",
            "changes": {"person_id": taken.person_id},
            "actor": f"{people.ACTOR_PREFIX}{taken.person_id}",
        },
    )
    person = await services.console_store.use_enrolment(enrolment, stored, now=now, entry=entry)
    if person is None:
        raise PasskeyRefused("This enrolment link is not valid (used, expired or unknown).")
    return person


# --- assertions (sign-in, step-up) ----------------------------------------------------------
async def sign_in_options(services: Services, bound_to: str) -> str:
    settings = services.settings
    challenge = await _hand_out(
        services,
        purpose="sign_in",
        bound_to=bound_to,
        person_id=None,
        subject=None,
        lifetime=settings.console_ceremony_timeout,
    )
    return passkeys.authentication_options(
        settings, challenge=challenge, allow=[], timeout=settings.console_ceremony_timeout
    )


async def _assert(
    services: Services, response: str, *, purpose: Purpose, bound_to: str
) -> tuple[Challenge, Person] | None:
    """The challenge answered and the passkey's person, once the assertion verifies."""
    try:
        credential, challenge = passkeys.parse_assertion(response)
    except passkeys.Refused:
        return None
    taken = await _take(services, challenge, purpose=purpose, bound_to=bound_to)
    if taken is None:
        return None
    stored = await services.console_store.credential(credential.id)
    if stored is None or (taken.person_id is not None and stored.person_id != taken.person_id):
        return None
    try:
        count = passkeys.verify_assertion(
            services.settings,
            credential,
            challenge,
            public_key=stored.public_key,
            sign_count=stored.sign_count,
        )
    except passkeys.Refused:
        return None
    # A counter another use has moved on meanwhile: one of two racing assertions loses.
    if not await services.console_store.use_credential(
        stored.credential_id, seen_count=stored.sign_count, new_count=count, now=services.now()
    ):
        return None
    person = await services.console_store.person(stored.person_id)
    if person is None or not may_act(person):
        return None
    return taken, person


async def sign_in(services: Services, bound_to: str, response: str) -> Person:
    verified = await _assert(services, response, purpose="sign_in", bound_to=bound_to)
    if verified is None:
        raise PasskeyRefused()
    return verified[1]


def action(name: str, target: str) -> str:
    if name not in STEP_UP_ACTIONS:
        raise ValueError(name)
    return f"{name}:{target}"


async def step_up_options(services: Services, session_id: str, person: Person, subject: str) -> str:
    """A challenge for one action, to be answered by this person in this session."""
    settings = services.settings
    allow = [c.credential_id for c in await services.console_store.credentials_of(person.id)]
    challenge = await _hand_out(
        services,
        purpose="step_up",
        bound_to=session_id,
        person_id=person.id,
        subject=subject,
        lifetime=settings.console_step_up_window,
    )
    return passkeys.authentication_options(
        settings, challenge=challenge, allow=allow, timeout=settings.console_step_up_window
    )


async def confirm(
    services: Services, session_id: str, person: Person, subject: str, response: str | None
) -> None:
    """Refuse (403) unless ``response`` is a fresh assertion for exactly this action."""
    if not response:
        raise StepUpRequired()
    verified = await _assert(services, response, purpose="step_up", bound_to=session_id)
    if verified is None:
        raise StepUpRequired("The passkey confirmation was not accepted. Try again.")
    taken, signer = verified
    if signer.id != person.id or taken.subject != subject:
        raise StepUpRequired("The passkey confirmation was for another action.")
