"""``authority migrate``: the database schema (Alembic), and ``--check`` for servers that
wait for one migration run instead of migrating themselves."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

from authority.cli_api import EXIT_UNAVAILABLE

if TYPE_CHECKING:
    from authority.settings import Settings


def data_dir(args: argparse.Namespace) -> dict[str, object]:
    return {"data_dir": args.data_dir} if getattr(args, "data_dir", None) is not None else {}


def cmd_migrate(args: argparse.Namespace) -> int:
    from authority.settings import load_settings
    from authority.storage.database import downgrade, migrate

    settings = load_settings(**data_dir(args))
    if args.check:
        return _check_schema(settings, wait=args.wait)
    if args.revision.startswith("-") or args.downgrade:
        asyncio.run(downgrade(settings.sqlalchemy_url, args.revision))
    else:
        asyncio.run(migrate(settings.sqlalchemy_url, args.revision))
    if args.json:
        print(json.dumps({"revision": args.revision}))
    else:
        print(f"database at revision {args.revision}")
    return 0


def _check_schema(settings: Settings, *, wait: float) -> int:
    """``migrate --check``: 0 once the schema is at head; at the end of ``wait``, 1 if it
    is not, 3 if the database is still unreachable (the command line's "unavailable").

    For servers that do not migrate (a Kubernetes init container waits on it while one
    Job migrates); an unreachable database counts as not yet, until the wait is over.
    """
    import time

    from authority.storage.database import schema_is_current

    deadline = time.monotonic() + wait
    while True:
        try:
            if asyncio.run(schema_is_current(settings.sqlalchemy_url)):
                print("database schema is up to date")
                return 0
            problem, code = "database schema is not up to date: run `authority migrate`", 1
        except Exception as exc:  # the network's, the driver's or SQLAlchemy's errors
            problem, code = f"database unreachable ({type(exc).__name__})", EXIT_UNAVAILABLE
        if time.monotonic() >= deadline:
            print(f"error: {problem}", file=sys.stderr)
            return code
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))


def register(sub: Any) -> None:
    mig = sub.add_parser("migrate", help="bring the database schema up to date")
    mig.add_argument("revision", nargs="?", default="head")
    mig.add_argument("--downgrade", action="store_true", help="go down to REVISION")
    mig.add_argument(
        "--check",
        action="store_true",
        help="change nothing: exit 0 if at head, 1 if not, 3 if the database does not answer",
    )
    mig.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS", help="with --check: keep checking"
    )
    mig.add_argument("--json", action="store_true", help='print {"revision": REVISION}')
    mig.set_defaults(func=cmd_migrate)
