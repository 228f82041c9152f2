"""The Cedar policy's versions through the API: read them, store a new one, roll back.

Admins change the policy (``POST /v1/policies``, ``POST /v1/policies/{version}/activate``);
admins and auditors read it. A new text is parsed before anything is stored
(``policy.versions.compile_text``: a 400 that never quotes the text); storing it makes
it the active version, and activating an older one is a rollback: each change is one
commit with its ``policy_changed`` entry. The instance that made the change decides its
next request on it; the others within ``policy_refresh_interval`` (``policy.active``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import StringConstraints

from authority.context import Services
from authority.errors import NotFound
from authority.management.auth import Principal
from authority.management.inputs import Body
from authority.policy import versions
from authority.policy.active import BUILT_IN
from authority.policy.cedar import DEFAULT_POLICY_FILE
from authority.storage.policies import NewPolicy, PolicyVersion, StoredPolicy

#: A policy text: at most 1 MiB (the body limit decides first), no NUL.
PolicyText = Annotated[str, StringConstraints(max_length=1024 * 1024)]
Comment = Annotated[
    str, StringConstraints(max_length=versions.MAX_COMMENT, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")
]
_NUMBER = re.compile(r"^[1-9][0-9]{0,8}$")
#: Who wrote the built-in default, as its version shows it.
BUILT_IN_AUTHOR = "built-in"


class PolicyCreate(Body):
    text: PolicyText
    comment: Comment | None = None


@dataclass(frozen=True, slots=True)
class PolicyVersionView:
    """A version as listed: never its text."""

    version: int
    digest: str
    author: str
    comment: str | None
    created_at: int | None
    active: bool


@dataclass(frozen=True, slots=True)
class PolicyView:
    """A version with its text."""

    version: int
    digest: str
    author: str
    comment: str | None
    created_at: int | None
    active: bool
    text: str


def _view(info: PolicyVersion, active: int | None) -> PolicyVersionView:
    return PolicyVersionView(
        info.version,
        info.digest,
        info.author,
        info.comment,
        info.created_at,
        info.version == active,
    )


def _full(stored: StoredPolicy, active: int | None) -> PolicyView:
    info = stored.info
    return PolicyView(
        info.version,
        info.digest,
        info.author,
        info.comment,
        info.created_at,
        info.version == active,
        stored.text,
    )


def version_number(value: str) -> int:
    """A version in a path; 404 for anything that is not one."""
    if _NUMBER.match(value) is None:
        raise NotFound("No such policy version.")
    return int(value)


async def active(services: Services) -> PolicyView:
    """The active version; while none is stored, the built-in default as version 0."""
    number = await services.policy_store.active_version()
    stored = await services.policy_store.get(number) if number is not None else None
    if stored is None:
        text = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
        return PolicyView(BUILT_IN, versions.digest(text), BUILT_IN_AUTHOR, None, None, True, text)
    return _full(stored, number)


async def listing(services: Services) -> list[PolicyVersionView]:
    number = await services.policy_store.active_version()
    return [_view(info, number) for info in await services.policy_store.versions()]


async def get(services: Services, version: int) -> PolicyView:
    stored = await services.policy_store.get(version)
    if stored is None:
        raise NotFound("No such policy version.")
    return _full(stored, await services.policy_store.active_version())


async def create(services: Services, principal: Principal, body: PolicyCreate) -> PolicyView:
    """Store ``body.text`` as the next version and make it active (admins)."""
    compiled = versions.compile_text(body.text)
    now = services.now()
    new = NewPolicy(body.text, versions.digest(body.text), principal.key_id, body.comment, now)
    entry = versions.change_entry(
        now=now, actor=principal.key_id, change="created", comment=body.comment
    )
    info = await services.policy_store.create(new, actor=principal.key_id, entry=entry)
    if info is None:  # only a first-version seed can be refused: cannot happen
        raise RuntimeError("the policy version was not stored")
    services.policy.install(info.version, compiled)
    return _full(StoredPolicy(info, body.text), info.version)


async def activate(services: Services, principal: Principal, version: int) -> PolicyView:
    """Make a stored version active again: a rollback (admins)."""
    stored = await services.policy_store.get(version)
    if stored is None:
        raise NotFound("No such policy version.")
    compiled = versions.compile_text(stored.text)
    now = services.now()
    entry = versions.change_entry(now=now, actor=principal.key_id, change="activated")
    info = await services.policy_store.activate(
        version, actor=principal.key_id, now=now, entry=entry
    )
    if info is None:
        raise NotFound("No such policy version.")
    services.policy.install(info.version, compiled)
    return _full(stored, info.version)
