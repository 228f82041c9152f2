"""The gateway's configuration: a TOML or YAML file, AUTHORITY_GATEWAY_* variables, secret
references that are read, never shown, and the seams it names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from authority.gateway.config import (
    CONFIG_FILE_VARIABLE,
    GatewayConfigError,
    GatewaySettings,
    SecretRef,
    load_gateway_settings,
)
from authority.gateway.wiring import CALLS_MEMBER, build_gateway
from authority.settings import load_settings

TOML = """
issuer = "https://authority.example"
public_url = "https://gateway.example"

[[upstreams]]
name = "github"
kind = "mcp"
url = "https://mcp.github.example/mcp"
client_id = "rs_1"
client_secret = { env = "GW_TEST_CLIENT_SECRET" }
credential = { type = "bearer", secret = { file = "SECRET_FILE" } }

[upstreams.tools.create_issue]
tool = "github.issues.create"
action = "create"
resource = "{repo}"
"""

YAML = """
issuer: https://authority.example
public_url: https://gateway.example
upstreams:
  - name: api
    kind: http
    url: https://api.example
    client_id: rs_2
    client_secret: {env: GW_TEST_CLIENT_SECRET}
    credential: {type: header, name: X-Api-Key, secret: {env: GW_TEST_API_KEY}}
    routes:
      - {method: POST, path: "/repos/{org}/{repo}/issues", tool: api.issues.create,
         action: create, resource: "{org}/{repo}", bind_arguments: true}
"""


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("GW_TEST_CLIENT_SECRET", "rss_secret_value")
    monkeypatch.setenv("GW_TEST_API_KEY", "api-key-value")
    path = tmp_path / "upstream.secret"
    path.write_text("file-secret-value\n")
    return path


def _file(monkeypatch: pytest.MonkeyPatch, path: Path, text: str) -> None:
    path.write_text(text)
    monkeypatch.setenv(CONFIG_FILE_VARIABLE, str(path))


def test_a_toml_file_with_secret_references(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, secrets: Path
) -> None:
    _file(monkeypatch, tmp_path / "gateway.toml", TOML.replace("SECRET_FILE", str(secrets)))
    monkeypatch.setenv("AUTHORITY_GATEWAY_PORT", "9100")
    settings = load_gateway_settings()
    assert settings.port == 9100  # a variable overrides the file
    upstream = settings.upstreams[0]
    assert settings.audience(upstream) == "https://gateway.example/u/github"
    assert upstream.session == "mcp.session.github"
    assert upstream.client_secret.read().get_secret_value() == "rss_secret_value"
    assert upstream.credential.secret is not None
    assert upstream.credential.secret.read().get_secret_value() == "file-secret-value"
    # Nothing shows a secret: not the settings' repr, not a reference's.
    shown = repr(settings) + str(upstream.credential.secret.read())
    assert "rss_secret_value" not in shown
    assert "file-secret-value" not in shown


def test_a_yaml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, secrets: Path) -> None:
    _file(monkeypatch, tmp_path / "gateway.yaml", YAML)
    settings = load_gateway_settings()
    route = settings.upstreams[0].routes[0]
    assert (route.tool, route.bind_arguments) == ("api.issues.create", True)
    gateway = build_gateway(settings)
    document = gateway.upstream("api").metadata.document
    assert document["resource"] == "https://gateway.example/u/api"
    assert document[CALLS_MEMBER]["routes"][0]["path"] == "/repos/{org}/{repo}/issues"


def test_a_missing_secret_is_named_never_shown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("GW_TEST_CLIENT_SECRET", raising=False)
    _file(monkeypatch, tmp_path / "gateway.yaml", YAML)
    with pytest.raises(GatewayConfigError, match="GW_TEST_CLIENT_SECRET"):
        build_gateway(load_gateway_settings())


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"name": "Not A Name"}, "name"),
        ({"url": "ftp://x"}, "url"),
        ({"credential": {"type": "basic", "secret": {"value": "x"}}}, "username"),
        (
            {
                "routes": [
                    {
                        "method": "GET",
                        "path": "no-slash",
                        "tool": "t",
                        "action": "a",
                        "resource": "r",
                    }
                ]
            },
            "path",
        ),
    ],
)
def test_bad_upstreams_are_refused(change: dict[str, object], problem: str) -> None:
    upstream = {
        "name": "api",
        "kind": "http",
        "url": "https://api.example",
        "client_id": "rs",
        "client_secret": {"value": "s"},
        **change,
    }
    with pytest.raises(GatewayConfigError, match=problem):
        load_gateway_settings(
            issuer="https://a.example", public_url="https://g.example", upstreams=[upstream]
        )


def test_a_misspelt_variable_is_refused_and_the_authority_ignores_the_gateways(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTHORITY_GATEWAY_PROT", "1")
    with pytest.raises(GatewayConfigError, match="AUTHORITY_GATEWAY_PROT"):
        load_gateway_settings(issuer="https://a.example", public_url="https://g.example")
    monkeypatch.delenv("AUTHORITY_GATEWAY_PROT")
    monkeypatch.setenv("AUTHORITY_GATEWAY_PORT", "9100")
    assert load_settings().port == 8400  # one environment may configure both programs


def test_a_secret_is_one_reference() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        SecretRef(env="A", value="b")


def test_seams_come_from_the_configuration() -> None:
    from authority.gateway.wiring import UpstreamRecorders, build_seams

    base: dict[str, Any] = {"issuer": "https://a.example", "public_url": "https://g.example"}
    seams = build_seams(
        GatewaySettings(
            **base,
            masking={"default": {"detectors": ["email"]}},
            blocking={"default": [{"name": "no-rm", "path": "$..command", "deny": ["rm -rf"]}]},
            recording={"max_outage": 5},
        )
    )
    assert seams.masking is not None and seams.commands is not None
    assert isinstance(seams.recorder, UpstreamRecorders)
    with pytest.raises(GatewayConfigError, match="unknown member store"):
        build_gateway(GatewaySettings(**base, recording={"store": "x"}))
    with pytest.raises(GatewayConfigError):
        build_gateway(GatewaySettings(**base, masking={"default": {"detectors": ["nope"]}}))


def test_the_cli_refuses_a_configuration_it_cannot_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from authority.cli import main

    path = tmp_path / "gateway.toml"
    path.write_text(
        'issuer = "https://a.example"\npublic_url = "https://g.example"\n'
        '[recording]\nstore = "sql"\n'
    )
    assert main(["gateway", "--config", str(path)]) == 2
    assert "recording: unknown member store" in capsys.readouterr().err


def test_the_gateway_logs_in_the_format_it_is_set_to(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, secrets: Path
) -> None:
    import argparse
    import logging

    import uvicorn

    from authority import logs
    from authority.gateway import cli

    _file(monkeypatch, tmp_path / "gateway.toml", TOML.replace("SECRET_FILE", str(secrets)))
    monkeypatch.setenv("AUTHORITY_GATEWAY_LOG_FORMAT", "json")
    ran: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: ran.update(kwargs))
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    assert cli.cmd_gateway(parser.parse_args(["gateway"])) == 0
    handlers = logging.getLogger("authority").handlers
    assert any(isinstance(h.formatter, logs.JsonFormatter) for h in handlers)
    assert ran["log_config"]["formatters"] and ran["access_log"] is False
    logs.configure("info", "text")
