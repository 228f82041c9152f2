"""The ``authority`` command: serve, migrate, and the operator's, owner's and auditor's tools.

Exit status, for every command (docs/cli.md): 0 done; 1 refused (by the API, or a
verification that fails); 2 usage (bad arguments or configuration, an unreadable input,
a missing database, the server's packages not installed); 3 unavailable (the authority
cannot be reached, or answers 5xx); 4 ``authority token`` waits for an approval.

The commands that only talk to a running authority, and ``ledger verify``, need only the
SDK install (``pip install authority``); the others need ``authority[server]``, and say
so in one line when its packages are missing.
"""

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

from authority.cli_local import MissingDatabase, unavailable

if TYPE_CHECKING:
    from authority.context import Services
    from authority.settings import Settings
    from authority.storage.ledger_reader import LedgerReader

Command = Callable[[argparse.Namespace], int]


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    from authority.settings import load_settings

    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    return load_settings(**overrides)


# --- serve ----------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from authority import logs, traces
    from authority.settings import load_settings

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
    try:
        traces.check(settings)
    except traces.TracingUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
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
            # uvicorn's lines in the authority's format; its access log off: the app writes
            # one line per request itself, with the route template and the request id.
            log_config=logs.uvicorn_config(settings.log_level, settings.log_format),
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=settings.shutdown_grace,
        )
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; given the ``command`` about to run, only that command's module is
    imported (every command's, for ``--help`` or a name nobody registers)."""
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

    registrars = _registrars()
    if any(command in names for names, _ in registrars):
        registrars = [(names, register) for names, register in registrars if command in names]
    for names, register in registrars:
        try:
            register(sub)
        except ModuleNotFoundError as exc:
            extra = _extra_for(exc)
            if extra is None:
                raise
            for name in names:
                if name not in sub.choices:
                    _needs_server_stub(sub, name, exc, extra)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The command named by ``argv``: its first word that is neither an option nor the
    value of ``--data-dir``."""
    words = iter(argv)
    for word in words:
        if word == "--data-dir":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

#: Packages of the ``server`` extra: a command that imports one of them cannot run on the
#: SDK install (``pip install authority``), and says so instead of a traceback.
SERVER_PACKAGES = frozenset(
    {
        "aiosqlite",
        "alembic",
        "asyncpg",
        "cedarpy",
        "httpx2",
        "jinja2",
        "orjson",
        "prometheus_client",
        "pydantic",
        "pydantic_core",
        "pydantic_settings",
        "re2",
        "redis",
        "sqlalchemy",
        "starlette",
        "uvicorn",
        "webauthn",
        "yaml",
    }
)
#: The extra that brings each other optional package a command may need.
OTHER_EXTRAS = {"mcp": "mcp"}
INSTALL_SERVER = "pip install 'authority[server]'"


def _extra_for(exc: ModuleNotFoundError) -> str | None:
    """The extra whose package is missing, or None for any other missing module (a bug)."""
    top = (exc.name or "").partition(".")[0]
    return "server" if top in SERVER_PACKAGES else OTHER_EXTRAS.get(top)


def _needs_extra(command: str, exc: ModuleNotFoundError, extra: str) -> str:
    return (
        f"error: `authority {command}` needs {exc.name}, which is not installed: "
        f"pip install 'authority[{extra}]'"
    )


def _needs_server_stub(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    exc: ModuleNotFoundError,
    extra: str,
) -> None:
    """``name`` as a command that only says what to install (its module cannot load)."""
    stub = sub.add_parser(name, help=f"(needs pip install 'authority[{extra}]')", add_help=False)

    def explain(args: argparse.Namespace) -> int:
        print(_needs_extra(name, exc, extra), file=sys.stderr)
        return 2

    stub.set_defaults(func=explain, takes_any_arguments=True)


def _registrars() -> list[tuple[tuple[str, ...], Registrar]]:
    """Each feature module's subcommands, and the commands each adds, named here so that
    ``python -m authority.cli`` and the ``authority`` script build the same parser.

    Each module is imported when it registers, so that one needing the server's packages
    turns into a one-line explanation on the SDK install, not a failure of every command.
    """
    return [
        (("migrate",), _migrate),
        (("owners", "servers", "tools"), _registry),
        (("agents",), _agents),
        (("trust-domains",), _trust_domains),
        (("delegations",), _delegations),
        (("approvals",), _approvals),
        (("control",), _control),
        (("token",), _token),
        (("ledger",), _ledger),
        (("policy",), _policy),
        (("admin",), _admin),
        (("keys",), _keys),
        (("console",), _console),
        (("demo",), _demo),
        (("demo",), _demo_gateway),  # after demo: it adds --gateway to the demo command
        (("gateway",), _gateway),
    ]


Subparsers = argparse._SubParsersAction


def _migrate(sub: Subparsers[argparse.ArgumentParser]) -> None:
    from authority.storage.migrate_cli import register

    register(sub)


def _registry(sub: Subparsers[argparse.ArgumentParser]) -> None:
    from authority.management.registry_cli import register

    register(sub)


def _agents(sub: Subparsers[argparse.ArgumentParser]) -> None:
    from authority.management.agents_cli import register

    register(sub)


def _trust_domains(sub: Subparsers[argparse.ArgumentParser]) -> None:
    from authority.management.trust_domains_cli import register

    register(sub)


def _delegations(sub: Subparsers[argparse.ArgumentParser]) -> None:
    from authority.grants.delegations_cli import register

    register(sub)


def _approvals(sub: Subparsers[argparse.ArgumentParser]) -> None:
    from authority.approvals.cli import register

    register(sub)


def _control(sub: Subparsers[argparse.ArgumentParser]) -> None:
    from authority.management.controls_cli import register

    register(sub)


def _token(sub: Subparsers[argparse.ArgumentParser]) -> None:
    from authority.token_cli import register

    register(sub)


def _ledger(sub: Subparsers[argparse.ArgumentParser]) -> None:
    from authority.ledger.cli import register

    register(sub, open_ledger=_ledger_reader)


def _policy(sub: Subparsers[argparse.ArgumentParser]) -> None:
    from authority.policy.cli import register

    register(sub)


def _admin(sub: Subparsers[argparse.ArgumentParser]) -> None:
    from authority.management.cli import register

    register(sub, open_services=functools.partial(_operator_services, keys=False))


def _keys(sub: Subparsers[argparse.ArgumentParser]) -> None:
    from authority.tokens.commands import register

    register(sub, open_services=functools.partial(_operator_services, keys=True))


def _console(sub: Subparsers[argparse.ArgumentParser]) -> None:
    from authority.console.cli import register

    register(sub, open_services=functools.partial(_operator_services, keys=False))


def _demo(sub: Subparsers[argparse.ArgumentParser]) -> None:
    from authority.demo import register

    register(sub)


def _demo_gateway(sub: Subparsers[argparse.ArgumentParser]) -> None:
    from authority.demo_gateway import register

    register(sub)


def _gateway(sub: Subparsers[argparse.ArgumentParser]) -> None:
    from authority.gateway.cli import register

    register(sub)


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
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_of(words))
    args, unknown = parser.parse_known_args(words)
    if unknown and not getattr(args, "takes_any_arguments", False):
        parser.error("unrecognized arguments: " + " ".join(unknown))
    try:
        code: int = args.func(args)
    except ModuleNotFoundError as exc:
        extra = _extra_for(exc)
        if extra is None:
            raise
        print(_needs_extra(args.command, exc, extra), file=sys.stderr)
        return 2
    except MissingDatabase as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        settings, traces = (
            sys.modules.get("authority.settings"),
            sys.modules.get("authority.traces"),
        )
        # Bad configuration, or an exporter configured without authority[otel]: one line.
        if (settings is not None and isinstance(exc, settings.ConfigError)) or (
            traces is not None and isinstance(exc, traces.TracingUnavailable)
        ):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        message = unavailable(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 3
    return code


if __name__ == "__main__":
    sys.exit(main())
