"""Console sessions and their CSRF tokens.

A session is a cookie of 256 random bits, stored only as its keyed hash, with two ends:
``console_session_idle_timeout`` after its last request and
``console_session_max_lifetime`` after sign-in, whichever comes first. The cookie is
``HttpOnly``, ``SameSite=Strict``, ``Secure`` and ``__Host-`` prefixed (unless
``console_secure_cookies`` is off, for http://localhost tests), so script cannot read
it, no other site's request carries it, and no sibling host can plant one.

Before sign-in, a ceremony cookie of the same kind binds the WebAuthn challenge of a
sign-in or an enrolment to the browser it was handed to.

CSRF: a synchronizer token per cookie, the keyed hash of the cookie's own hash, sent in
every form (``csrf``) and every script request (``X-CSRF-Token``) and checked on every
POST. Only a page the authority rendered for this cookie holds it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Final

from authority.context import Services
from authority.secrets import new_secret
from authority.storage.console import Person, Session

SESSION_PREFIX: Final = "cs"
CEREMONY_PREFIX: Final = "cc"


@dataclass(frozen=True, slots=True)
class Signed:
    """A signed-in request: the session, its person and the CSRF token of its forms."""

    session: Session
    person: Person
    csrf: str


def session_id(services: Services, cookie: str) -> str:
    return services.hasher.hash("console-session:" + cookie)


def binding(services: Services, cookie: str) -> str:
    """The keyed hash a ceremony cookie binds its challenges with."""
    return services.hasher.hash("console-ceremony:" + cookie)


def csrf_token(services: Services, bound_to: str) -> str:
    """The CSRF token of the session or ceremony whose hash is ``bound_to``."""
    return services.hasher.hash("console-csrf:" + bound_to)


def csrf_matches(services: Services, bound_to: str, presented: str | None) -> bool:
    if not presented or len(presented) > 128:
        return False
    return hmac.compare_digest(presented.encode(), csrf_token(services, bound_to).encode())


def new_ceremony_cookie() -> str:
    return new_secret(CEREMONY_PREFIX)


def may_act(person: Person) -> bool:
    """An active person; an owner's person while the owner is not retired (a suspended
    owner, mid kill switch, must still be able to sign in and look)."""
    if person.status != "active":
        return False
    return person.role != "owner" or person.owner_status in ("active", "suspended")


async def start(services: Services, person: Person) -> str:
    """A new session for ``person``; its cookie value (shown to the browser only)."""
    cookie = new_secret(SESSION_PREFIX)
    now = services.now()
    await services.console_store.create_session(
        Session(
            id=session_id(services, cookie),
            person_id=person.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + services.settings.console_session_max_lifetime,
        )
    )
    return cookie


async def current(services: Services, cookie: str | None) -> Signed | None:
    """The session a cookie stands for, if it has not ended; its idle clock restarts."""
    if not cookie or len(cookie) > 128:
        return None
    sid = session_id(services, cookie)
    found = await services.console_store.session(sid)
    if found is None:
        return None
    session, person = found
    now = services.now()
    idle_end = session.last_seen_at + services.settings.console_session_idle_timeout
    if now >= session.expires_at or now >= idle_end or not may_act(person):
        await services.console_store.end_session(sid)
        return None
    await services.console_store.touch_session(sid, now)
    return Signed(session, person, csrf_token(services, sid))


async def end(services: Services, cookie: str | None) -> None:
    if cookie and len(cookie) <= 128:
        await services.console_store.end_session(session_id(services, cookie))
