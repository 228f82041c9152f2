"""What both kinds of upstream share: the upstream's checks and seams, one call's record,
and the refusals.

``Upstream`` bundles one configured upstream with its ``TokenGate`` (its own audience,
feed and introspection credentials), its credential, its HTTP client and the three
seams. ``CallLog`` builds the one ``CallRecord`` of each handled call and keeps the
recorder's state: once the recorder fails, every call is refused (503) until a record is
kept again (each refusal's own record is the probe), so nothing is forwarded unrecorded.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx2

from authority.gateway.config import GatewaySettings
from authority.gateway.config import Upstream as UpstreamConfig
from authority.gateway.contracts import (
    CallRecord,
    CommandPolicy,
    MaskingPolicy,
    Outcome,
    RecordedBody,
    Recorder,
    RecorderUnavailable,
)
from authority.gateway.credentials import UpstreamCredential
from authority.gateway.sessions import SessionBinding
from authority.gateway.streams import Scrubber
from authority.sdk.enforcement import Refusal, TokenGate, VerifiedToken
from authority.sdk.resource_metadata import ResourceMetadata

UNRECORDED = Refusal(503, "temporarily_unavailable", "The call cannot be recorded now.", False)


@dataclass
class Seams:
    """The implementations of ``gateway.contracts`` (any of them may be absent)."""

    recorder: Recorder | None = None
    masking: MaskingPolicy | None = None
    commands: CommandPolicy | None = None


class RecorderState:
    """Fail closed on recording: down while the recorder says it would refuse a record
    (asked before each call is forwarded, not only after one was refused), and from a
    failed record until one is kept again."""

    def __init__(self, recorder: Recorder | None) -> None:
        self.recorder = recorder
        self._failed = False

    @property
    def down(self) -> bool:
        if self.recorder is None:
            return False
        return self._failed or not self.recorder.available()

    async def keep(self, call: CallRecord) -> bool:
        if self.recorder is None:
            return True
        try:
            await self.recorder.record(call)
        except RecorderUnavailable:
            self._failed = True
            return False
        self._failed = False
        return True


@dataclass
class Upstream:
    config: UpstreamConfig
    settings: GatewaySettings
    gate: TokenGate
    metadata: ResourceMetadata
    credential: UpstreamCredential
    http: httpx2.AsyncClient
    seams: Seams
    recording: RecorderState
    sessions: SessionBinding = field(default_factory=SessionBinding)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def audience(self) -> str:
        return self.gate.audience

    def scrubber(self) -> Scrubber:
        return Scrubber(self.credential.secrets())

    def url_of(self, path: str) -> str:
        """The URL the agent called (DPoP ``htu``): the public URL, never a Host header."""
        return self.settings.public_url + path


@dataclass
class CallLog:
    """One call as it goes: who, what, and how it ended."""

    upstream: Upstream
    kind: Literal["http", "mcp"]
    method: str
    target: str
    started_at: float = field(default_factory=time.time)
    _t0: float = field(default_factory=time.perf_counter)
    token: VerifiedToken | None = None
    tool: str | None = None
    resource: str | None = None
    action: str | None = None
    request: RecordedBody | None = None
    response: RecordedBody | None = None
    masked: dict[str, int] = field(default_factory=dict)
    blocked_by: str | None = None

    def accepted(self, token: VerifiedToken) -> None:
        self.token = token
        self.tool, self.resource, self.action = token.tool, token.resource, token.action

    def count_masked(self, counts: Mapping[str, int]) -> None:
        for name, n in counts.items():
            self.masked[name] = self.masked.get(name, 0) + n

    def record(self, outcome: Outcome, status: int) -> CallRecord:
        token = self.token
        return CallRecord(
            upstream=self.upstream.name,
            kind=self.kind,
            method=self.method,
            target=self.target,
            outcome=outcome,
            status=status,
            started_at=self.started_at,
            duration_ms=(time.perf_counter() - self._t0) * 1000,
            jti=token.jti if token else None,
            agent_id=token.agent_id if token else None,
            owner_id=token.owner_id if token else None,
            delegation_id=token.delegation_id if token else None,
            tool=self.tool,
            resource=self.resource,
            action=self.action,
            request=self.request,
            response=self.response,
            masked=dict(self.masked),
            blocked_by=self.blocked_by,
        )

    async def finish(self, outcome: Outcome, status: int) -> bool:
        """Hand the record to the recorder; False when it could not be kept."""
        return await self.upstream.recording.keep(self.record(outcome, status))


def arguments_digest(token: VerifiedToken) -> str | None:
    """The ``arguments_digest`` of the token's one ``tool_call`` detail (RFC 9396), if any."""
    details = token.claims.get("authorization_details")
    if isinstance(details, list) and len(details) == 1 and isinstance(details[0], dict):
        value = details[0].get("arguments_digest")
        return value if isinstance(value, str) else None
    return None


def other_arguments(dpop: bool) -> Refusal:
    return Refusal(403, "insufficient_scope", "The token is for other arguments.", dpop)


def blocked(dpop: bool) -> Refusal:
    return Refusal(403, "insufficient_scope", "A command rule forbids this call.", dpop)


def bad_gateway() -> Refusal:
    return Refusal(502, "temporarily_unavailable", "The upstream did not answer.", False)


def resource_of(template: str, values: Mapping[str, Any]) -> str | None:
    """``template`` filled from ``values``; None when a name is missing or not a scalar."""
    scalars = {
        k: v for k, v in values.items() if isinstance(v, str | int) and not isinstance(v, bool)
    }
    try:
        return template.format_map(scalars)
    except (KeyError, ValueError, IndexError, AttributeError):
        return None
