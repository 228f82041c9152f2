"""``authority token``: one per-call access token, as the agent gets it (RFC 8693 exchange).

    authority token --agent AGENT_ID --key agent.jwk --delegation delegation.jwt
        --tool TOOL --resource RESOURCE --action ACTION --audience URL
        [--arguments JSON|@FILE] [--lifetime SECONDS] [--wait]

The agent SDK's own exchange (``authority.sdk.AgentClient.token``): a fresh attestation
signed with the agent's private key, the delegation, and the one call. The token is
printed alone on stdout. When the call needs the owner's approval (an agent at autonomy
level 0 calling anything but a read action, or a tool above its level), the command says
so and exits 4; with ``--wait`` it polls until the owner decides. Only the SDK install
is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from authority.cli_api import (
    EXIT_OK,
    EXIT_PENDING,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    CliError,
    add_connection,
    base_url,
    guarded,
    print_json,
    read_json_argument,
)


def _private_key(path: str) -> Any:
    from joserfc.errors import JoseError
    from joserfc.jwk import JWKRegistry

    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        key = JWKRegistry.import_key(document)
    except OSError as exc:
        raise CliError(f"cannot read the agent key {path}: {exc.strerror}", 2) from None
    except (ValueError, JoseError):
        raise CliError(f"{path} is not a JWK", 2) from None
    if not key.is_private:
        raise CliError(f"{path} holds a public key: the agent's private JWK is needed", 2)
    return key


def _delegation(value: str) -> str:
    path = Path(value)
    if value.count(".") == 2 and not path.exists():
        return value
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CliError(f"cannot read the delegation {value}: {exc.strerror}", 2) from None


async def _exchange(args: argparse.Namespace, issuer: str) -> Any:
    import httpx

    from authority.sdk import AgentClient, ApprovalPending, AuthorityClientError

    key = _private_key(args.key)
    delegation = _delegation(args.delegation)
    arguments = None
    if args.arguments is not None:
        arguments = read_json_argument(args.arguments, "--arguments")
    if arguments is not None and not isinstance(arguments, dict):
        raise CliError("--arguments must be a JSON object", 2)
    try:
        async with AgentClient(issuer, args.agent, key, delegation) as client:
            try:
                return await client.token(
                    args.tool,
                    args.resource,
                    args.action,
                    audience=args.audience,
                    lifetime=args.lifetime,
                    arguments=arguments,
                )
            except ApprovalPending as pending:
                if not args.wait:
                    raise CliError(
                        "the call waits for the owner's approval (the agent's autonomy level "
                        "does not cover it): the owner approves it with `authority approvals "
                        "list` and `authority approvals approve ID`, or raises the level with "
                        "`authority agents autonomy AGENT_ID LEVEL`; then run this again, or "
                        f"with --wait (request {pending.auth_req_id[:12]}…, expires in "
                        f"{pending.expires_in} s)",
                        EXIT_PENDING,
                    ) from None
                print("waiting for the owner's approval…", file=sys.stderr)
                return await client.wait_for_approval(pending)
    except AuthorityClientError as exc:
        code = EXIT_UNAVAILABLE if exc.status >= 500 else EXIT_REFUSED
        detail = f"{exc.error}: {exc.description}" if exc.description else exc.error
        raise CliError(f"refused ({detail})", code) from None
    except httpx.HTTPError as exc:
        raise CliError(
            f"cannot reach the authority at {issuer}: {type(exc).__name__}", EXIT_UNAVAILABLE
        ) from None


def cmd_token(args: argparse.Namespace) -> int:
    issuer = base_url(args)
    token = asyncio.run(_exchange(args, issuer))
    if args.json:
        print_json(
            {
                "access_token": token.value,
                "token_type": token.token_type,
                "expires_at": int(token.expires_at),
                "authorization_details": token.authorization_details,
            }
        )
        return EXIT_OK
    print(
        f"{token.token_type} token for {args.tool} on {args.resource} ({args.action}), "
        f"good for one call to {args.audience}:",
        file=sys.stderr,
    )
    print(token.value)
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = sub.add_parser("token", help="get one per-call access token, as the agent")
    add_connection(token, key=False)
    token.add_argument("--agent", required=True, metavar="AGENT_ID")
    token.add_argument("--key", required=True, metavar="FILE", help="the agent's private JWK")
    token.add_argument(
        "--delegation", required=True, metavar="FILE|JWT", help="the delegation credential"
    )
    token.add_argument("--tool", required=True)
    token.add_argument("--resource", required=True)
    token.add_argument("--action", required=True)
    token.add_argument("--audience", required=True, help="the tool's resource server URL")
    token.add_argument(
        "--arguments", default=None, metavar="JSON|@FILE", help="bind the token to these"
    )
    token.add_argument("--lifetime", type=int, default=None, metavar="SECONDS")
    token.add_argument("--wait", action="store_true", help="wait for the owner's approval")
    token.set_defaults(func=guarded(cmd_token))
