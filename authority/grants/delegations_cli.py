"""``authority delegations``: an owner delegates to their agent, from a shell, through the API.

    authority delegations create --agent AGENT_ID --intent TEXT
        --tool TOOL --resource PATTERN [--resource ...] --action ACTION [--action ...]
        [--scope JSON ...] [--expires-in SECONDS] [--max-calls N] [--rate-per-minute N]
        [--credential-file FILE]
    authority delegations list [--agent ID] | show ID | revoke ID [--reason TEXT]

The delegation credential (a JWT bound to the agent's key) exists only in the answer to
its creation: with ``--credential-file`` it is written there (a new file, mode 0600,
made before the delegation is asked for, never over an existing file or through a
symlink) and the delegation's id goes to stdout (``--json``: the answer without the
credential); without, the credential is printed on stdout, once.
Only an owner's API key can delegate (an admin cannot grant on an owner's behalf).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from authority.cli_api import (
    EXIT_OK,
    Api,
    CliError,
    add_connection,
    create_private,
    guarded,
    print_json,
    printable,
    read_json_argument,
    show,
    show_all,
)

Subparsers = argparse._SubParsersAction

FIELDS = ("id", "agent_id", "status", "intent", "expires_at", "calls_used", "max_calls")
DEFAULT_LIFETIME = 3600


def _scope(args: argparse.Namespace) -> list[Any]:
    scope: list[Any] = [read_json_argument(value, "--scope") for value in args.scope]
    named = (args.tool, args.resource, args.action)
    if any(named):
        if not all(named):
            raise CliError("--tool, --resource and --action go together", 2)
        scope.insert(0, {"tool": args.tool, "resources": args.resource, "actions": args.action})
    if not scope:
        raise CliError("say what is delegated: --tool, --resource, --action (or --scope)", 2)
    return scope


def cmd_create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "agent_id": args.agent,
        "intent": args.intent,
        "scope": _scope(args),
        "expires_in": args.expires_in,
    }
    for name in ("max_calls", "rate_per_minute", "key_id"):
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    path = None if args.credential_file is None else Path(args.credential_file)
    fd = None if path is None else create_private(path, "the credential")
    try:
        with Api(args) as api:
            delegation = api.call("POST", "/v1/delegations", body)
    except BaseException:
        if fd is not None and path is not None:
            os.close(fd)
            path.unlink(missing_ok=True)
        raise
    if fd is not None:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(delegation["credential"] + "\n")
    if args.json:
        # With a file, the credential is there only, as agents create's private key.
        shown = (
            delegation
            if path is None
            else {k: v for k, v in delegation.items() if k != "credential"}
        )
        print_json(shown)
        return EXIT_OK
    note = f"created delegation {delegation['id']} to {delegation['agent_id']}"
    if args.credential_file is not None:
        print(printable(f"{note}; its credential is in {args.credential_file}"), file=sys.stderr)
        print(delegation["id"])
    else:
        print(
            printable(f"{note}; its credential (shown once, for the agent) follows:"),
            file=sys.stderr,
        )
        print(delegation["credential"])
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    with Api(args) as api:
        items = api.items("/v1/delegations", agent_id=args.agent or "")
        return show_all(args, items, FIELDS)


def cmd_show(args: argparse.Namespace) -> int:
    with Api(args) as api:
        return show(args, api.call("GET", f"/v1/delegations/{args.id}"), FIELDS)


def cmd_revoke(args: argparse.Namespace) -> int:
    body = {} if args.reason is None else {"reason": args.reason}
    with Api(args) as api:
        return show(args, api.call("POST", f"/v1/delegations/{args.id}/revoke", body), FIELDS)


def _command(
    group: Subparsers[argparse.ArgumentParser], name: str, help_text: str, handler: Any
) -> argparse.ArgumentParser:
    parser = group.add_parser(name, help=help_text)
    add_connection(parser)
    parser.set_defaults(func=guarded(handler))
    return parser


def register(sub: Subparsers[argparse.ArgumentParser]) -> None:
    delegations = sub.add_parser("delegations", help="an owner's delegations to their agents")
    group = delegations.add_subparsers(dest="delegations_command", required=True)
    create = _command(group, "create", "delegate to an agent (owner key)", cmd_create)
    create.add_argument("--agent", required=True, metavar="AGENT_ID")
    create.add_argument("--intent", required=True, help="what the agent is to do, in words")
    create.add_argument("--tool", default=None, help="the tool delegated")
    create.add_argument(
        "--resource",
        action="append",
        default=[],
        metavar="PATTERN",
        help="a resource (or pattern: * within a segment, ** across) of the tool (repeat)",
    )
    create.add_argument("--action", action="append", default=[], help="an action (repeat)")
    create.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="JSON|@FILE",
        help='another entry: {"tool": ..., "resources": [...], "actions": [...]} (repeat)',
    )
    create.add_argument(
        "--expires-in",
        type=int,
        default=DEFAULT_LIFETIME,
        metavar="SECONDS",
        help=f"at least 60 (default {DEFAULT_LIFETIME})",
    )
    create.add_argument("--max-calls", type=int, default=None, metavar="N")
    create.add_argument("--rate-per-minute", type=int, default=None, metavar="N")
    create.add_argument("--key-id", default=None, help="the agent key it binds (if several)")
    create.add_argument(
        "--credential-file", default=None, metavar="FILE", help="write the credential here"
    )
    listing = _command(group, "list", "your delegations", cmd_list)
    listing.add_argument("--agent", default=None, help="only this agent's")
    _command(group, "show", "one delegation", cmd_show).add_argument("id")
    revoke = _command(group, "revoke", "revoke a delegation now", cmd_revoke)
    revoke.add_argument("id")
    revoke.add_argument("--reason", default=None, help="kept in the ledger")
