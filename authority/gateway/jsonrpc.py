"""JSON-RPC 2.0 as the gateway reads it from an MCP client, and Server-Sent Events as it
re-writes them from an MCP server (MCP Streamable HTTP, 2025-03-26 to 2026-07-28).

``classify`` turns one POST body into a ``Message`` or a ``RpcRefusal``: a batch is
refused (MCP 2025-06-18 removed batching; 2026-07-28: "Body must be a single JSON-RPC
request or notification object"), and so is any method the gateway does not know, before
anything is forwarded. ``SseEvents`` splits an event stream into events as the HTML
standard's interpretation rules delimit them, each at most ``limit`` bytes.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from authority.gateway.streams import loads_unique

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INTERNAL_ERROR: Final = -32603
HEADER_MISMATCH: Final = -32020
#: Implementation-defined codes (MCP reserves -32000..-32019 for implementations).
UNAUTHORIZED: Final = -32010  # 401: no token, or not a valid one
FORBIDDEN: Final = -32011  # 403: the token is for another call, or a rule forbids it
UNAVAILABLE: Final = -32012  # 503/502: the authority, the recorder or the upstream

#: What a client calls, with the name of the parameter that names the callee.
CALLS: Final[Mapping[str, str]] = {
    "tools/call": "name",
    "prompts/get": "name",
    "resources/read": "uri",
}
#: The lists the gateway filters to what the delegation covers, and their result member.
LISTS: Final[Mapping[str, str]] = {
    "tools/list": "tools",
    "prompts/list": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
}
#: Requests that concern the session, not a call: authorised by the session token.
SESSION_REQUESTS: Final = frozenset(
    {"initialize", "ping", "server/discover", "logging/setLevel", "subscriptions/listen", *LISTS}
)
SESSION_NOTIFICATIONS: Final = frozenset(
    {
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
    }
)
MAX_ID_LENGTH: Final = 256


@dataclass(frozen=True, slots=True)
class Message:
    kind: Literal["request", "notification", "response"]
    id: str | int | None
    method: str | None
    params: Mapping[str, Any]

    @property
    def callee(self) -> str | None:
        """The tool or prompt name, or the resource URI, of a call."""
        key = CALLS.get(self.method or "")
        value = self.params.get(key) if key else None
        return value if isinstance(value, str) else None

    @property
    def arguments(self) -> Any:
        """What the call's ``arguments_digest`` is over: the ``arguments`` object of a
        tool call or prompt (``{}`` when absent), ``{"uri": uri}`` for a resource read."""
        if self.method == "resources/read":
            return {"uri": self.callee}
        value = self.params.get("arguments")
        return {} if value is None else value


class RpcRefusal(Exception):
    def __init__(self, status: int, code: int, message: str, id: str | int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.id = status, code, message, id


def _id(value: Any) -> str | int | None:
    if isinstance(value, bool) or value is None:
        raise RpcRefusal(400, INVALID_REQUEST, "The request id is invalid.")
    if isinstance(value, int) or (isinstance(value, str) and len(value) <= MAX_ID_LENGTH):
        return value
    raise RpcRefusal(400, INVALID_REQUEST, "The request id is invalid.")


def classify(body: bytes) -> Message:
    """The one JSON-RPC message of a POST body, or ``RpcRefusal``."""
    try:
        value = loads_unique(body)
    except (ValueError, RecursionError):
        raise RpcRefusal(400, PARSE_ERROR, "Parse error.") from None
    if isinstance(value, list):
        raise RpcRefusal(400, INVALID_REQUEST, "Batches are not accepted.")
    if not isinstance(value, dict) or value.get("jsonrpc") != "2.0":
        raise RpcRefusal(400, INVALID_REQUEST, "The body is not one JSON-RPC message.")
    method = value.get("method")
    params = value.get("params", {})
    if not isinstance(params, dict):
        params = {}
    if method is None:
        if "id" in value and ("result" in value or "error" in value):
            return Message("response", _id(value["id"]), None, {})
        raise RpcRefusal(400, INVALID_REQUEST, "The body is not one JSON-RPC message.")
    if not isinstance(method, str):
        raise RpcRefusal(400, INVALID_REQUEST, "The method is invalid.")
    if "id" not in value:
        if method not in SESSION_NOTIFICATIONS:
            raise RpcRefusal(400, METHOD_NOT_FOUND, "Unknown notification.")
        return Message("notification", None, method, params)
    request_id = _id(value["id"])
    if method not in CALLS and method not in SESSION_REQUESTS:
        raise RpcRefusal(404, METHOD_NOT_FOUND, "Method not found.", request_id)
    return Message("request", request_id, method, params)


_BASE64 = re.compile(r"^=\?base64\?(?P<payload>.*)\?=$")


def decode_header_value(value: str) -> str | None:
    """A 2026-07-28 routing header's value: verbatim, or the UTF-8 inside the
    ``=?base64?...?=`` form a client uses for values that are not plain ASCII; None for
    a malformed one (which then matches nothing)."""
    found = _BASE64.fullmatch(value)
    if found is None:
        return value
    payload = found.group("payload")
    try:
        decoded = base64.b64decode(payload, validate=True)
        if base64.b64encode(decoded).decode("ascii") != payload:
            return None
        return decoded.decode("utf-8")
    except ValueError:  # binascii.Error, a non-ASCII payload, UnicodeDecodeError
        return None


def error_body(code: int, message: str, request_id: str | int | None) -> bytes:
    error = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
    return json.dumps(error, separators=(",", ":")).encode()


# --- Server-Sent Events ----------------------------------------------------------------
class EventTooLarge(Exception):
    pass


@dataclass(slots=True)
class Event:
    """One event: its lines as sent, and its data (the joined ``data`` fields)."""

    lines: list[bytes]
    data: bytes | None

    def with_data(self, data: bytes) -> bytes:
        """The event again, its ``data`` fields replaced by one with ``data``."""
        out: list[bytes] = []
        placed = False
        for line in self.lines:
            if line.startswith(b"data:") or line == b"data":
                if not placed:
                    out.append(b"data: " + data)
                    placed = True
                continue
            out.append(line)
        return b"\n".join(out) + b"\n\n"

    def raw(self) -> bytes:
        return b"\n".join(self.lines) + b"\n\n"


class SseEvents:
    """Bytes in, complete events out (CRLF, LF and CR line ends alike)."""

    def __init__(self, limit: int) -> None:
        self._buffer = b""
        self._limit = limit

    def feed(self, chunk: bytes) -> Iterator[Event]:
        data = self._buffer + chunk
        data = data.replace(b"\r\n", b"\n")
        # A lone CR at the very end may be half of a CRLF: keep it for the next chunk.
        tail = b"\r" if data.endswith(b"\r") else b""
        data = data[: len(data) - len(tail)].replace(b"\r", b"\n")
        while True:
            end = data.find(b"\n\n")
            if end < 0:
                break
            block, data = data[:end], data[end + 2 :]
            if block:
                yield _event(block)
        self._buffer = data + tail
        if len(self._buffer) > self._limit:
            raise EventTooLarge

    def rest(self) -> Iterator[Event]:
        block = self._buffer.replace(b"\r", b"\n").strip(b"\n")
        self._buffer = b""
        if block:
            yield _event(block)


def _event(block: bytes) -> Event:
    lines = block.split(b"\n")
    data_parts = []
    for line in lines:
        if line.startswith(b"data:"):
            value = line[5:]
            data_parts.append(value[1:] if value.startswith(b" ") else value)
        elif line == b"data":
            data_parts.append(b"")
    return Event(lines, b"\n".join(data_parts) if data_parts else None)
