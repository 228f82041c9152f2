"""Offline verification of call recordings against the ledger they claim to be in.

A recording (``GET /v1/recordings/{call_id}``: its ``gateway_call`` entry and the heads
of the call's bodies, ``authority.recordings.audit``) is checked, in the same pass as the
export (``verify.verify_lines``, through its ``observe`` hook), for each of these:

* its entry is in the ledger: the export's line at its ``leaf_index`` has exactly its
  body, and that leaf is covered by a verified checkpoint (an unsigned tail, even an
  allowed one, vouches for nothing);
* the entry is a ``gateway_call`` of that call id;
* each head hashes to the ``head_digest`` the entry records and has its ``head_size``;
  a head that is not truncated is the whole body, so it also hashes to the body's
  ``digest``; a head the entry does not record, or one missing from a recording still
  within retention, fails.

A recording past retention has no heads: its entry alone is checked. Recordings are
held in memory (they are a handful an audit asks about); the export still streams.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from .gateway_entries import CallBodyV1, GatewayCallV1, body_digest
from .schemas import MalformedEntry, parse_body
from .verify import Report, VerificationFailed

#: The most recordings one run checks.
MAX_RECORDINGS = 100_000


class UnreadableRecordings(ValueError):
    """The recordings document is not one the auditor API writes: nothing was checked."""


@dataclass(frozen=True, slots=True)
class Recording:
    position: int  # its place in the document, from 1
    call_id: str
    leaf_index: int | None
    body: str
    retained: bool
    unreadable: tuple[str, ...]
    request_head: str | None  # base64url, as exported
    response_head: str | None


def recording_items(document: Any) -> list[Any]:
    """The recordings of a file: one recording, a list, or ``{"items": [...]}``."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict) and isinstance(document.get("items"), list):
        items: list[Any] = document["items"]
        return items
    return [document]


def _text(item: dict[str, Any], name: str, position: int) -> str | None:
    value = item.get(name)
    if value is not None and not isinstance(value, str):
        raise UnreadableRecordings(f"recording #{position}: {name} is not a string")
    return value


def parse_recordings(document: Any) -> list[Recording]:
    items = recording_items(document)
    if len(items) > MAX_RECORDINGS:
        raise UnreadableRecordings(f"more than {MAX_RECORDINGS} recordings")
    found = []
    for position, item in enumerate(items, start=1):
        entry = item.get("entry") if isinstance(item, dict) else None
        if not isinstance(item, dict) or not isinstance(entry, dict):
            raise UnreadableRecordings(f"recording #{position} is not a recording")
        call_id, body = _text(item, "call_id", position), _text(entry, "body", position)
        index = entry.get("leaf_index")
        unreadable = item.get("unreadable", [])
        if call_id is None or body is None or not isinstance(unreadable, list):
            raise UnreadableRecordings(f"recording #{position} has no call_id or entry body")
        if index is not None and (type(index) is not int or index < 0):
            raise UnreadableRecordings(f"recording #{position}: leaf_index is not an index")
        found.append(
            Recording(
                position,
                call_id,
                index,
                body,
                item.get("retained") is not False,
                tuple(str(name) for name in unreadable),
                _text(item, "request_head", position),
                _text(item, "response_head", position),
            )
        )
    return found


class RecordingsCheck:
    """Collects the entries the recordings name during the export's pass, then checks."""

    def __init__(self, recordings: list[Recording]) -> None:
        self._recordings = recordings
        self._wanted = {r.leaf_index for r in recordings if r.leaf_index is not None}
        self._bodies: dict[int, str] = {}

    def observe(self, index: int, line: str) -> None:
        if index in self._wanted:
            body = orjson.loads(line).get("body")  # a checked line: an object with a body
            self._bodies[index] = body

    def finish(self, report: Report) -> tuple[int, int]:
        """(recordings verified, of which past retention); ``VerificationFailed`` else."""
        past = 0
        for recording in sorted(self._recordings, key=lambda r: (r.leaf_index or 0, r.position)):
            record = self._entry(recording, report)
            if recording.retained:
                self._heads(recording, record)
            else:
                past += 1
        return len(self._recordings), past

    @staticmethod
    def _fail(recording: Recording, message: str) -> VerificationFailed:
        return VerificationFailed(
            recording.leaf_index or 0,
            f"recording #{recording.position} (call {recording.call_id!r}): {message}",
        )

    def _entry(self, recording: Recording, report: Report) -> GatewayCallV1:
        index = recording.leaf_index
        if index is None:
            raise self._fail(recording, "its entry has no leaf index: it is not in the ledger")
        if index >= report.entries:
            raise self._fail(
                recording,
                f"its entry (leaf {index}) is not covered by a verified checkpoint (the "
                f"verified tree has {report.entries} entries)",
            )
        if self._bodies.get(index) != recording.body:
            raise self._fail(recording, f"its entry is not the ledger's entry at leaf {index}")
        try:
            _, record = parse_body(recording.body)
        except MalformedEntry as exc:  # cannot happen: the export's line verified
            raise self._fail(recording, f"its entry does not match its schema: {exc}") from None
        if not isinstance(record, GatewayCallV1) or record.call_id != recording.call_id:
            raise self._fail(recording, "its entry is not the gateway_call of this call")
        return record

    def _heads(self, recording: Recording, record: GatewayCallV1) -> None:
        if recording.unreadable:
            raise self._fail(
                recording, f"the authority could not open {', '.join(recording.unreadable)}"
            )
        for side, text, recorded in (
            ("request", recording.request_head, record.request),
            ("response", recording.response_head, record.response),
        ):
            self._head(recording, side, text, recorded)

    def _head(
        self, recording: Recording, side: str, text: str | None, recorded: CallBodyV1 | None
    ) -> None:
        if recorded is None:
            if text is not None:
                raise self._fail(recording, f"it has a {side} head its entry does not record")
            return
        if text is None:
            raise self._fail(recording, f"its {side} head is missing within retention")
        try:
            head = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise self._fail(recording, f"its {side} head is not base64url") from None
        if len(head) != recorded.head_size or body_digest(head) != recorded.head_digest:
            raise self._fail(
                recording, f"its {side} head does not match the digest its entry records"
            )
        if not recorded.truncated and body_digest(head) != recorded.digest:
            raise self._fail(
                recording, f"its {side} head is not truncated but is not the body its entry records"
            )
