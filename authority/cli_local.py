"""The command line's side of this machine's own database: a command that only reads it
never brings a fresh one into being.

``operator_services`` migrates the embedded SQLite file into existence (and makes the
data directory and its secret key), which is right for ``admin bootstrap`` on a fresh
machine and wrong for ``admin list-keys`` run from the wrong directory: that would
answer "no keys" from an empty database it just made, and leave a ``var/`` behind.
"""

from __future__ import annotations

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
