"""OpenTelemetry traces (authority.traces) as a collector receives them: the span tree of an
exchange, an introspection and a revocation, with the SQL and Redis calls beneath."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from authority.app import build_services, create_app, start, stop
from authority.clock import FrozenClock
from authority.settings import Settings
from authority.storage.driver import Driver
from authority.storage.traced import TracedDriver, TracedHotState
from authority.traces import NO_TRACING, Tracing
from tests.revocation_support import introspect, revoke_as_server
from tests.support import World

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def world(
    settings: Settings, clock: FrozenClock, exporter: InMemorySpanExporter
) -> AsyncIterator[World]:
    """The usual world, on an instance whose traces go to ``exporter``."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    services = build_services(settings, clock=clock, tracing=Tracing(provider))
    await start(services)
    try:
        app = create_app(settings, services=services)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=settings.issuer) as client:
            made = await World(client, services, clock).setup()
            exporter.clear()
            yield made
    finally:
        await stop(services)


def named(spans: Iterable[ReadableSpan], name: str) -> ReadableSpan:
    (found,) = [s for s in spans if s.name == name]
    return found


def under(spans: Iterable[ReadableSpan], root: ReadableSpan) -> list[ReadableSpan]:
    """Every span below ``root`` (children, their children, ...)."""
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    found = []
    for span in by_id.values():
        parent = span.parent
        while parent is not None:
            if root.context is not None and parent.span_id == root.context.span_id:
                found.append(span)
                break
            above = by_id.get(parent.span_id)
            parent = above.parent if above is not None else None
    return found


def database(spans: Iterable[ReadableSpan]) -> list[ReadableSpan]:
    return [
        s
        for s in spans
        if s.attributes is not None
        and s.attributes.get("db.system.name") in ("sqlite", "postgresql")
    ]


def redis(spans: Iterable[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if s.attributes and s.attributes.get("db.system.name") == "redis"]


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_an_exchange_is_a_span_tree_with_its_sql_beneath(
    world: World, exporter: InMemorySpanExporter, backend: str
) -> None:
    await world.delegate(rate_per_minute=10)  # counted in the hot state
    exporter.clear()
    traceparent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
    response = await world.exchange(headers={"traceparent": traceparent})
    assert response.status_code == 200, response.text
    spans = exporter.get_finished_spans()

    server = named(spans, "POST /oauth2/token")
    assert server.kind == SpanKind.SERVER
    # The caller's trace is linked, not continued: an agent's traceparent (its sampled
    # flag included) decides nothing here.
    assert server.context is not None and server.parent is None
    assert format(server.context.trace_id, "032x") != TRACE_ID
    (link,) = server.links
    assert format(link.context.trace_id, "032x") == TRACE_ID
    assert attributes(server)["http.route"] == "/oauth2/token"
    assert attributes(server)["http.response.status_code"] == 200
    assert attributes(server)["authority.request_id"] == response.headers["x-request-id"]

    flow = named(spans, "authority.token_exchange")
    assert flow.parent is not None and server.context is not None
    assert flow.parent.span_id == server.context.span_id
    decided = attributes(flow)
    assert decided["authority.decision"] == "issued"
    assert decided["authority.agent_id"] == world.agent_id
    assert str(decided["authority.grant_id"]).startswith("grt")

    beneath = under(spans, flow)
    statements = database(beneath)
    assert statements, [s.name for s in beneath]
    dialect = "sqlite" if backend == "embedded" else "postgresql"
    for statement in statements:
        assert statement.kind == SpanKind.CLIENT
        assert attributes(statement)["db.system.name"] == dialect
    names = {s.name for s in statements}
    assert any(name.startswith("SELECT") for name in names), names
    if backend == "postgres":
        assert [s.name for s in redis(beneath)] == ["EVALSHA"]
    else:
        assert not redis(spans)  # in-process hot state: no round trip, no span

    # Background work (the ledger's sequencer, the sweeps) starts no trace of its own.
    assert all(s.parent is not None for s in database(spans) + redis(spans))

    # Nothing secret rides along: no token, credential or bound value.
    exported = repr([attributes(s) for s in spans])
    for secret in (response.json()["access_token"], world.credential, world.agent_id + "x"):
        assert secret not in exported


async def test_a_denial_is_named_on_its_span_and_is_no_error(
    world: World, exporter: InMemorySpanExporter
) -> None:
    response = await world.exchange(action="read")  # a tool action, not delegated
    assert response.status_code == 400
    spans = exporter.get_finished_spans()
    flow = named(spans, "authority.token_exchange")
    assert attributes(flow)["authority.decision"] == "denied"
    assert attributes(flow)["authority.reason"] == "action_not_delegated"
    assert flow.status.status_code == StatusCode.UNSET
    assert named(spans, "POST /oauth2/token").status.status_code == StatusCode.UNSET
    assert database(under(spans, flow))


async def test_introspection_and_revocation_have_spans_with_their_storage_beneath(
    world: World, exporter: InMemorySpanExporter, backend: str
) -> None:
    token = (await world.exchange()).json()["access_token"]
    exporter.clear()
    assert (await introspect(world, token)).json()["active"] is True
    assert (await revoke_as_server(world, token)).status_code == 200
    spans = exporter.get_finished_spans()

    checked = named(spans, "authority.introspection")
    assert attributes(checked)["authority.active"] is True
    assert attributes(checked)["authority.client_id"] == world.server_id
    assert database(under(spans, checked))
    revoked = named(spans, "authority.revocation")
    assert attributes(revoked)["authority.revocation_events"] == 1
    assert database(under(spans, revoked))
    if backend == "postgres":
        # The per-client rate windows are counted in Redis.
        assert redis(under(spans, checked))
        assert redis(under(spans, revoked))
    assert {s.name for s in spans} >= {"POST /oauth2/introspect", "POST /oauth2/revoke"}
    assert token not in repr([attributes(s) for s in spans])


def test_without_an_exporter_nothing_is_wrapped(settings: Settings) -> None:
    services = build_services(settings)
    assert services.tracing is NO_TRACING
    sql: Driver = services.sql
    assert not isinstance(sql, TracedDriver)
    assert not isinstance(services.hot, TracedHotState)
    # One shared no-op: the endpoints' span costs nothing.
    assert services.tracing.span("x") is NO_TRACING.span("y")
    app = create_app(settings, services=services)
    assert "TracingMiddleware" not in repr(app.user_middleware)


async def test_a_caller_cannot_switch_tracing_of_its_requests_off(
    world: World, exporter: InMemorySpanExporter
) -> None:
    """A traceparent whose sampled flag is 0 would silence every child span were it the
    parent; it is only a link."""
    exporter.clear()
    response = await world.exchange(headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-00"})
    assert response.status_code == 200, response.text
    server = named(exporter.get_finished_spans(), "POST /oauth2/token")
    assert server.parent is None and len(server.links) == 1
