"""``authority approvals``: an owner's approvals from the command line, through the API.

    authority approvals list [--status pending|approved|denied|used|expired|all] [--agent ID]
    authority approvals approve APPROVAL_ID [--reason TEXT]
    authority approvals deny APPROVAL_ID [--reason TEXT]

Every command talks to the management API with the owner's API key
(``authority.cli_api``: ``--url`` or ``AUTHORITY_URL``, ``--api-key-file``, ``--api-key``
or ``AUTHORITY_API_KEY``, ``--json``, the exit codes), exactly as any other client
would: the same rules, the same ledger entries. ``list`` prints one tab-separated line
per approval, its arguments last as compact ASCII JSON (exactly what will be sent), every
column escaped as ``cli_api.line`` escapes them: nothing an agent sends can act on the
owner's terminal.
"""

from __future__ import annotations

import argparse

from authority.cli_api import Api, add_connection, guarded, line, print_json

FIELDS = (
    "id",
    "status",
    "agent_id",
    "tool",
    "action",
    "resource",
    "intent",
    "expires_at",
    "arguments",
)


def cmd_list(args: argparse.Namespace) -> int:
    params: dict[str, str] = {"status": args.status}
    if args.agent is not None:
        params["agent_id"] = args.agent
    with Api(args) as api:
        items = api.items("/v1/approvals", **params)
        if args.json:
            print_json(list(items))
            return 0
        for item in items:
            print(line(item, FIELDS))
    return 0


def _decide(args: argparse.Namespace, verb: str) -> int:
    body = {"reason": args.reason} if args.reason is not None else {}
    with Api(args) as api:
        item = api.call("POST", f"/v1/approvals/{args.approval_id}/{verb}", body)
    if args.json:
        print_json(item)
    else:
        print(line(item, ("id", "status")))
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, "approve")


def cmd_deny(args: argparse.Namespace) -> int:
    return _decide(args, "deny")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    approvals = sub.add_parser("approvals", help="see, approve and deny agents' pending calls")
    commands = approvals.add_subparsers(dest="approvals_command", required=True)

    common = add_connection

    listing = commands.add_parser("list", help="list approvals (default: pending ones)")
    common(listing)
    listing.add_argument(
        "--status",
        default="pending",
        choices=["pending", "approved", "denied", "used", "expired", "all"],
    )
    listing.add_argument("--agent", default=None, help="only this agent's")
    listing.set_defaults(func=guarded(cmd_list))

    for verb, command in (("approve", cmd_approve), ("deny", cmd_deny)):
        parser = commands.add_parser(verb, help=f"{verb} one pending call")
        common(parser)
        parser.add_argument("approval_id")
        parser.add_argument("--reason", default=None, help="a note kept in the ledger")
        parser.set_defaults(func=guarded(command))
