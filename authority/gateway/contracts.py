"""What the gateway's proxy asks of its recorder, its masking and its command rules.

The proxy (``gateway.proxy`` and the upstream modules) forwards one call at a time; for
each it asks the command rules whether the call may run at all, masks what the upstream
answers before the agent sees it, and hands the recorder one ``CallRecord`` when the
call is over. These are the seams; the implementations are ``gateway.recorder``,
``gateway.masking`` and ``gateway.blocking``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Outcome = Literal["forwarded", "refused", "blocked", "upstream_error"]


@dataclass(frozen=True, slots=True)
class RecordedBody:
    """One side of a call as it passed the gateway (after masking, for a response)."""

    digest: str  # "sha-256:" + unpadded base64url SHA-256 of the whole body
    size: int  # bytes of the whole body
    head: bytes  # its first bytes, at most the recording bound
    truncated: bool  # True when ``head`` is not the whole body


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call the gateway handled, linked to the token (grant) that authorised it."""

    upstream: str  # the upstream's name in the gateway's configuration
    kind: Literal["http", "mcp"]
    method: str  # the HTTP method, or the JSON-RPC method (``tools/call``)
    target: str  # the request path, or the MCP tool name
    outcome: Outcome
    status: int  # the HTTP status the agent received
    started_at: float  # Unix time
    duration_ms: float
    jti: str | None = None  # the per-call token's id; None when no token was accepted
    agent_id: str | None = None
    owner_id: str | None = None
    delegation_id: str | None = None
    tool: str | None = None
    resource: str | None = None
    action: str | None = None
    request: RecordedBody | None = None
    response: RecordedBody | None = None
    #: What masking replaced, by rule or detector name: counts, never the values.
    masked: Mapping[str, int] = field(default_factory=dict)
    #: The command rule that blocked the call (outcome "blocked").
    blocked_by: str | None = None


class RecorderUnavailable(Exception):
    """The recording cannot be kept: the proxy refuses further calls (fail closed)."""


class Recorder(Protocol):
    def available(self) -> bool:
        """Whether ``record`` would keep a call now: the proxy asks before it forwards."""

    async def record(self, call: CallRecord) -> None:
        """Keep ``call``; raises ``RecorderUnavailable`` when it cannot be kept."""


class JsonMasker(Protocol):
    """Masks JSON values (a JSON body, one JSON-RPC message of an SSE stream)."""

    def mask(self, value: Any) -> Any:
        """``value`` with every matched field and detected secret replaced."""

    @property
    def counts(self) -> Mapping[str, int]:
        """What fired so far, by rule or detector name."""


class StreamMasker(Protocol):
    """Masks a byte stream chunk by chunk (a secret split across chunks included)."""

    def feed(self, chunk: bytes) -> bytes:
        """The masked bytes that can be released now (some may be held back)."""

    def finish(self) -> bytes:
        """The masked rest, at the end of the stream."""

    @property
    def counts(self) -> Mapping[str, int]: ...


class MaskingPolicy(Protocol):
    def json_masker(self, tool: str | None) -> JsonMasker: ...

    def stream_masker(self, tool: str | None) -> StreamMasker: ...


class CommandPolicy(Protocol):
    def blocks(self, tool: str, arguments: Mapping[str, Any]) -> str | None:
        """The name of the rule that forbids this call, or None to let it run."""
