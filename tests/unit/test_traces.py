"""Which traces exporter an instance uses (authority.traces), and that none costs nothing."""

from __future__ import annotations

import builtins
from typing import Any

import pytest

from authority import traces
from authority.settings import Settings

OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


@pytest.fixture(autouse=True)
def no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def settings(**values: Any) -> Settings:
    return Settings(secret_key="x" * 32, **values)


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, "none"),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "none"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, "none"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, "none"),
    ],
)
def test_opentelemetry_s_own_variables_choose_when_the_setting_does_not(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], expected: str
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert settings().traces_exporter == expected


def test_the_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    assert settings(otel_exporter="none").traces_exporter == "none"
    assert settings(otel_exporter="console").traces_exporter == "console"


def test_no_exporter_is_no_tracing() -> None:
    tracing = traces.from_settings(settings())
    assert tracing is traces.NO_TRACING
    assert not tracing.enabled
    with tracing.span("authority.token_exchange") as span:
        assert span is None
    traces.check(settings())


def test_an_exporter_makes_a_provider_named_authority() -> None:
    tracing = traces.from_settings(settings(otel_exporter="otlp"))
    try:
        assert tracing.enabled
        assert tracing.provider is not None
        assert tracing.provider.resource.attributes["service.name"] == "authority"
    finally:
        tracing.shutdown()


def test_an_exporter_without_opentelemetry_installed_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_import = builtins.__import__

    def without_otel(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("opentelemetry.exporter"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_otel)
    with pytest.raises(traces.TracingUnavailable, match=r"authority\[otel\]"):
        traces.check(settings(otel_exporter="otlp"))
    with pytest.raises(traces.TracingUnavailable, match=r"authority\[otel\]"):
        traces.from_settings(settings(otel_exporter="otlp"))
    traces.check(settings(otel_exporter="console"))  # the SDK alone is enough for it


def test_serve_refuses_an_exporter_it_cannot_load_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from authority import cli

    def unavailable(settings: Settings) -> None:
        raise traces.TracingUnavailable("traces to otlp need OpenTelemetry: pip install ...")

    monkeypatch.setenv("AUTHORITY_OTEL_EXPORTER", "otlp")
    monkeypatch.setattr(traces, "check", unavailable)
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err == "error: traces to otlp need OpenTelemetry: pip install ...\n"


def test_any_command_refuses_an_exporter_it_cannot_load_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Operator commands build the services too (``admin``, ``keys``, ``console``)."""
    from authority import cli

    def command(args: object) -> int:
        raise traces.TracingUnavailable("traces to otlp need OpenTelemetry: pip install ...")

    monkeypatch.setattr("authority.storage.migrate_cli.cmd_migrate", command)
    assert cli.main(["migrate"]) == 2
    assert capsys.readouterr().err == "error: traces to otlp need OpenTelemetry: pip install ...\n"
