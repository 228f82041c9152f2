"""``authority control``: the owner's controls from a shell, through the management API.

    authority control revoke-delegation DLG_ID [--reason TEXT]
    authority control quarantine AGENT_ID --reason TEXT
    authority control release AGENT_ID [--reason TEXT]
    authority control kill OWNER_ID --reason TEXT

Each calls the API of the authority (``authority.cli_api``: ``--url`` or
``AUTHORITY_URL``, the API key from ``--api-key-file``, ``--api-key`` or
``AUTHORITY_API_KEY``, never needed on the command line; exit codes), so an owner needs
no access to the authority's database and every action is recorded under the key that
made it. The answer is printed as JSON on stdout (``--json`` is accepted, and changes
nothing: the answer lists what was stopped).
"""

from __future__ import annotations

import argparse
from typing import Any

from authority.cli_api import Api, add_connection, guarded, print_json

Subparsers = argparse._SubParsersAction


def _request(args: argparse.Namespace, path: str, body: dict[str, Any]) -> int:
    with Api(args) as api:
        print_json(api.call("POST", path, body))
    return 0


def _reason(args: argparse.Namespace) -> dict[str, Any]:
    return {} if args.reason is None else {"reason": args.reason}


def cmd_revoke_delegation(args: argparse.Namespace) -> int:
    return _request(args, f"/v1/delegations/{args.delegation_id}/revoke", _reason(args))


def cmd_quarantine(args: argparse.Namespace) -> int:
    return _request(args, f"/v1/agents/{args.agent_id}/quarantine", _reason(args))


def cmd_release(args: argparse.Namespace) -> int:
    return _request(args, f"/v1/agents/{args.agent_id}/release", _reason(args))


def cmd_kill(args: argparse.Namespace) -> int:
    return _request(args, f"/v1/owners/{args.owner_id}/kill", _reason(args))


def register(sub: Subparsers[argparse.ArgumentParser]) -> None:
    control = sub.add_parser(
        "control", help="revoke a delegation, quarantine or release an agent, kill switch"
    )
    commands = control.add_subparsers(dest="control_command", required=True)

    def command(name: str, help_text: str, target: str, *, reason_required: bool) -> None:
        parser = commands.add_parser(name, help=help_text)
        parser.add_argument(target)
        parser.add_argument("--reason", required=reason_required, help="why: written to the ledger")
        add_connection(parser)

    command("revoke-delegation", "revoke a delegation now", "delegation_id", reason_required=False)
    command("quarantine", "stop an agent until released", "agent_id", reason_required=True)
    command("release", "lift an agent's quarantine", "agent_id", reason_required=False)
    command(
        "kill",
        "revoke every delegation of an owner and quarantine all their agents",
        "owner_id",
        reason_required=True,
    )
    handlers = {
        "revoke-delegation": cmd_revoke_delegation,
        "quarantine": cmd_quarantine,
        "release": cmd_release,
        "kill": cmd_kill,
    }
    for name, handler in handlers.items():
        commands.choices[name].set_defaults(func=guarded(handler))
