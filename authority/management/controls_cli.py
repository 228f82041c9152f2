"""``authority control``: the owner's controls from a shell, through the management API.

    authority control revoke-delegation DLG_ID [--reason TEXT]
    authority control quarantine AGENT_ID --reason TEXT
    authority control release AGENT_ID [--reason TEXT]
    authority control kill OWNER_ID --reason TEXT

Each calls the API of the authority at ``--url`` (default: the configured issuer) with
the API key read from ``--api-key-file`` (never from the command line, where other users
of the machine could read it), so an owner needs no access to the authority's database
and every action is recorded under the key that made it. The answer is printed as JSON
on stdout; an error goes to stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from authority.settings import load_settings

Subparsers = argparse._SubParsersAction


def _request(args: argparse.Namespace, path: str, body: dict[str, Any]) -> int:
    try:
        key = Path(args.api_key_file).read_text().strip()
    except OSError as exc:
        print(f"error: {args.api_key_file}: {exc.strerror}", file=sys.stderr)
        return 1
    base = (args.url or load_settings().issuer).rstrip("/")
    try:
        response = httpx.post(
            base + path,
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=30.0,
        )
    except httpx.HTTPError as exc:
        print(f"error: {base}: {type(exc).__name__}", file=sys.stderr)
        return 1
    try:
        answer = response.json()
    except ValueError:
        answer = {"error": "server_error", "error_description": response.text[:200]}
    if response.status_code != 200:
        description = answer.get("error_description", "") if isinstance(answer, dict) else ""
        error = answer.get("error", "") if isinstance(answer, dict) else ""
        print(f"error: HTTP {response.status_code} {error}: {description}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2, sort_keys=True))
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
        parser.add_argument(
            "--api-key-file", required=True, metavar="FILE", help="file holding your API key"
        )
        parser.add_argument("--url", default=None, help="the authority; default: the issuer")

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
        commands.choices[name].set_defaults(func=handler)
