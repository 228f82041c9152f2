"""``authority keys``: list the signing keys and rotate them.

A rotation only writes the new key to SQL: every running instance publishes it at its
next refresh and starts signing with it after ``key_activation_delay``, so nothing needs
restarting. Heavy imports happen inside the commands, to keep the CLI quick to start.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from authority.settings import load_settings

if TYPE_CHECKING:
    from authority.context import OpenServices, Services
    from authority.tokens.keys import KeyInfo

T = TypeVar("T")


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], *, open_services: OpenServices
) -> None:
    """``open_services`` opens services with the keyring loaded (``authority.cli``)."""
    keys = sub.add_parser("keys", help="the authority's signing keys")
    keys.set_defaults(open_services=open_services)
    actions = keys.add_subparsers(dest="keys_command", required=True)

    listing = actions.add_parser("list", help="every signing key and its status")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(func=cmd_list)

    rotate = actions.add_parser(
        "rotate", help="publish a new signing key now; it signs after the activation delay"
    )
    rotate.add_argument("--purpose", choices=["token", "ledger"], default="token")
    rotate.add_argument("--json", action="store_true", help="the new key as one JSON object")
    rotate.set_defaults(func=cmd_rotate)


def cmd_list(args: argparse.Namespace) -> int:
    keys = _run(args, lambda services: services.keyring.list_keys(), existing=True)
    if args.json:
        for info in keys:
            print(json.dumps(_as_dict(info), sort_keys=True))
        return 0
    print(f"{'PURPOSE':8} {'STATUS':8} {'ALG':6} {'KID':44} {'ACTIVE FROM':20} PUBLISHED UNTIL")
    for info in keys:
        until = "-" if info.status != "retired" else _time(info.publish_until) or "forever"
        print(
            f"{info.purpose:8} {info.status:8} {info.alg:6} {info.kid:44} "
            f"{_time(info.activated_at) or '-':20} {until}"
        )
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    from authority.tokens.keys import KeyringError

    purpose = args.purpose
    try:
        info = _run(args, lambda services: services.keyring.rotate(purpose, actor=_actor()))
    except KeyringError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(_as_dict(info), sort_keys=True))
        return 0
    print(
        f"new {info.purpose} key {info.kid} ({info.alg}) is published now and signs from "
        f"{_time(info.activated_at)}; the current key stays published after that"
    )
    return 0


def _run(
    args: argparse.Namespace, action: Callable[[Services], Awaitable[T]], *, existing: bool = False
) -> T:
    """Run ``action`` on services wired exactly as the server wires them; on ``existing``
    data only (``authority.cli_local``: a listing never creates a database)."""
    from authority.cli_local import require_database

    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    settings = load_settings(**overrides)
    if existing:
        require_database(settings)
    open_services: OpenServices = args.open_services

    async def main() -> T:
        async with open_services(settings) as services:
            return await action(services)

    return asyncio.run(main())


def _actor() -> str:
    """Who rotated, for the ledger entry: the operating-system user, when there is one."""
    try:
        return f"cli:{getpass.getuser()}"[:80]
    except (OSError, KeyError):
        return "cli"


def _time(value: int | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_dict(info: KeyInfo) -> dict[str, Any]:
    return {
        "kid": info.kid,
        "purpose": info.purpose,
        "alg": info.alg,
        "status": info.status,
        "created_at": info.created_at,
        "activated_at": info.activated_at,
        "retired_at": info.retired_at,
        "publish_until": info.publish_until,
    }
