"""The command line's side of this machine's own database: a command that only reads it
never brings a fresh one into being.

``operator_services`` migrates the embedded SQLite file into existence (and makes the
data directory and its secret key), which is right for ``admin bootstrap`` on a fresh
machine and wrong for ``admin list-keys`` run from the wrong directory: that would
answer "no keys" from an empty database it just made, and leave a ``var/`` behind.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from authority.settings import Settings

SQLITE_PREFIXES = ("sqlite+aiosqlite:///", "sqlite:///")


class MissingDatabase(Exception):
    """No database where the settings point: exit 2, nothing was created."""


def sqlite_file(settings: Settings) -> Path | None:
    """The embedded database's file, or None when the database is a server's."""
    url = settings.sqlalchemy_url
    for prefix in SQLITE_PREFIXES:
        if url.startswith(prefix):
            name = url[len(prefix) :].split("?", 1)[0]
            return None if name in ("", ":memory:") else Path(name)
    return None


def require_database(settings: Settings) -> None:
    """Refuse, naming where it looked, when the embedded database does not exist."""
    path = sqlite_file(settings)
    if path is None or path.is_file():
        return
    raise MissingDatabase(
        f"no database at {path} (data dir {settings.data_dir}): run this where the "
        "authority keeps its data, or pass --data-dir / set AUTHORITY_DATA_DIR or "
        "AUTHORITY_DATABASE_URL; nothing was created"
    )


def unavailable(exc: BaseException) -> str | None:
    """One line for a failure to use this machine's database or Redis, or None for any
    other exception (a bug keeps its traceback).

    Never the driver's message: SQLAlchemy's holds the statement, and a connection's can
    hold the DSN.
    """
    sqlalchemy = sys.modules.get("sqlalchemy.exc")
    redis = sys.modules.get("redis.exceptions")
    if sqlalchemy is not None and isinstance(exc, sqlalchemy.DBAPIError):
        cause = type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__
        if exc.connection_invalidated or isinstance(exc.orig, OSError) or _is_connect(exc):
            return f"cannot reach the database the settings name ({cause})"
        return (
            f"the database refused the command ({cause}): is its schema up to date "
            "(`authority migrate`)?"
        )
    if redis is not None and isinstance(exc, redis.RedisError):
        return f"cannot use Redis at the settings' AUTHORITY_REDIS_URL ({type(exc).__name__})"
    if isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
        return f"cannot reach the database or Redis the settings name ({reason})"
    return None


def _is_connect(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        if isinstance(cause, OSError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False
