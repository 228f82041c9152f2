"""The hot statements reach their rows by index, not by reading a whole table: checked
with SQLite's own query plan on a migrated database (what ``authority migrate`` builds)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy.dialects import sqlite

from authority.storage.compiled import Compiled
from authority.storage.database import migrate
from authority.storage.sql import introspection


async def test_introspection_lists_the_callers_tools_by_index(tmp_path: Path) -> None:
    """Every introspection names the caller's active tools (its ``rs_tools``): found by
    the tools' resource server, whatever the number of tools registered."""
    path = tmp_path / "plans.db"
    await migrate(f"sqlite+aiosqlite:///{path}")
    compiled = Compiled.of(introspection._QUERY, sqlite.dialect(paramstyle="qmark"))
    with sqlite3.connect(path) as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN " + compiled.sql, [None] * len(compiled.names)
        ).fetchall()
    steps = [str(row[-1]) for row in plan]
    assert not any(step.startswith("SCAN") and "own_tools" in step for step in steps), steps
    assert any("own_tools USING" in step and "ix_tools_server_status" in step for step in steps)
