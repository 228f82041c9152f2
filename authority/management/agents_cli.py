"""``authority agents``: an owner's agents from a shell, through the management API.

    authority agents create --name NAME --generate-key [FILE] [--key-type ed25519|p-256|rsa]
    authority agents create --name NAME --jwks JSON|@FILE
    authority agents create --name NAME --identity-rule RULE [--identity-rule RULE]
    authority agents update ID [--identity-rule RULE ... | --no-identity-rules]
                               [--require-key-and-workload]
    authority agents list | show ID | retire ID
    authority agents autonomy ID LEVEL [--reason TEXT]
    authority agents baseline ID | promotions ID [--accept PROPOSAL_ID]  (behaviour_cli)

``--generate-key`` makes the agent's key pair here, with a ``kid`` (its RFC 7638
thumbprint unless ``--kid`` names one), registers only the public half, and hands the
private JWK over once: written to FILE (mode 0600, never over an existing file; the
agent's id then on stdout), or without FILE printed on stdout (the id on stderr). The
authority never sees the private key.

A new agent starts at autonomy level 0 unless ``--autonomy-level`` says otherwise:
at 0 it may only call a tool's read actions without asking, so its first call of any
other action waits for the owner's approval; ``agents autonomy ID LEVEL`` raises it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from authority.cli_api import (
    EXIT_OK,
    Api,
    CliError,
    create_private,
    print_json,
    printable,
    read_json_argument,
    show,
    show_all,
)

from . import behaviour_cli
from .registry_cli import Subparsers, command
from .trust_domains_cli import RULE_FORMAT, parse_rule

AGENT_FIELDS = ("id", "name", "owner_id", "status", "autonomy_level")
KEY_TYPES = ("ed25519", "p-256", "rsa")


def generate_key(key_type: str, kid: str | None) -> Any:
    """A new private key of ``key_type`` with ``kid`` (default: its RFC 7638 thumbprint)."""
    from joserfc.jwk import ECKey, KeyParameters, OKPKey, RSAKey

    parameters: KeyParameters | None = {"kid": kid} if kid else None
    if key_type == "ed25519":
        return OKPKey.generate_key("Ed25519", parameters=parameters, auto_kid=kid is None)
    if key_type == "p-256":
        return ECKey.generate_key("P-256", parameters=parameters, auto_kid=kid is None)
    return RSAKey.generate_key(2048, parameters=parameters, auto_kid=kid is None)


def cmd_create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name, "autonomy_level": args.autonomy_level}
    if args.description is not None:
        body["description"] = args.description
    if args.owner is not None:
        body["owner_id"] = args.owner
    key = None
    key_file = None if args.generate_key in (None, "-") else Path(args.generate_key)
    if args.generate_key is not None:
        if args.jwks is not None:
            raise CliError("give --generate-key or --jwks, not both", 2)
        key = generate_key(args.key_type, args.kid)
        body["jwks"] = {"keys": [key.as_dict(private=False)]}
    elif args.jwks is not None:
        body["jwks"] = read_json_argument(args.jwks, "--jwks")
    elif not args.identity_rule:
        raise CliError(
            "the agent needs a key: --generate-key [FILE], or --jwks JSON|@FILE, "
            "or a workload identity: --identity-rule " + RULE_FORMAT,
            2,
        )
    if args.identity_rule:
        body["identity_rules"] = [parse_rule(rule) for rule in args.identity_rule]
    if args.require_key_and_workload:
        body["require_key_and_workload"] = True
    fd = None if key_file is None else create_private(key_file, "the new key")
    try:
        with Api(args) as api:
            agent = api.call("POST", "/v1/agents", body)
    except BaseException:
        if fd is not None and key_file is not None:
            os.close(fd)
            key_file.unlink(missing_ok=True)
        raise
    level = agent.get("autonomy_level")
    note = f"created agent {agent['id']} ({agent['name']}) at autonomy level {level}" + (
        " (reads only: other calls wait for the owner's approval)" if level == 0 else ""
    )
    private = None if key is None else key.as_dict(private=True)
    if fd is not None and key is not None and private is not None:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(private, indent=2, sort_keys=True) + "\n")
        note += f"; its private key (kid {key.kid}) is in {key_file}"
    if args.json:
        print_json({"agent": agent, "private_jwk": private} if key_file is None else agent)
        return EXIT_OK
    if private is not None and key_file is None:
        print(printable(note + "; its private key (shown once) follows:"), file=sys.stderr)
        print(json.dumps(private, sort_keys=True))
        return EXIT_OK
    print(printable(note), file=sys.stderr)
    print(agent["id"])
    return EXIT_OK


def cmd_update(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.identity_rule and args.no_identity_rules:
        raise CliError("give --identity-rule or --no-identity-rules, not both", 2)
    if args.identity_rule:
        body["identity_rules"] = [parse_rule(rule) for rule in args.identity_rule]
    if args.no_identity_rules:
        body["identity_rules"] = []
    if args.require_key_and_workload is not None:
        body["require_key_and_workload"] = args.require_key_and_workload
    for name in ("name", "description"):
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    if args.jwks is not None:
        body["jwks"] = read_json_argument(args.jwks, "--jwks")
    if not body:
        raise CliError("name something to change", 2)
    with Api(args) as api:
        return show(args, api.call("PATCH", f"/v1/agents/{args.id}", body), AGENT_FIELDS)


def cmd_list(args: argparse.Namespace) -> int:
    with Api(args) as api:
        return show_all(args, api.items("/v1/agents"), AGENT_FIELDS)


def cmd_show(args: argparse.Namespace) -> int:
    with Api(args) as api:
        return show(args, api.call("GET", f"/v1/agents/{args.id}"), AGENT_FIELDS)


def cmd_retire(args: argparse.Namespace) -> int:
    with Api(args) as api:
        return show(args, api.call("DELETE", f"/v1/agents/{args.id}"), AGENT_FIELDS)


def cmd_autonomy(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"level": args.level}
    if args.reason is not None:
        body["reason"] = args.reason
    with Api(args) as api:
        agent = api.call("POST", f"/v1/agents/{args.id}/autonomy", body)
    return show(args, agent, AGENT_FIELDS)


def _workload_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--identity-rule",
        action="append",
        default=[],
        metavar="RULE",
        help=f"a workload identity it may prove itself with: {RULE_FORMAT} (repeat)",
    )
    parser.add_argument(
        "--require-key-and-workload",
        action="store_true",
        default=None,
        help="every exchange needs both its key's attestation and its platform token",
    )


def register(sub: Subparsers[argparse.ArgumentParser]) -> None:
    agents = sub.add_parser("agents", help="agents, their keys and autonomy levels")
    group = agents.add_subparsers(dest="agents_command", required=True)
    create = command(group, "create", "register an agent with its public key", cmd_create)
    create.add_argument("--name", required=True)
    create.add_argument("--description", default=None)
    create.add_argument("--owner", default=None, help="its owner (for an admin key)")
    create.add_argument(
        "--autonomy-level",
        type=int,
        default=0,
        choices=range(4),
        help="0 (default: reads only without approval) to 3",
    )
    create.add_argument(
        "--generate-key",
        nargs="?",
        const="-",
        default=None,
        metavar="FILE",
        help="make its key pair here; the private JWK goes to FILE, or to stdout once",
    )
    create.add_argument("--key-type", choices=KEY_TYPES, default="ed25519")
    create.add_argument("--kid", default=None, help="the key's kid (default: its thumbprint)")
    create.add_argument("--jwks", default=None, metavar="JSON|@FILE", help="its public JWK Set")
    _workload_options(create)
    update = command(group, "update", "change an agent's name, keys or identity rules", cmd_update)
    update.add_argument("id")
    update.add_argument("--name", default=None)
    update.add_argument("--description", default=None)
    update.add_argument("--jwks", default=None, metavar="JSON|@FILE", help="its public JWK Set")
    _workload_options(update)
    update.add_argument(
        "--no-identity-rules", action="store_true", help="remove every identity rule"
    )
    command(group, "list", "every agent you may see", cmd_list)
    for verb, handler, text in (
        ("show", cmd_show, "one agent"),
        ("retire", cmd_retire, "retire an agent for good"),
    ):
        command(group, verb, text, handler).add_argument("id")
    autonomy = command(
        group, "autonomy", "set an agent's autonomy level (0-3), with a reason", cmd_autonomy
    )
    autonomy.add_argument("id")
    autonomy.add_argument("level", type=int, choices=range(4))
    autonomy.add_argument("--reason", default=None, help="kept in the ledger")
    behaviour_cli.register(group)
