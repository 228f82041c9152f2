"""Core statements compiled once per dialect into SQL with positional parameters.

The driver (``storage.driver``) runs the hot path's statements on sqlite3 or asyncpg
directly; what lets it keep SQLAlchemy Core as the one way statements are written is
this: each statement is compiled by SQLAlchemy's compiler for the dialect once, and then
only its SQL and its parameter order are used. Kept apart from the drivers so that both
share one compilation and one row type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler

#: Most compiled statements a driver keeps (the hot path has about a dozen).
MAX_STATEMENTS = 256


class Row(dict[str, Any]):
    """One result row: ``row["agent_id"]`` or ``row.agent_id``."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True, slots=True)
class Compiled:
    """A Core statement as SQL for one dialect, with its positional parameter order."""

    sql: str
    names: tuple[str, ...]
    fixed: Mapping[str, Any]  # values the statement carries itself (literals)
    source: Executable  # kept alive: the cache is keyed on its id

    @classmethod
    def of(cls, statement: Executable, dialect: Dialect) -> Compiled:
        compiled = cast(SQLCompiler, cast(Any, statement).compile(dialect=dialect))
        names = tuple(compiled.positiontup or ())
        fixed = {
            name: bind.value
            for name, bind in compiled.binds.items()
            if not bind.required and bind.callable is None
        }
        return cls(compiled.string, names, fixed, statement)

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        fixed = self.fixed
        # A parameter neither given nor fixed is a programming error: KeyError.
        return [params[name] if name in params else fixed[name] for name in self.names]


class Statements:
    """Each Core statement compiled once for the driver's dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._compiled: dict[int, Compiled] = {}

    def __call__(self, statement: Executable) -> Compiled:
        compiled = self._compiled.get(id(statement))
        if compiled is None or compiled.source is not statement:
            compiled = Compiled.of(statement, self._dialect)
            # Statements are built once, so a handful are kept; a statement built per
            # call would be a mistake, and is compiled each time rather than hoarded.
            if len(self._compiled) < MAX_STATEMENTS:
                self._compiled[id(statement)] = compiled
        return compiled
