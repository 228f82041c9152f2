"""``authority token``: one per-call access token, as the agent gets it (RFC 8693 exchange).

    authority token --agent AGENT_ID --key agent.jwk --delegation delegation.jwt
        --tool TOOL --resource RESOURCE --action ACTION --audience URL
        [--arguments JSON|@FILE] [--lifetime SECONDS] [--wait | --auth-req-id ID]

The agent SDK's own exchange (``authority.sdk.AgentClient.token``): a fresh attestation
signed with the agent's private key, the delegation, and the one call. The token is
printed alone on stdout. When the call needs the owner's approval (an agent at autonomy
level 0 calling anything but a read action, or a tool above its level), the command says
so, with the request's ``auth_req_id``, and exits 4; with ``--wait`` it polls until the
owner decides, and ``--auth-req-id ID`` (the same command again) polls that request
instead of asking again: a plain re-run is a new exchange, a new pending approval. Only
the SDK install is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

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
    printable,
    read_json_argument,
    shown_url,
)

#: CIBA §7.3: a client polls every 5 s when the authority named no interval.
POLL_INTERVAL = 5
#: A platform token file larger than this is not one token.
MAX_PLATFORM_TOKEN = 16 * 1024


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


def _platform_token_reader(path: str) -> Callable[[], str]:
    """Read the platform token afresh for every request: a platform that renews the file
    (a SPIFFE helper, a CI step) gives each request its own, as the authority needs."""
    _read_platform_token(path)  # unreadable: a usage error before anything is sent

    def read() -> str:
        return _read_platform_token(path)

    return read


def _read_platform_token(path: str) -> str:
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_PLATFORM_TOKEN + 1)
    except OSError as exc:
        raise CliError(f"cannot read the platform token {path}: {exc.strerror}", 2) from None
    token = data.strip()
    if len(data) > MAX_PLATFORM_TOKEN or token.count(b".") != 2 or not token.isascii():
        raise CliError(f"{path} does not hold a platform token (one JWT)", 2)
    return token.decode("ascii")


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

    if args.key is None and args.platform_token_file is None:
        raise CliError("give --key, --platform-token-file, or both", 2)
    key = _private_key(args.key) if args.key is not None else None
    platform_token = (
        _platform_token_reader(args.platform_token_file)
        if args.platform_token_file is not None
        else None
    )
    delegation = _delegation(args.delegation)
    arguments = None
    if args.arguments is not None:
        arguments = read_json_argument(args.arguments, "--arguments")
    if arguments is not None and not isinstance(arguments, dict):
        raise CliError("--arguments must be a JSON object", 2)
    try:
        async with AgentClient(
            issuer, args.agent, key, delegation, platform_token=platform_token
        ) as client:
            if args.auth_req_id is not None:
                # The approval asked for already: poll it (CIBA §7.3's default interval),
                # rather than exchange again, which would ask the owner a second time.
                print("waiting for the owner's approval…", file=sys.stderr)
                resumed = ApprovalPending(args.auth_req_id, 0, POLL_INTERVAL)
                return await client.wait_for_approval(resumed)
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
                    _pending(args, pending)
                print("waiting for the owner's approval…", file=sys.stderr)
                return await client.wait_for_approval(pending)
    except AuthorityClientError as exc:
        code = EXIT_UNAVAILABLE if exc.status >= 500 else EXIT_REFUSED
        detail = f"{exc.error}: {exc.description}" if exc.description else exc.error
        raise CliError(f"refused ({detail})", code) from None
    except httpx.HTTPError as exc:
        raise CliError(
            f"cannot reach the authority at {shown_url(issuer)}: {type(exc).__name__}",
            EXIT_UNAVAILABLE,
        ) from None


def _pending(args: argparse.Namespace, pending: Any) -> NoReturn:
    """Say how this one approval goes on: a new run without ``--auth-req-id`` is a new
    exchange, which asks the owner again (another pending approval)."""
    if args.json:
        print_json(
            {
                "auth_req_id": pending.auth_req_id,
                "expires_in": pending.expires_in,
                "interval": pending.interval,
            }
        )
    raise CliError(
        "the call waits for the owner's approval (the agent's autonomy level does not cover "
        "it): the owner approves it with `authority approvals list` and `authority approvals "
        f"approve ID`; to wait for it, add --auth-req-id {pending.auth_req_id} to this "
        f"command (expires in {pending.expires_in} s), as without it a new run asks again. "
        "Or the owner raises the level with `authority agents autonomy AGENT_ID LEVEL`, "
        "after which a new run needs no approval",
        EXIT_PENDING,
    )


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
    # The call the token is for: with --auth-req-id, the one that was approved.
    [call] = token.authorization_details[:1] or [vars(args)]
    print(
        printable(
            f"{token.token_type} token for {call.get('tool')} on {call.get('resource')} "
            f"({call.get('action')}), good for one call to {args.audience}:"
        ),
        file=sys.stderr,
    )
    print(token.value)
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = sub.add_parser("token", help="get one per-call access token, as the agent")
    add_connection(token, key=False)
    token.add_argument("--agent", required=True, metavar="AGENT_ID")
    token.add_argument("--key", default=None, metavar="FILE", help="the agent's private JWK")
    token.add_argument(
        "--platform-token-file",
        default=None,
        metavar="FILE",
        help="prove the agent by its platform: a workload token, read afresh per request",
    )
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
    token.add_argument(
        "--auth-req-id",
        default=None,
        metavar="ID",
        help="wait for this approval, asked for by an earlier run (instead of asking again)",
    )
    token.set_defaults(func=guarded(cmd_token))
