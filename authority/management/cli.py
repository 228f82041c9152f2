"""``authority admin``: the operator's API keys, made on the machine that runs the authority.

The first admin key cannot come from the API (nothing could authenticate the request),
so ``bootstrap`` makes it here, once. A key is printed alone on stdout, once, so it can
be captured by a script; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from authority.cli_api import add_json, print_json
from authority.cli_local import require_database
from authority.context import OpenServices, Services
from authority.errors import InvalidRequest, NotFound
from authority.settings import load_settings

from . import api_keys, changes
from .inputs import parse

T = TypeVar("T")


async def _with_services(
    args: argparse.Namespace, work: Callable[[Services], Awaitable[T]], *, existing: bool = False
) -> T:
    """The services with only the database connected: no keyring, sequencer or server.

    The schema is brought up to date first where the server would do it at start-up (the
    embedded default), so ``bootstrap`` works on a fresh data directory; a command on
    ``existing`` data refuses instead (``authority.cli_local``).
    """
    overrides: dict[str, object] = {}
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    settings = load_settings(**overrides)
    if existing:
        require_database(settings)
    open_services: OpenServices = args.open_services
    async with open_services(settings) as services:
        return await work(services)


def _key_view(key: api_keys.ApiKey) -> dict[str, object]:
    return {
        "id": key.id,
        "role": key.role,
        "owner_id": key.owner_id,
        "label": key.label,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


def _print_issued(args: argparse.Namespace, issued: api_keys.IssuedKey) -> None:
    key = issued.key
    if args.json:
        print_json({**_key_view(key), "api_key": issued.secret})
        return
    print(
        f"created {key.role} API key {key.id}; it is shown once, store it now:",
        file=sys.stderr,
    )
    print(issued.secret)


def _label(value: str) -> str:
    """The label as the API would accept it (no control characters, at most 200)."""
    try:
        return parse(api_keys.OwnerKeyCreate, {"label": value}).label
    except InvalidRequest:
        raise SystemExit(
            "error: a label has at most 200 characters and no control characters"
        ) from None


def _actor() -> str:
    """Who made the change, for its ledger entry: the operating-system user, if known."""
    try:
        return f"{changes.OPERATOR}:{getpass.getuser()}"[:80]
    except (OSError, KeyError):
        return changes.OPERATOR


def cmd_bootstrap(args: argparse.Namespace) -> int:
    label = _label(args.label)

    async def work(services: Services) -> api_keys.IssuedKey:
        return await api_keys.bootstrap(
            services, force_new=args.force_new, label=label, actor=_actor()
        )

    try:
        issued = asyncio.run(_with_services(args, work))
    except api_keys.AdminKeyExists:
        print(
            "error: an admin API key already exists; use it to create more keys, or pass "
            "--force-new to create another one (existing keys stay valid until revoked)",
            file=sys.stderr,
        )
        return 1
    _print_issued(args, issued)
    return 0


def cmd_create_key(args: argparse.Namespace) -> int:
    label = _label(args.label)

    async def work(services: Services) -> api_keys.IssuedKey:
        return await api_keys.issue_operator_key(services, args.role, label, actor=_actor())

    _print_issued(args, asyncio.run(_with_services(args, work)))
    return 0


def cmd_list_keys(args: argparse.Namespace) -> int:
    keys = asyncio.run(_with_services(args, api_keys.all_keys, existing=True))
    if args.json:
        print_json([_key_view(key) for key in keys])
        return 0
    for key in keys:
        state = "revoked" if key.revoked_at is not None else "active"
        owner = key.owner_id or "-"
        print(f"{key.id}\t{key.role}\t{owner}\t{state}\t{key.label}")
    return 0


def cmd_revoke_key(args: argparse.Namespace) -> int:
    async def work(services: Services) -> api_keys.ApiKey:
        return await api_keys.revoke_by_id(services, args.key_id, actor=_actor())

    try:
        key = asyncio.run(_with_services(args, work, existing=True))
    except NotFound:
        print("error: no API key has this id", file=sys.stderr)
        return 1
    if args.json:
        print_json(_key_view(key))
    print(f"revoked {key.role} API key {key.id}", file=sys.stderr)
    return 0


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], *, open_services: OpenServices
) -> None:
    """``open_services`` opens services without the keyring (``authority.cli``)."""
    admin = sub.add_parser("admin", help="operator API keys for the management API")
    admin.set_defaults(open_services=open_services)
    commands = admin.add_subparsers(dest="admin_command", required=True)

    boot = commands.add_parser("bootstrap", help="create the first admin API key")
    boot.add_argument(
        "--force-new", action="store_true", help="create one even if an admin key exists"
    )
    boot.add_argument("--label", default="", help="a note kept with the key")
    boot.set_defaults(func=cmd_bootstrap)

    create = commands.add_parser("create-key", help="create an admin or auditor API key")
    create.add_argument("--role", choices=["admin", "auditor"], required=True)
    create.add_argument("--label", default="", help="a note kept with the key")
    create.set_defaults(func=cmd_create_key)

    listing = commands.add_parser("list-keys", help="list API keys (never their secrets)")
    listing.set_defaults(func=cmd_list_keys)

    revoke = commands.add_parser("revoke-key", help="revoke an API key by id")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=cmd_revoke_key)
    for parser in (boot, create, listing, revoke):
        add_json(parser)
