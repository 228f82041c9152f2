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
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Table
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement

from authority.context import Services
from authority.errors import InvalidRequest
from authority.storage.sql.records import page

T = TypeVar("T")

MAX_CURSOR_LENGTH = 200
_TAG_LENGTH = 32
_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    after: tuple[int, str] | None  # (created_at, id) of the last row already seen


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
    if not created_at.isdigit() or not _ID.match(row_id):
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
            raise InvalidRequest("The limit parameter is invalid.")
        size = int(limit)
    after = decode_cursor(services, kind, cursor) if cursor is not None else None
    return PageRequest(size, after)


async def fetch_page(
    conn: AsyncConnection,
    services: Services,
    kind: str,
    table: Table,
    request: PageRequest,
    where: Sequence[ColumnElement[bool]] = (),
) -> tuple[Sequence[Row[Any]], str | None]:
    """One page of ``table`` rows matching ``where``, and the cursor of the next page."""
    rows, last = await page(conn, table, limit=request.limit, after=request.after, where=where)
    return rows, None if last is None else encode_cursor(services, kind, *last)
