"""``authority gateway``: run the gateway (uvicorn) from its configuration file and
``AUTHORITY_GATEWAY_*`` variables (``authority.gateway.config``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from authority.gateway.config import CONFIG_FILE_VARIABLE, GatewayConfigError


def cmd_gateway(args: argparse.Namespace) -> int:
    import uvicorn

    from authority import logs
    from authority.gateway.config import load_gateway_settings
    from authority.gateway.wiring import build_gateway

    if args.config is not None:
        os.environ[CONFIG_FILE_VARIABLE] = str(args.config)
    overrides: dict[str, object] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    try:
        settings = load_gateway_settings(**overrides)
        app = build_gateway(settings)
    except GatewayConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # The authority's log format; uvicorn's own lines in it too, its access log off.
    logs.configure(settings.log_level, settings.log_format)
    names = ", ".join(u.name for u in settings.upstreams) or "no upstream"
    print(
        f"authority gateway for {settings.issuer} on http://{settings.host}:{settings.port} "
        f"({names})"
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=logs.uvicorn_config(settings.log_level, settings.log_format),
        access_log=False,
        proxy_headers=False,
        server_header=False,
        lifespan="on",
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gateway = sub.add_parser(
        "gateway", help="run the gateway: per-call enforcement in front of MCP servers and APIs"
    )
    gateway.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"configuration file (overrides {CONFIG_FILE_VARIABLE})",
    )
    gateway.add_argument("--host", default=None)
    gateway.add_argument("--port", type=int, default=None)
    gateway.set_defaults(func=cmd_gateway)
