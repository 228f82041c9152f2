"""Opening an asyncpg connection from the authority's PostgreSQL URL, one host or several.

Shared by the engine (``storage.database``) and the hot path's driver
(``storage.postgres_driver``) so that both read the URL alike: SQLAlchemy's dialect turns
it into asyncpg's arguments, a list of hosts (``?host=h1:p1&host=h2:p2``, which the
settings make of libpq's ``h1:p1,h2:p2``) and ``target_session_attrs`` included.

With several hosts each is tried in turn with a share of the timeout of its own. asyncpg
bounds its own attempt over the whole list: a first host that drops packets (powered off,
partitioned) would spend all of it, and the next host, the new primary, would never be
tried.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy import make_url
from sqlalchemy.dialects.postgresql import asyncpg as pg_dialect

#: URL options SQLAlchemy's dialect reads for itself, which asyncpg.connect does not take.
_ENGINE_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func", "async_fallback")
#: A host that fails this way is passed over for the next one.
_NEXT_HOST: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.TargetServerAttributeNotMatched,  # a standby, for target_session_attrs
    asyncpg.CannotConnectNowError,  # starting up or shutting down
)


def connect_options(url: str) -> dict[str, Any]:
    """asyncpg.connect's arguments for ``url``, as SQLAlchemy's dialect reads it."""
    _, options = pg_dialect.dialect().create_connect_args(make_url(url))  # type: ignore[no-untyped-call]
    for engine_only in _ENGINE_ONLY:
        options.pop(engine_only, None)
    return dict(options)


def several_hosts(url: str) -> bool:
    return isinstance(connect_options(url).get("host"), list)


def connector(
    url: str, *, timeout: float | None, **extra: Any
) -> Callable[[], Awaitable[asyncpg.Connection]]:
    """A function opening one connection (``extra``: more asyncpg.connect arguments)."""
    options = connect_options(url) | extra
    hosts, ports = options.pop("host", None), options.pop("port", None)
    if not isinstance(hosts, list):

        async def connect_one() -> asyncpg.Connection:
            return await asyncpg.connect(host=hosts, port=ports, timeout=timeout, **options)

        return connect_one
    addresses = list(zip(hosts, ports, strict=True))
    share = None if timeout is None else timeout / len(addresses)

    async def connect_first() -> asyncpg.Connection:
        failure: BaseException | None = None
        for host, port in addresses:
            try:
                return await asyncpg.connect(host=host, port=port, timeout=share, **options)
            except _NEXT_HOST as exc:
                failure = exc
        if failure is None:  # an empty list cannot be written in the URL
            raise ConnectionError("no PostgreSQL host to connect to")
        raise failure

    return connect_first
