"""The ``authority`` command: serve, migrate, and the operator's and auditor's tools."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from authority.settings import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from authority.context import Services
    from authority.storage.ledger_reader import LedgerReader

Command = Callable[[argparse.Namespace], int]


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    return load_settings(**overrides)


# --- serve ----------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    # Flags become AUTHORITY_* variables so that every worker process sees the same settings.
    for name in ("host", "port", "workers", "data_dir"):
        if getattr(args, name, None) is not None:
            os.environ[f"AUTHORITY_{name.upper()}"] = str(getattr(args, name))
    settings = load_settings()
    if settings.workers > 1 and settings.is_embedded and settings.redis_url is None:
        print(
            "error: several workers need shared hot state: set AUTHORITY_REDIS_URL "
            "(and AUTHORITY_DATABASE_URL for PostgreSQL)",
            file=sys.stderr,
        )
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.should_auto_migrate:
        # Once, before any worker starts, so workers never race to migrate.
        from authority.app import migrate

        asyncio.run(migrate(settings.sqlalchemy_url))
    from authority.metrics_workers import workers_directory

    print(f"authority serving {settings.issuer} on http://{settings.host}:{settings.port}")
    # Several workers share their metrics through a fresh directory of this start.
    with workers_directory(settings.workers):
        uvicorn.run(
            "authority.asgi:app",
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=settings.shutdown_grace,
        )
    return 0


# --- migrate --------------------------------------------------------------------------------
def cmd_migrate(args: argparse.Namespace) -> int:
    from authority.app import downgrade, migrate

    settings = _settings(args)
    if args.revision.startswith("-") or args.downgrade:
        asyncio.run(downgrade(settings.sqlalchemy_url, args.revision))
    else:
        asyncio.run(migrate(settings.sqlalchemy_url, args.revision))
    print(f"database at revision {args.revision}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="authority", description="Short-lived, per-call credentials for agents."
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="overrides AUTHORITY_DATA_DIR")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the authority (uvicorn)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--workers", type=int, default=None)
    serve.add_argument("--data-dir", type=Path, default=None, dest="data_dir")
    serve.set_defaults(func=cmd_serve)

    mig = sub.add_parser("migrate", help="bring the database schema up to date")
    mig.add_argument("revision", nargs="?", default="head")
    mig.add_argument("--downgrade", action="store_true", help="go down to REVISION")
    mig.set_defaults(func=cmd_migrate)

    for register in _registrars():
        register(sub)
    return parser


Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _registrars() -> list[Registrar]:
    """Each feature module's subcommands, named here so that ``python -m authority.cli``
    and the ``authority`` script build the same parser."""
    from authority.approvals.cli import register as approvals
    from authority.console.cli import register as console
    from authority.demo import register as demo
    from authority.demo_gateway import register as demo_gateway
    from authority.gateway.cli import register as gateway
    from authority.ledger.cli import register as ledger
    from authority.management.cli import register as admin
    from authority.management.controls_cli import register as control
    from authority.tokens.commands import register as keys

    return [
        functools.partial(admin, open_services=functools.partial(_operator_services, keys=False)),
        functools.partial(keys, open_services=functools.partial(_operator_services, keys=True)),
        functools.partial(ledger, open_ledger=_ledger_reader),
        functools.partial(console, open_services=functools.partial(_operator_services, keys=False)),
        control,
        demo,
        demo_gateway,  # after demo: it adds --gateway to the demo command
        approvals,
        gateway,
    ]


@contextlib.asynccontextmanager
async def _operator_services(settings: Settings, *, keys: bool) -> AsyncIterator[Services]:
    """``authority.app.operator_services``, imported when a command runs (the CLI starts
    without loading the server)."""
    from authority.app import operator_services

    async with operator_services(settings, keys=keys) as services:
        yield services


@contextlib.asynccontextmanager
async def _ledger_reader(settings: Settings) -> AsyncIterator[LedgerReader]:
    """``authority.app.ledger_reader``, imported when the export runs."""
    from authority.app import ledger_reader

    async with ledger_reader(settings) as reader:
        yield reader


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
