"""OpenTelemetry client spans around the storage's calls (the database semantic conventions).

Chosen by ``authority.app`` only when traces are exported (``authority.traces``), so
an instance that does not trace runs the driver and the hot state unwrapped. There is
no OpenTelemetry instrumentation for the hot path's drivers as this package runs them
(asyncpg and sqlite3 behind statements compiled once, ``storage.driver``) nor one we can
install for redis-py and SQLAlchemy, so the spans are made here, at the ports:

* ``TracedDriver``: a span per statement of the hot path (named ``SELECT grants``,
  with the parameterised SQL, never a bound value), inside one per transaction;
* ``instrument_engine``: the same for every statement SQLAlchemy's engine sends (its
  cursor events, which run in the request's context);
* ``TracedHotState``: a span per Redis round trip, named by its command.

Only beneath a span being recorded (a traced request): background work makes none.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)
from typing import Any, Final, cast

from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, StatusCode, Tracer, get_current_span
from sqlalchemy import Delete, Insert, Select, Update, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

from .compiled import Row
from .driver import Driver, Transaction
from .hot import Claim, Count, HotState, Outcome

#: Statement texts kept for span names; past it, new texts are named without the cache.
_TEXT_CACHE_SIZE: Final = 1024
_FIRST_TABLE: Final = re.compile(
    r"^\s*(?:(SELECT)\b.*?\bFROM\s+([\w.\"]+)|(INSERT)\s+INTO\s+([\w.\"]+)|"
    r"(UPDATE)\s+([\w.\"]+)|(DELETE)\s+FROM\s+([\w.\"]+)|(\w+))",
    re.IGNORECASE | re.DOTALL,
)


def summary_of_text(sql: str) -> str:
    """``SELECT grants``: the operation and its first table (``db.query.summary``)."""
    match = _FIRST_TABLE.match(sql)
    if match is None:
        return "SQL"
    parts = [p for p in match.groups() if p]
    return " ".join([parts[0].upper(), *(p.strip('"') for p in parts[1:])])


def summary_of(statement: Executable, sql: str) -> str:
    """The same for a Core statement (``sql``: its text, for the other kinds)."""
    if isinstance(statement, Insert | Update | Delete):
        verb = type(statement).__name__.upper()
        return f"{verb} {getattr(statement.table, 'name', '')}".strip()
    if isinstance(statement, Select):
        try:
            froms = statement.get_final_froms()
        except Exception:  # a construct only a dialect can render, named in the text
            return summary_of_text(sql)
        for table in froms:
            name = getattr(table, "name", None)
            if isinstance(name, str):
                return f"SELECT {name}"
        return "SELECT"
    return summary_of_text(sql)


def _failed(span: Span, exc: BaseException) -> None:
    # The type only: a driver's message can quote the values a statement was sent.
    span.set_attribute("error.type", type(exc).__qualname__)
    span.set_status(StatusCode.ERROR, type(exc).__qualname__)


class _Statements:
    """Each statement's span name and parameterised SQL, worked out on first use."""

    def __init__(self, system: str, dialect: Dialect) -> None:
        self.system = system
        self._dialect = dialect
        # Keyed by identity, holding the statement so that its id is never reused.
        self._known: dict[int, tuple[Executable, str, str]] = {}

    def attributes(self, statement: Executable) -> tuple[str, dict[str, str]]:
        known = self._known.get(id(statement))
        if known is None:
            try:
                sql = str(cast(Any, statement).compile(dialect=self._dialect))
            except Exception:
                sql = ""
            known = (statement, summary_of(statement, sql), sql)
            self._known[id(statement)] = known
        _, name, sql = known
        attributes = {"db.system.name": self.system, "db.query.summary": name}
        if sql:
            attributes["db.query.text"] = sql
        return name, attributes


@contextmanager
def _client_span(tracer: Tracer, name: str, attributes: Mapping[str, Any]) -> Iterator[Span]:
    if not get_current_span().is_recording():
        # Background work (the sequencer, the sweeps) outside any traced request: a
        # trace per statement, every second, would bury the requests' traces.
        yield INVALID_SPAN
        return
    with tracer.start_as_current_span(
        name,
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as exc:
            _failed(span, exc)
            raise


class _TracedTransaction:
    def __init__(self, inner: Transaction, tracer: Tracer, statements: _Statements) -> None:
        self._inner = inner
        self._tracer = tracer
        self._statements = statements

    async def fetchrow(self, statement: Executable, params: Mapping[str, Any]) -> Any:
        name, attributes = self._statements.attributes(statement)
        with _client_span(self._tracer, name, attributes):
            return await self._inner.fetchrow(statement, params)

    async def execute(self, statement: Executable, params: Mapping[str, Any]) -> None:
        name, attributes = self._statements.attributes(statement)
        with _client_span(self._tracer, name, attributes):
            await self._inner.execute(statement, params)


class TracedDriver:
    """A ``Driver`` whose statements and transactions are spans."""

    def __init__(self, inner: Driver, tracer: Tracer) -> None:
        from sqlalchemy.dialects import postgresql, sqlite

        self._inner = inner
        self._tracer = tracer
        self.dialect = inner.dialect
        dialect: Dialect = (
            postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]
            if inner.dialect == "postgresql"
            else sqlite.dialect()
        )
        self._statements = _Statements(inner.dialect, dialect)

    async def fetchrow(self, statement: Executable, params: Mapping[str, Any]) -> Row | None:
        name, attributes = self._statements.attributes(statement)
        with _client_span(self._tracer, name, attributes):
            return await self._inner.fetchrow(statement, params)

    async def fetch(self, statement: Executable, params: Mapping[str, Any]) -> list[Row]:
        name, attributes = self._statements.attributes(statement)
        with _client_span(self._tracer, name, attributes):
            return await self._inner.fetch(statement, params)

    async def commit_one(self, statement: Executable, params: Mapping[str, Any]) -> Row | None:
        name, attributes = self._statements.attributes(statement)
        with _client_span(self._tracer, name, attributes):
            return await self._inner.commit_one(statement, params)

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        attributes = {"db.system.name": self._statements.system}
        with _client_span(self._tracer, "transaction", attributes):
            async with self._inner.transaction() as tx:
                yield _TracedTransaction(tx, self._tracer, self._statements)

    def start(self) -> None:
        self._inner.start()

    async def close(self) -> None:
        await self._inner.close()


_SPAN_KEY: Final = "_authority_span"


def instrument_engine(engine: AsyncEngine, tracer: Tracer) -> None:
    """A client span per statement the engine sends, child of the span current then.

    SQLAlchemy runs the cursor in a greenlet that carries the awaiting task's context,
    so the request's span is the parent.
    """
    system = engine.dialect.name
    names: dict[str, str] = {}

    def name_of(sql: str) -> str:
        name = names.get(sql)
        if name is None:
            name = summary_of_text(sql)
            if len(names) < _TEXT_CACHE_SIZE:
                names[sql] = name
        return name

    def before(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if context is None or not get_current_span().is_recording():
            return  # outside a traced request (see _client_span)
        name = name_of(statement)
        span = tracer.start_span(
            name,
            kind=SpanKind.CLIENT,
            attributes={
                "db.system.name": system,
                "db.query.summary": name,
                "db.query.text": statement,
            },
        )
        setattr(context, _SPAN_KEY, span)

    def after(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        span = getattr(context, _SPAN_KEY, None)
        if span is not None:
            span.end()
            setattr(context, _SPAN_KEY, None)

    def failed(exception_context: Any) -> None:
        span = getattr(exception_context.execution_context, _SPAN_KEY, None)
        if span is not None:
            _failed(span, exception_context.original_exception)
            span.end()
            setattr(exception_context.execution_context, _SPAN_KEY, None)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "after_cursor_execute", after)
    event.listen(engine.sync_engine, "handle_error", failed)


class TracedHotState:
    """A ``HotState`` whose round trips are client spans (named as Redis names the command)."""

    def __init__(self, inner: HotState, tracer: Tracer, *, system: str = "redis") -> None:
        self._inner = inner
        self._tracer = tracer
        self._system = system

    def _span(self, command: str) -> AbstractContextManager[Span]:
        return _client_span(
            self._tracer,
            command,
            {"db.system.name": self._system, "db.operation.name": command},
        )

    async def apply(self, claims: Sequence[Claim], counts: Sequence[Count]) -> Outcome:
        # One script (HotState.apply in Redis): EVALSHA on the wire.
        with self._span("EVALSHA") as span:
            span.set_attribute("authority.keys", len(claims) + len(counts))
            return await self._inner.apply(claims, counts)

    async def claim(self, key: str, ttl: float) -> bool:
        with self._span("EVALSHA"):
            return await self._inner.claim(key, ttl)

    async def incr(self, key: str, ttl: float) -> int:
        with self._span("EVALSHA"):
            return await self._inner.incr(key, ttl)

    async def get(self, key: str) -> bytes | None:
        with self._span("GET"):
            return await self._inner.get(key)

    async def delete(self, key: str) -> None:
        with self._span("DEL"):
            await self._inner.delete(key)

    async def publish(self, channel: str, message: bytes) -> None:
        with self._span("PUBLISH"):
            await self._inner.publish(channel, message)

    def subscribe(self, channel: str) -> AsyncIterator[bytes]:
        # A subscription lasts as long as its stream: no span of its own.
        return self._inner.subscribe(channel)

    async def ping(self) -> None:
        with self._span("PING"):
            await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()
