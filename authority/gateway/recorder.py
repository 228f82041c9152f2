"""The gateway's recorder: every ``CallRecord`` posted to the authority, or no more calls.

``AuthorityRecorder.record`` puts the call in a bounded in-memory queue and returns;
workers post each record to the authority's ``/v1/gateway/calls``
(``authority.recordings``) with the gateway's own client credentials (HTTP Basic with
its secret, or a fresh RFC 7523 client assertion per attempt), retrying with a capped
exponential backoff until the authority acknowledges it. Each record carries a
``submission_id`` of its own, so a retry whose first answer was lost is stored once.

Fail closed: ``record`` raises ``RecorderUnavailable`` (and ``available`` is False) while
the oldest record not yet acknowledged has waited ``max_outage`` seconds or more, or
``queue_size`` records are waiting; the proxy then refuses new calls. It takes calls
again as soon as the backlog is acknowledged. A slow authority is the same as a down
one: a backlog that grows older than ``max_outage`` stops the calls.

The guarantee, precisely:

* a record is acknowledged only once the authority has committed its ledger entry and
  its sealed heads, in one transaction; acknowledged records are never lost;
* what ``record`` accepted is kept in this process's memory until acknowledged. A crash
  (the process killed, the host lost) loses the records not yet acknowledged: at most
  ``queue_size`` of them, all of calls that ended within the last ``max_outage`` seconds
  (plus one attempt's ``timeout``), and each of those calls has had its answer. Nothing
  is written to disk meanwhile;
* on ``close`` the backlog gets ``drain_timeout`` seconds; what is left is lost and
  counted in the log;
* a record the authority refuses as malformed (a 4xx other than for the gateway's
  credentials, rate or availability) cannot succeed on retry: it is dropped, logged with
  the authority's error and counted in ``rejected``, and does not stop the calls. The
  encoding below bounds and cleans every field (``document``) so that no content of a
  call can make its record malformed;
* a record is never stored twice, whatever is retried.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import httpx

from authority import protocol

from .contracts import CallRecord, RecordedBody, RecorderUnavailable

log = logging.getLogger("authority.gateway.recorder")

JWT_BEARER = protocol.JWT_BEARER_ASSERTION
#: What the authority accepts of each field (``recordings.submission``).
_SHORT, _LONG, _MASKING_RULES = 200, 2048, 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Answers that say nothing about the record: the credentials, the rate, the service.
_RETRY_STATUS = frozenset({401, 403, 404, 408, 425, 429})


@dataclass(frozen=True, slots=True)
class RecorderBounds:
    """The recorder's bounds (the gateway's settings)."""

    queue_size: int = 1000  # records waiting for the authority, at most
    max_outage: float = 10.0  # seconds the oldest waiting record may wait; then fail closed
    workers: int = 2  # concurrent submissions
    timeout: float = 5.0  # seconds per attempt
    retry_base: float = 0.05  # seconds before the first retry; doubled each time
    retry_max: float = 2.0  # longest wait between attempts
    max_head_bytes: int = 64 * 1024  # per side; at most the authority's recording bound
    drain_timeout: float = 5.0  # seconds ``close`` waits for the backlog


def _text(value: str, limit: int) -> str:
    """Printable, bounded, never empty: what the authority accepts of any call."""
    cleaned = _CONTROL.sub("\ufffd", value)[:limit]
    return cleaned or "-"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _body(body: RecordedBody | None, max_head: int) -> dict[str, Any] | None:
    if body is None:
        return None
    head = body.head[:max_head]
    return {
        "digest": body.digest,
        "size": body.size,
        "head": _b64url(head),
        "truncated": body.truncated or len(head) < len(body.head),
    }


def document(call: CallRecord, submission_id: str, max_head: int) -> dict[str, Any]:
    """The JSON form of ``call`` (``recordings.submission``), bounded and cleaned."""
    masked = {
        _text(name, _SHORT): max(0, int(count))
        for name, count in list(call.masked.items())[:_MASKING_RULES]
    }
    values: dict[str, Any] = {
        "submission_id": submission_id,
        "upstream": _text(call.upstream, _SHORT),
        "kind": call.kind,
        "method": _text(call.method, _SHORT),
        "target": _text(call.target, _LONG),
        "outcome": call.outcome,
        "status": min(max(call.status, 100), 599),
        "started_at": max(0.0, call.started_at),
        "duration_ms": max(0.0, call.duration_ms),
        "jti": call.jti,
        "agent_id": call.agent_id,
        "owner_id": call.owner_id,
        "delegation_id": call.delegation_id,
        "tool": None if call.tool is None else _text(call.tool, _SHORT),
        "resource": None if call.resource is None else _text(call.resource, _LONG),
        "action": None if call.action is None else _text(call.action, _SHORT),
        "request": _body(call.request, max_head),
        "response": _body(call.response, max_head),
        "masked": masked,
        "blocked_by": None if call.blocked_by is None else _text(call.blocked_by, _SHORT),
    }
    return {name: value for name, value in values.items() if value is not None}


@dataclass(slots=True)
class _Pending:
    submission_id: str
    document: dict[str, Any]
    queued_at: float


class AuthorityRecorder:
    """``gateway.contracts.Recorder`` that keeps every call in the authority's ledger."""

    def __init__(
        self,
        issuer: str,
        *,
        client_id: str,
        client_secret: str | None = None,
        assertion: Callable[[], str] | None = None,
        bounds: RecorderBounds | None = None,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (client_secret is None) == (assertion is None):
            raise ValueError("pass exactly one of client_secret and assertion")
        self._url = issuer.rstrip("/") + protocol.GATEWAY_CALLS_PATH
        self._client_id = client_id
        self._auth = (
            None
            if client_secret is None
            else httpx.BasicAuth(quote_plus(client_id), quote_plus(client_secret))
        )
        self._assertion = assertion
        self.bounds = bounds or RecorderBounds()
        self._http = http
        self._owns_http = http is None
        self._clock = clock
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        # Every record not yet acknowledged, queued or in flight, oldest first.
        self._unacked: dict[str, float] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._closed = False
        self.sent = 0
        self.rejected = 0
        self.retries = 0

    # --- the proxy's side -----------------------------------------------------------------
    @property
    def pending(self) -> int:
        return len(self._unacked)

    def _refusal(self) -> str | None:
        if self._closed:
            return "the recorder is closed"
        if len(self._unacked) >= self.bounds.queue_size:
            return "the recording queue is full"
        oldest = next(iter(self._unacked.values()), None)
        if oldest is not None and self._clock() - oldest >= self.bounds.max_outage:
            return "the authority has not taken records for too long"
        return None

    def available(self) -> bool:
        """Whether ``record`` would take a call now (the proxy asks before forwarding)."""
        return self._refusal() is None

    async def record(self, call: CallRecord) -> None:
        refusal = self._refusal()
        if refusal is not None:
            raise RecorderUnavailable(refusal)
        submission_id = secrets.token_urlsafe(18)
        queued_at = self._clock()
        body = document(call, submission_id, self.bounds.max_head_bytes)
        self._unacked[submission_id] = queued_at
        self._queue.put_nowait(_Pending(submission_id, body, queued_at))
        self.start()

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        if self._workers or self._closed:
            return
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False)
        self._workers = [
            asyncio.create_task(self._work(), name=f"recorder-{n}")
            for n in range(self.bounds.workers)
        ]

    async def flush(self) -> None:
        """Wait until every record taken is acknowledged or rejected (bound it with
        ``asyncio.timeout``: while the authority is down, it waits)."""
        await self._queue.join()

    async def close(self) -> int:
        """Stop taking calls, drain within ``drain_timeout``; the records lost."""
        self._closed = True
        if self._workers:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.bounds.drain_timeout):
                    await self.flush()
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        lost = len(self._unacked)
        if lost:
            log.error("%d call records were not acknowledged by the authority and are lost", lost)
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None
        return lost

    # --- the workers --------------------------------------------------------------------
    async def _work(self) -> None:
        http = self._http
        if http is None:  # start() made it before the workers
            raise RuntimeError("the recorder has no HTTP client")
        while True:
            pending = await self._queue.get()
            # Cancelled (``close``) before the answer: still unacknowledged, counted lost.
            await self._deliver(http, pending)
            self._unacked.pop(pending.submission_id, None)
            self._queue.task_done()

    async def _deliver(self, http: httpx.AsyncClient, pending: _Pending) -> None:
        delay = self.bounds.retry_base
        while True:
            try:
                outcome = await self._attempt(http, pending)
            except Exception as exc:  # e.g. the assertion could not be signed: try again
                log.warning("call record not delivered (%s); retrying", type(exc).__name__)
                outcome = None
            if outcome is not None:
                if outcome:
                    self.sent += 1
                else:
                    self.rejected += 1
                return
            self.retries += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.bounds.retry_max)

    async def _attempt(self, http: httpx.AsyncClient, pending: _Pending) -> bool | None:
        """True: stored; False: refused for good; None: try again."""
        body = pending.document
        if self._assertion is not None:
            body = {
                **body,
                "client_id": self._client_id,
                "client_assertion_type": JWT_BEARER,
                "client_assertion": self._assertion(),
            }
        try:
            response = await http.post(
                self._url,
                json=body,
                auth=self._auth or httpx.USE_CLIENT_DEFAULT,
                timeout=self.bounds.timeout,
            )
        except httpx.HTTPError as exc:
            log.warning("call record not delivered (%s); retrying", type(exc).__name__)
            return None
        if response.status_code in (200, 201):
            return True
        error, description = _error(response)
        if (
            response.status_code >= 500
            or response.status_code in _RETRY_STATUS
            or error == "invalid_client"
        ):
            log.warning("call record not taken (HTTP %d %s); retrying", response.status_code, error)
            return None
        log.error(
            "call record refused by the authority, dropped: HTTP %d %s: %s",
            response.status_code,
            error,
            description,
        )
        return False


def _error(response: httpx.Response) -> tuple[str | None, str | None]:
    try:
        value = response.json()
    except ValueError:
        return None, None
    if not isinstance(value, dict):
        return None, None
    error, description = value.get("error"), value.get("error_description")
    return (
        error if isinstance(error, str) else None,
        description if isinstance(description, str) else None,
    )
