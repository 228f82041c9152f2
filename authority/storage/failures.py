"""How storage says it cannot answer now, for the edges that must then fail closed.

``is_unavailable`` is true for a database that cannot be reached, timed out or dropped
the connection (through the engine or the hot path's driver), and for hot state that
cannot be reached: the caller answers 503 ``temporarily_unavailable`` and issues nothing.
Any other exception is a defect, not an outage.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from authority.storage.driver import UNAVAILABLE
from authority.storage.hot import HotStateUnavailable

__all__ = ["HotStateUnavailable", "database_unavailable"]

#: The engine's and the driver's ways of saying the database cannot answer now.
_DATABASE_DOWN: tuple[type[BaseException], ...] = (OperationalError, PoolTimeout, *UNAVAILABLE)


def database_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot answer now (not a defect)."""
    if isinstance(exc, _DATABASE_DOWN):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)
