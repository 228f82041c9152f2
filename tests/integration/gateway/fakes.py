"""Small stand-ins for the gateway's seams (``authority.gateway.contracts``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from authority.gateway.contracts import CallRecord, RecorderUnavailable
from tests.integration.gateway.upstreams import SECRET_MARK

MASK = "[masked]"


class _JsonMasker:
    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def mask(self, value: Any) -> Any:
        if isinstance(value, str) and SECRET_MARK in value:
            self._counts["secret-mark"] = self._counts.get("secret-mark", 0) + 1
            return value.split(SECRET_MARK)[0] + MASK
        if isinstance(value, list):
            return [self.mask(v) for v in value]
        if isinstance(value, dict):
            return {k: self.mask(v) for k, v in value.items()}
        return value

    @property
    def counts(self) -> Mapping[str, int]:
        return self._counts


class _StreamMasker:
    """Replaces SECRET_MARK and the 3 characters after it (good enough for the tests)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._held + chunk
        mark = SECRET_MARK.encode()
        out = b""
        while True:
            at = data.find(mark)
            if at < 0 or at + len(mark) + 3 > len(data):
                break
            out += data[:at] + MASK.encode()
            data = data[at + len(mark) + 3 :]
            self._counts["secret-mark"] = self._counts.get("secret-mark", 0) + 1
        keep = len(mark) + 3
        out += data[: max(0, len(data) - keep)]
        self._held = data[max(0, len(data) - keep) :]
        return out

    def finish(self) -> bytes:
        rest, self._held = self._held, b""
        return rest

    @property
    def counts(self) -> Mapping[str, int]:
        return self._counts


class FakeMasking:
    def json_masker(self, tool: str | None) -> _JsonMasker:
        return _JsonMasker()

    def stream_masker(self, tool: str | None) -> _StreamMasker:
        return _StreamMasker()


@dataclass
class FakeCommands:
    """Forbids any argument value containing ``rm -rf``."""

    seen: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def blocks(self, tool: str, arguments: Mapping[str, Any]) -> str | None:
        self.seen.append((tool, dict(arguments)))
        if any(isinstance(v, str) and "rm -rf" in v for v in arguments.values()):
            return "no-recursive-delete"
        return None


@dataclass
class FakeRecorder:
    calls: list[CallRecord] = field(default_factory=list)
    failing: bool = False
    #: Says it would keep a call, then fails to (the store went down in between).
    fails_late: bool = False

    def available(self) -> bool:
        return not self.failing

    async def record(self, call: CallRecord) -> None:
        if self.failing or self.fails_late:
            raise RecorderUnavailable("the store is down")
        self.calls.append(call)
