"""``authority owners|servers|tools``: the management API's registries from a shell.

    authority owners create --name NAME [--email EMAIL]
    authority owners list | show ID | update ID [--name] [--email] | retire ID
    authority owners keys create OWNER_ID [--label TEXT]     # the key, printed once
    authority owners keys list OWNER_ID | revoke OWNER_ID KEY_ID
    authority servers create --name NAME --audience URL [--auth-method M] [--jwks JSON|@FILE]
    authority servers list | show ID | retire ID | rotate-secret ID
    authority tools create --name TOOL --server SERVER_ID --action A [--action B]
                           --risk-tier 0-3 [--read-action A] [--approval-required] ...
    authority tools list | show ID | retire ID

Each is one request to ``/v1`` (``authority.cli_api``: URL, API key, ``--json``, exit
codes), with the body the API documents built from the flags, so nobody writes one by
hand. A creation prints the new id alone on stdout (an owner key: the key, shown once).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from authority.cli_api import (
    Api,
    add_connection,
    created,
    guarded,
    read_json_argument,
    show,
    show_all,
)

Subparsers = argparse._SubParsersAction

OWNER_FIELDS = ("id", "name", "status", "email")
KEY_FIELDS = ("id", "role", "owner_id", "label", "created_at", "revoked_at")
SERVER_FIELDS = ("id", "name", "audience", "client_id", "auth_method", "status")
TOOL_FIELDS = ("id", "name", "resource_server_id", "actions", "risk_tier", "status")


def _present(**members: Any) -> dict[str, Any]:
    return {name: value for name, value in members.items() if value is not None}


# --- owners -------------------------------------------------------------------------------
def cmd_owner_create(args: argparse.Namespace) -> int:
    with Api(args) as api:
        owner = api.call("POST", "/v1/owners", _present(name=args.name, email=args.email))
    return created(args, owner, "owner")


def cmd_owner_list(args: argparse.Namespace) -> int:
    with Api(args) as api:
        return show_all(args, api.items("/v1/owners"), OWNER_FIELDS)


def cmd_owner_show(args: argparse.Namespace) -> int:
    with Api(args) as api:
        return show(args, api.call("GET", f"/v1/owners/{args.id}"), OWNER_FIELDS)


def cmd_owner_update(args: argparse.Namespace) -> int:
    body = _present(name=args.name, email=args.email)
    with Api(args) as api:
        return show(args, api.call("PATCH", f"/v1/owners/{args.id}", body), OWNER_FIELDS)


def cmd_owner_retire(args: argparse.Namespace) -> int:
    with Api(args) as api:
        return show(args, api.call("DELETE", f"/v1/owners/{args.id}"), OWNER_FIELDS)


def cmd_key_create(args: argparse.Namespace) -> int:
    with Api(args) as api:
        key = api.call("POST", f"/v1/owners/{args.owner_id}/api-keys", {"label": args.label})
    return created(args, key, "owner API key", shown="api_key")


def cmd_key_list(args: argparse.Namespace) -> int:
    with Api(args) as api:
        return show_all(args, api.items(f"/v1/owners/{args.owner_id}/api-keys"), KEY_FIELDS)


def cmd_key_revoke(args: argparse.Namespace) -> int:
    with Api(args) as api:
        key = api.call("DELETE", f"/v1/owners/{args.owner_id}/api-keys/{args.key_id}")
    return show(args, key, KEY_FIELDS)


# --- resource servers -----------------------------------------------------------------------
def _print_secret(args: argparse.Namespace, server: dict[str, Any]) -> None:
    if not args.json and server.get("client_secret"):
        print(
            f"resource server {server['id']}: client_id {server['client_id']}, client secret "
            f"(shown once, for its middleware): {server['client_secret']}",
            file=sys.stderr,
        )


def cmd_server_create(args: argparse.Namespace) -> int:
    body = _present(name=args.name, audience=args.audience, auth_method=args.auth_method)
    if args.jwks is not None:
        body["jwks"] = read_json_argument(args.jwks, "--jwks")
    with Api(args) as api:
        server = api.call("POST", "/v1/resource-servers", body)
    _print_secret(args, server)
    return created(args, server, "resource server")


def cmd_server_list(args: argparse.Namespace) -> int:
    with Api(args) as api:
        return show_all(args, api.items("/v1/resource-servers"), SERVER_FIELDS)


def cmd_server_show(args: argparse.Namespace) -> int:
    with Api(args) as api:
        return show(args, api.call("GET", f"/v1/resource-servers/{args.id}"), SERVER_FIELDS)


def cmd_server_retire(args: argparse.Namespace) -> int:
    with Api(args) as api:
        return show(args, api.call("DELETE", f"/v1/resource-servers/{args.id}"), SERVER_FIELDS)


def cmd_server_rotate(args: argparse.Namespace) -> int:
    with Api(args) as api:
        server = api.call("POST", f"/v1/resource-servers/{args.id}/secret", {})
    if args.json:
        return show(args, server, SERVER_FIELDS)
    print(f"new client secret of {server['id']}, shown once:", file=sys.stderr)
    print(server.get("client_secret", ""))
    return 0


# --- tools ----------------------------------------------------------------------------------
def cmd_tool_create(args: argparse.Namespace) -> int:
    body = _present(
        name=args.name,
        description=args.description,
        resource_server_id=args.server,
        actions=args.action,
        read_actions=args.read_action or None,
        risk_tier=args.risk_tier,
        max_token_lifetime=args.max_token_lifetime,
    )
    for flag in ("approval_required", "single_use", "dpop_required"):
        if getattr(args, flag):
            body[flag] = True
    with Api(args) as api:
        tool = api.call("POST", "/v1/tools", body)
    return created(args, tool, "tool")


def cmd_tool_list(args: argparse.Namespace) -> int:
    with Api(args) as api:
        return show_all(args, api.items("/v1/tools"), TOOL_FIELDS)


def cmd_tool_show(args: argparse.Namespace) -> int:
    with Api(args) as api:
        return show(args, api.call("GET", f"/v1/tools/{args.id}"), TOOL_FIELDS)


def cmd_tool_retire(args: argparse.Namespace) -> int:
    with Api(args) as api:
        return show(args, api.call("DELETE", f"/v1/tools/{args.id}"), TOOL_FIELDS)


# --- the parsers ----------------------------------------------------------------------------
def command(
    group: Subparsers[argparse.ArgumentParser], name: str, help_text: str, handler: Any
) -> argparse.ArgumentParser:
    """One API subcommand: its connection options, and its handler behind ``guarded``."""
    parser = group.add_parser(name, help=help_text)
    add_connection(parser)
    parser.set_defaults(func=guarded(handler))
    return parser


def _by_id(group: Subparsers[argparse.ArgumentParser], what: str, handlers: dict[str, Any]) -> None:
    helps = {"show": f"one {what}", "retire": f"retire a {what} (it stays, inactive)"}
    for verb, handler in handlers.items():
        command(group, verb, helps.get(verb, verb), handler).add_argument("id")


def register(sub: Subparsers[argparse.ArgumentParser]) -> None:
    owners = sub.add_parser("owners", help="owners (the humans agents act for) and their API keys")
    group = owners.add_subparsers(dest="owners_command", required=True)
    create = command(group, "create", "register an owner (admin); prints its id", cmd_owner_create)
    create.add_argument("--name", required=True)
    create.add_argument("--email", default=None)
    command(group, "list", "every owner you may see", cmd_owner_list)
    _by_id(group, "owner", {"show": cmd_owner_show, "retire": cmd_owner_retire})
    update = command(group, "update", "change an owner's name or email", cmd_owner_update)
    update.add_argument("id")
    update.add_argument("--name", default=None)
    update.add_argument("--email", default=None)

    keys = group.add_parser("keys", help="an owner's API keys")
    key_group = keys.add_subparsers(dest="owner_keys_command", required=True)
    key_create = command(key_group, "create", "a new owner API key, printed once", cmd_key_create)
    key_create.add_argument("owner_id")
    key_create.add_argument("--label", default="", help="a note kept with the key")
    command(key_group, "list", "an owner's API keys (never secrets)", cmd_key_list).add_argument(
        "owner_id"
    )
    revoke = command(key_group, "revoke", "revoke an owner API key", cmd_key_revoke)
    revoke.add_argument("owner_id")
    revoke.add_argument("key_id")

    servers = sub.add_parser("servers", help="resource servers (the APIs tools live on)")
    group = servers.add_subparsers(dest="servers_command", required=True)
    create = command(group, "create", "register a resource server (admin)", cmd_server_create)
    create.add_argument("--name", required=True)
    create.add_argument(
        "--audience", required=True, help="its URL: the audience of its tokens (RFC 8707)"
    )
    create.add_argument(
        "--auth-method",
        default=None,
        choices=["client_secret_basic", "client_secret_post", "private_key_jwt"],
        help="how it authenticates to introspect (default client_secret_basic)",
    )
    create.add_argument("--jwks", default=None, metavar="JSON|@FILE", help="for private_key_jwt")
    command(group, "list", "every resource server", cmd_server_list)
    _by_id(
        group,
        "resource server",
        {"show": cmd_server_show, "retire": cmd_server_retire, "rotate-secret": cmd_server_rotate},
    )

    tools = sub.add_parser("tools", help="tools agents may be delegated (vetted by an admin)")
    group = tools.add_subparsers(dest="tools_command", required=True)
    create = command(group, "create", "register a tool (admin); prints its id", cmd_tool_create)
    create.add_argument("--name", required=True, help="e.g. github.issues.create")
    create.add_argument("--server", required=True, metavar="SERVER_ID", help="its resource server")
    create.add_argument(
        "--action", action="append", required=True, help="an action it offers (repeat)"
    )
    create.add_argument(
        "--read-action",
        action="append",
        default=[],
        help="an action that only reads: allowed at autonomy level 0 (repeat)",
    )
    create.add_argument(
        "--risk-tier",
        type=int,
        required=True,
        choices=range(4),
        help="0-3: agents below this autonomy level need approval",
    )
    create.add_argument("--description", default=None)
    create.add_argument("--approval-required", action="store_true", help="every call is approved")
    create.add_argument("--single-use", action="store_true", help="each token works once")
    create.add_argument("--dpop-required", action="store_true", help="tokens must be DPoP-bound")
    create.add_argument("--max-token-lifetime", type=int, default=None, metavar="SECONDS")
    command(group, "list", "every tool", cmd_tool_list)
    _by_id(group, "tool", {"show": cmd_tool_show, "retire": cmd_tool_retire})
