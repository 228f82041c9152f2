"""``authority console``: enrol a person from the machine that runs the authority.

The first admin of the console cannot be enrolled from the console (nobody could sign
in to do it), so ``authority console enrol`` makes the person and prints their one-time
link, alone on stdout; everything else goes to stderr. The operator acts as an admin,
as ``authority admin`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from datetime import UTC, datetime

from authority.context import OpenServices, Services
from authority.errors import AuthorityError
from authority.management.auth import Principal
from authority.management.inputs import parse
from authority.settings import load_settings

from . import people


def _operator() -> Principal:
    try:
        actor = f"operator:{getpass.getuser()}"[:80]
    except (OSError, KeyError):
        actor = "operator"
    return Principal(key_id=actor, role="admin", owner_id=None)


def cmd_enrol(args: argparse.Namespace) -> int:
    async def work(services: Services) -> people.Issued:
        if args.person is not None:
            return await people.enrol_again(services, _operator(), args.person)
        body = parse(
            people.PersonCreate,
            {"name": args.name, "role": args.role, "owner_id": args.owner},
        )
        return await people.create(services, _operator(), body)

    if args.person is None and (args.name is None or args.role is None):
        print(
            "error: name a new person (--name, --role) or an existing one (--person)",
            file=sys.stderr,
        )
        return 2
    overrides: dict[str, object] = {}
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    settings = load_settings(**overrides)
    open_services: OpenServices = args.open_services

    async def run() -> people.Issued:
        async with open_services(settings) as services:
            return await work(services)

    try:
        issued = asyncio.run(run())
    except AuthorityError as exc:
        print(f"error: {exc.description}", file=sys.stderr)
        return 1
    if args.json:
        person = issued.person
        view = {"id": person.id, "name": person.name, "role": person.role}
        print(
            json.dumps(
                {"person": view, "link": issued.link, "expires_at": issued.expires_at},
                sort_keys=True,
            )
        )
        return 0
    until = datetime.fromtimestamp(issued.expires_at, UTC).isoformat()
    print(
        f"enrolment link for {issued.person.role} {issued.person.name} ({issued.person.id}), "
        f"good once until {until}; it is shown once, hand it over now:",
        file=sys.stderr,
    )
    print(issued.link)
    return 0


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], *, open_services: OpenServices
) -> None:
    console = sub.add_parser("console", help="people of the web console")
    console.set_defaults(open_services=open_services)
    commands = console.add_subparsers(dest="console_command", required=True)
    enrol = commands.add_parser("enrol", help="enrol a person: print a one-time passkey link")
    enrol.add_argument("--name", help="the new person's name")
    enrol.add_argument("--role", choices=["admin", "owner", "auditor"])
    enrol.add_argument("--owner", default=None, help="the owner id, for an owner's person")
    enrol.add_argument("--person", default=None, help="an existing person: a new link")
    enrol.add_argument("--json", action="store_true", help="the person and the link, as JSON")
    enrol.set_defaults(func=cmd_enrol)
