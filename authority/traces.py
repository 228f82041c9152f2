"""OpenTelemetry traces: a span per exchange, introspection and revocation, with the SQL and
Redis calls beneath, exported over OTLP (or to the console) when an exporter is configured.

Without one (``Settings.traces_exporter`` is ``none``, the default) nothing is
instrumented: ``NO_TRACING.span`` is one shared ``nullcontext``, the storage is not
wrapped and no middleware is added, so an instance that does not trace pays nothing,
and OpenTelemetry need not be installed (it comes with ``authority[otel]``).

With one, ``authority.app`` wraps the hot path's driver and the hot state
(``storage.traced``), hooks the engine's statements, and adds the server span per
request (``endpoints.tracing``); the endpoints open the flow's span and the decision
events (``wire``) name its outcome on it. What a span carries is ids, reason codes,
route templates and parameterised SQL: never a token, a secret, a header or a value
bound to a statement.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from authority import __version__
from authority.bus import EventBus
from authority.domain_events import (
    ExchangeDenied,
    ExchangeIssued,
    ExchangePending,
    Revoked,
    TokenIntrospected,
)
from authority.errors import AuthorityError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

    from authority.settings import Settings

#: The instrumentation scope every span of the authority's is made in.
SCOPE: Final = "authority"
_NULL: Final = contextlib.nullcontext()


class Tracing:
    """The instance's tracer, or none; ``span`` is the one call the endpoints make."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        self.tracer: Tracer | None = (
            provider.get_tracer(SCOPE, __version__) if provider is not None else None
        )

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    def span(
        self, name: str, attributes: Mapping[str, Any] | None = None
    ) -> contextlib.AbstractContextManager[Any]:
        """A span of the flow ``name`` around the block (a no-op without a tracer)."""
        if self.tracer is None:
            return _NULL
        return _flow_span(self.tracer, name, attributes)

    def shutdown(self) -> None:
        """Export what is still buffered; nothing is traced after this."""
        if self.provider is not None:
            self.provider.shutdown()


NO_TRACING: Final = Tracing()


@contextlib.contextmanager
def _flow_span(tracer: Tracer, name: str, attributes: Mapping[str, Any] | None) -> Iterator[Any]:
    from opentelemetry.trace import SpanKind, StatusCode

    # Exceptions are not recorded as events: their messages are not ours to export. A
    # refusal (AuthorityError) is an answer, not a failure of the span.
    with tracer.start_as_current_span(
        name,
        kind=SpanKind.INTERNAL,
        attributes=dict(attributes or {}),
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__qualname__)
            if not isinstance(exc, AuthorityError):
                span.set_status(StatusCode.ERROR, type(exc).__qualname__)
            raise


def check(settings: Settings) -> None:
    """Raise ``TracingUnavailable`` if the exporter asked for cannot be loaded (before any
    worker starts, so the refusal is one line, not a traceback per worker)."""
    exporter = settings.traces_exporter
    if exporter == "none":
        return
    try:
        import opentelemetry.sdk.trace

        if exporter == "otlp":
            import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
    except ImportError as exc:
        raise TracingUnavailable(_missing(exporter)) from exc


def _missing(exporter: str) -> str:
    return f"traces to {exporter} need OpenTelemetry: pip install 'authority[otel]'"


def from_settings(settings: Settings) -> Tracing:
    """The tracing the settings ask for: an exporter's provider, or ``NO_TRACING``."""
    exporter = settings.traces_exporter
    if exporter == "none":
        return NO_TRACING
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )

        if exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise TracingUnavailable(_missing(exporter)) from exc
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are read by the SDK and win; the
    # service is "authority" unless they name it.
    detected = Resource.create()
    if str(detected.attributes.get("service.name", "")).startswith("unknown_service"):
        detected = detected.merge(Resource({"service.name": "authority"}))
    provider = TracerProvider(resource=detected)
    if exporter == "otlp":
        # Endpoint, headers and timeout from the standard OTEL_EXPORTER_OTLP_* variables.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    return Tracing(provider)


class TracingUnavailable(Exception):
    """An exporter is configured but OpenTelemetry is not installed."""


def _annotate(attributes: Mapping[str, Any]) -> None:
    from opentelemetry import trace

    span = trace.get_current_span()
    for key, value in attributes.items():
        if value is not None:
            span.set_attribute(key, value)


def wire(bus: EventBus) -> None:
    """Name each decision on the span of the flow that made it (subscribed when tracing)."""

    def issued(event: ExchangeIssued) -> None:
        _annotate(
            {
                "authority.decision": "issued",
                "authority.grant_id": event.grant_id,
                "authority.agent_id": event.agent_id,
                "authority.delegation_id": event.delegation_id,
            }
        )

    def denied(event: ExchangeDenied) -> None:
        _annotate(
            {
                "authority.decision": "denied",
                "authority.reason": event.reason.value,
                "authority.grant_id": event.grant_id,
                "authority.agent_id": event.agent_id,
                "authority.delegation_id": event.delegation_id,
            }
        )

    def pending(event: ExchangePending) -> None:
        _annotate({"authority.decision": "pending", "authority.agent_id": event.agent_id})

    def introspected(event: TokenIntrospected) -> None:
        _annotate(
            {
                "authority.active": event.active,
                "authority.client_id": event.client_id,
                "authority.grant_id": event.grant_id,
                "authority.agent_id": event.agent_id,
            }
        )

    def revoked(event: Revoked) -> None:
        _annotate({"authority.revocation_events": len(event.events)})

    bus.subscribe(ExchangeIssued, issued)
    bus.subscribe(ExchangeDenied, denied)
    bus.subscribe(ExchangePending, pending)
    bus.subscribe(TokenIntrospected, introspected)
    bus.subscribe(Revoked, revoked)
