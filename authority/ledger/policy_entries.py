"""Ledger records of the Cedar policy's versions: which text decides exchanges, since when.

A version is immutable and named by its number and the SHA-256 digest of its text
(``policy.versions.digest``), never by the text itself: an auditor who holds the text
checks it against the digest. Each grant names the version that decided it
(``GrantV3.policy_version``), so "which rules refused this call" has one answer.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from .record import Actor, Record, Text

PolicyNumber = Annotated[int, Field(ge=1, lt=2**53)]
#: ``sha-256:`` and 43 base64url characters, as the arguments' digest.
PolicyDigest = Annotated[str, Field(pattern=r"^sha-256:[A-Za-z0-9_-]{43}$")]


class PolicyChangedV1(Record):
    """A policy version became the active one.

    ``created``: a new version, stored and activated in one commit (from the API or the
    CLI, or from ``policy_file`` at first start, by author ``file``); ``activated``: an
    older version made active again (a rollback). ``author`` wrote the version;
    ``actor`` made this change (the API key's id).
    """

    kind: ClassVar[str] = "policy_changed"
    version: ClassVar[int] = 1

    policy_version: PolicyNumber
    change: Literal["created", "activated"]
    digest: PolicyDigest
    author: Actor
    actor: Actor
    previous_version: PolicyNumber | None = None
    comment: Text | None = None
