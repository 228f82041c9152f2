"""The storage port of call recording: a gateway's record of one call, and the auditor's reads.

``lookup`` reads, in one query, the submitting resource server's registration and the
grant of the call's token (by ``jti``); ``record`` writes the call's ``gateway_call``
ledger entry and its sealed heads in one transaction, once per submission id of a
server however many resubmissions race; ``get`` and ``of_grant`` read recordings back
with their entries; ``sweep`` deletes the heads of recordings older than a time.

The heads reach the port sealed (``recordings.sealing``) and leave it sealed: the port
never sees a body in clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from authority.ledger.entries import Entry


@dataclass(frozen=True, slots=True)
class SubmissionFacts:
    """The caller's registration and the grant of the call's token, as stored now.

    Every member is None when its row does not exist. The ``rs_`` members are those
    ``grants.client_auth.server_from_row`` reads.
    """

    rs_id: str | None
    rs_audience: str | None
    rs_auth_method: str | None
    rs_secret_hash: str | None
    rs_jwks: str | None
    rs_status: str | None
    grant_id: str | None
    decision: str | None
    grant_audience: str | None
    agent_id: str | None
    owner_id: str | None
    delegation_id: str | None
    tool: str | None
    resource: str | None
    action: str | None


@dataclass(frozen=True, slots=True)
class NewRecording:
    """A recording to store: the call's id (named by its entry) and its sealed heads."""

    id: str
    created_at: int
    server_id: str
    submission_id: str
    grant_id: str | None
    jti: str | None
    request_head: bytes | None  # sealed
    response_head: bytes | None  # sealed


@dataclass(frozen=True, slots=True)
class Recorded:
    """The call id the submission is stored under; ``created`` False for a resubmission."""

    call_id: str
    created: bool


@dataclass(frozen=True, slots=True)
class StoredRecording:
    """A recording with its ledger entry (and its leaf, once sequenced)."""

    id: str
    created_at: int
    server_id: str
    grant_id: str | None
    jti: str | None
    request_head: bytes | None  # sealed; None when there was none or it was swept
    response_head: bytes | None
    swept_at: int | None
    entry_body: str
    leaf_index: int | None
    leaf_hash: bytes | None


class RecordingStore(Protocol):
    async def lookup(self, client_id: str, jti: str) -> SubmissionFacts:
        """The facts for the resource server ``client_id`` and the grant of ``jti``."""

    async def record(self, recording: NewRecording, entry: Entry) -> Recorded:
        """Store ``recording`` and append ``entry`` (its ``gateway_call``) in one transaction.

        Once per (server, submission id): when that server's submission id is stored
        already, nothing is written and the stored call's id is returned with
        ``created`` False, for exactly all but one of any number of racing writers.
        """

    async def get(self, call_id: str) -> StoredRecording | None:
        """The recording of ``call_id``, or None."""

    async def of_grant(
        self,
        *,
        grant_id: str | None = None,
        jti: str | None = None,
        after: tuple[int, str] | None,
        limit: int,
    ) -> list[StoredRecording]:
        """Up to ``limit`` recordings of the grant ``grant_id`` (or of the token ``jti``),
        in (created_at, id) order after the position ``after``."""

    async def sweep(self, before: int, *, now: int, limit: int) -> int:
        """Delete the heads of up to ``limit`` unswept recordings created before ``before``,
        stamping them swept at ``now``; how many were swept."""
