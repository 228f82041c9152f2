"""The Cedar policy as stored versions: their digest, checking a new text, their entries.

Policies are code with a history: each text is stored once as a numbered, immutable
version (``storage.policies``) with its author, a comment and the SHA-256 digest of its
UTF-8 bytes (``sha-256:`` and unpadded base64url, as the arguments' digest); one version
is active. Creating a version activates it; activating an older one is a rollback. Each
is a ``policy_changed`` entry (``ledger.policy_entries``) in the commit that makes it.

At first start with no version stored, ``policy_file`` becomes version 1 (author
``file``); afterwards the stored versions rule and the file is only compared with the
active version, with a warning when they differ. Without a file and without a stored
version the built-in default (``default.cedar``, no policies) decides, recorded as
version 0 (``BUILT_IN``).

A text that does not parse is refused with a description that never quotes it: cedarpy's
messages quote the tokens they stumbled on (a value the text held), so only their shape
is kept, with the line where the text stops parsing, found here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from pathlib import Path
from typing import Any, Final

import cedarpy

from authority.errors import InvalidRequest
from authority.ledger.entries import Entry
from authority.policy.active import BUILT_IN as BUILT_IN
from authority.policy.cedar import (
    DEFAULT_POLICY_FILE,
    MAX_TEXT_BYTES,
    CedarPolicy,
    PolicyError,
    PolicyRefused,
    decoded,
    refusal,
    shape,
)
from authority.storage.policies import ChangeEntry, NewPolicy, PolicyStore, PolicyVersion

log = logging.getLogger("authority.policy")

KIND: Final = "policy_changed"
VERSION: Final = 1
#: The author of the version made from ``policy_file`` at first start.
FILE_AUTHOR: Final = "file"
MAX_COMMENT: Final = 1000
_END_OF_INPUT = "unexpected end of input"


def digest(text: str) -> str:
    raw = hashlib.sha256(text.encode("utf-8")).digest()
    return "sha-256:" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _parses(text: str) -> str | None:
    """cedarpy's message for ``text``, or None when it parses (as ``CedarPolicy`` does)."""
    try:
        cedarpy.policies_to_json_str(text)
        cedarpy.PolicySet.from_str(text)
    except ValueError as exc:
        return str(exc)
    return None


def _fails_early(lines: list[str], count: int) -> bool:
    message = _parses("\n".join(lines[:count]))
    return message is not None and not message.startswith(_END_OF_INPUT)


def _failing_line(lines: list[str]) -> int | None:
    """The first line at which the text stops parsing: the shortest prefix of whole lines
    that fails for another reason than ending early (a prefix that does keeps failing as
    it grows, so it is searched by halving: a few parses, however long the text). None:
    it fails only at its end."""
    if not lines or not _fails_early(lines, len(lines)):
        return None
    low, high = 1, len(lines)
    while low < high:
        middle = (low + high) // 2
        if _fails_early(lines, middle):
            high = middle
        else:
            low = middle + 1
    return low


def compile_text(text: str) -> CedarPolicy:
    """The parsed policy of a text sent to the API; ``InvalidRequest`` (400) naming where
    and what kind of error, never the text, for one that does not parse."""
    if "\x00" in text:
        raise InvalidRequest("The policy text may not contain NUL characters.")
    refused = refusal(text)  # before any cedarpy call: deep nesting crashes its parser
    if refused is not None:
        raise InvalidRequest(refused)
    message = _parses(text)
    if message is None:
        try:
            return CedarPolicy(text)
        except PolicyRefused as exc:
            raise InvalidRequest(str(exc)) from None
    line = _failing_line(text.splitlines())
    where = f"at line {line}" if line is not None else "at its end"
    raise InvalidRequest(f"The policy text is not valid Cedar {where}: {shape(message)}.")


def change_entry(
    *,
    now: int,
    actor: str,
    change: str,
    comment: str | None = None,
) -> ChangeEntry:
    """The ``ChangeEntry`` (``storage.policies``) of a creation or an activation."""

    def entry(info: PolicyVersion, previous: int | None) -> Entry:
        record: dict[str, Any] = {
            "policy_version": info.version,
            "change": change,
            "digest": info.digest,
            "author": info.author,
            "actor": actor,
            "previous_version": previous,
            "comment": comment,
        }
        return (KIND, VERSION, now, record)

    return entry


def _read_capped(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(MAX_TEXT_BYTES + 1)


async def seed_from_file(store: PolicyStore, path: Path | None, *, now: int) -> None:
    """At start: the file becomes version 1 if no version is stored; otherwise a file
    that differs from the active version is a warning. A file that cannot be read or
    does not parse stops start-up, as before versions were stored."""
    if path is None:
        CedarPolicy.from_file(DEFAULT_POLICY_FILE)  # the built-in default parses
        return
    try:
        raw = await asyncio.to_thread(_read_capped, path)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a usable path"
        raise PolicyError(f"cannot read the Cedar policy file {path}: {reason}") from None
    text = decoded(raw, path)
    CedarPolicy(text)
    new = NewPolicy(text, digest(text), FILE_AUTHOR, f"from {path.name}"[:MAX_COMMENT], now)
    entry = change_entry(now=now, actor=FILE_AUTHOR, change="created", comment=new.comment)
    created = await store.create(new, actor=FILE_AUTHOR, entry=entry, only_first=True)
    if created is not None:
        log.info("the Cedar policy file is stored as policy version %d", created.version)
        return
    active = await store.active_version()
    stored = await store.get(active) if active is not None else None
    if stored is not None and stored.info.digest != new.digest:
        log.warning(
            "policy_file differs from the active policy version %d, which decides: the "
            "stored versions rule after the first start ('authority policy set FILE' "
            "stores the file as a new version)",
            stored.info.version,
        )
