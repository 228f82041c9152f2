"""Keyset pagination for the management API's lists: ``?limit=&cursor=``.

Rows are ordered by (created_at, id), which never changes for a row, so a cursor stays
valid while rows are added and a page never repeats or skips one. The cursor is the last
row's position, tagged with the instance's HMAC key and the collection it belongs to: it
is opaque to clients, and a forged or edited cursor is refused instead of being trusted.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from authority.context import Services
from authority.errors import InvalidRequest
from authority.secrets import valid_id
from authority.storage.registry import Position, RowPage

T = TypeVar("T")
R = TypeVar("R")

MAX_CURSOR_LENGTH = 200
_TAG_LENGTH = 32


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    after: Position | None  # (created_at, id) of the last row already seen


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def _tag(services: Services, kind: str, payload: str) -> str:
    return services.hasher.hash(f"cursor:{kind}:{payload}")[:_TAG_LENGTH]


def encode_cursor(services: Services, kind: str, created_at: int, row_id: str) -> str:
    payload = f"{created_at}.{row_id}"
    encoded = base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()
    return f"{encoded}.{_tag(services, kind, payload)}"


def decode_cursor(services: Services, kind: str, cursor: str) -> tuple[int, str]:
    invalid = InvalidRequest("The cursor parameter is invalid.")
    if len(cursor) > MAX_CURSOR_LENGTH or cursor.count(".") != 1:
        raise invalid
    encoded, tag = cursor.split(".")
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise invalid from None
    if not hmac.compare_digest(tag.encode(), _tag(services, kind, payload).encode()):
        raise invalid
    created_at, _, row_id = payload.partition(".")
    if not created_at.isdigit() or not valid_id(row_id):
        raise invalid
    return int(created_at), row_id


def page_request(
    services: Services, kind: str, *, limit: str | None, cursor: str | None
) -> PageRequest:
    """Validate the raw ``limit`` and ``cursor`` query parameters of a list of ``kind``."""
    settings = services.settings
    size = settings.page_size_default
    if limit is not None:
        digits = limit.isascii() and limit.isdigit() and len(limit) <= 6
        if not digits or not 1 <= int(limit) <= settings.page_size_max:
            raise InvalidRequest(
                f"The limit parameter must be an integer between 1 and {settings.page_size_max}."
            )
        size = int(limit)
    after = decode_cursor(services, kind, cursor) if cursor is not None else None
    return PageRequest(size, after)


def cursor_after(services: Services, kind: str, last: Position | None) -> str | None:
    """The cursor of the page after the row at ``last``; None when no row follows."""
    return None if last is None else encode_cursor(services, kind, *last)


def page_of(services: Services, kind: str, rows: RowPage[R], view: Callable[[R], T]) -> Page[T]:
    """A port's page of ``kind`` rows as the API shows it, with the next page's cursor."""
    return Page([view(row) for row in rows.rows], cursor_after(services, kind, rows.last))
