"""``authority approvals``: an owner's approvals from the command line, through the API.

    authority approvals list [--status pending|approved|denied|used|expired|all] [--agent ID]
    authority approvals approve APPROVAL_ID [--reason TEXT]
    authority approvals deny APPROVAL_ID [--reason TEXT]

Every command talks to the management API (``--url``, default the configured issuer) with
the owner's API key read from ``--api-key-file`` (a file, so the key is not in the process
list or the shell history), exactly as any other client would: the same rules, the same
ledger entries. ``list`` prints one tab-separated line per approval; errors go to stderr
with exit status 1 (refused by the API) or 2 (cannot reach it or read the key).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from authority.settings import load_settings

TIMEOUT = httpx.Timeout(30.0)
MAX_PAGES = 10_000


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _client(args: argparse.Namespace) -> httpx.Client:
    try:
        key = Path(args.api_key_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CliError(f"cannot read the API key file: {exc.strerror}", 2) from None
    if not key:
        raise CliError("the API key file is empty", 2)
    url = args.url
    if url is None:
        overrides: dict[str, object] = {}
        if getattr(args, "data_dir", None) is not None:
            overrides["data_dir"] = args.data_dir
        url = load_settings(**overrides).issuer
    return httpx.Client(
        base_url=url.rstrip("/"),
        headers={"Authorization": f"Bearer {key}"},
        timeout=TIMEOUT,
        follow_redirects=False,
    )


def _call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    try:
        response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the authority: {type(exc).__name__}", 2) from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200:
        detail = body.get("error_description") if isinstance(body, dict) else None
        raise CliError(f"HTTP {response.status_code}: {detail or response.reason_phrase}", 1)
    return body


def _line(item: dict[str, Any]) -> str:
    fields = ("id", "status", "agent_id", "tool", "action", "resource", "intent", "expires_at")
    values = [str(item.get(name, "")).replace("\t", " ") for name in fields]
    # The arguments as compact ASCII JSON: exactly what will be sent, with every control
    # character escaped, so nothing an agent sends can act on the owner's terminal.
    arguments = item.get("arguments")
    if arguments is not None:
        values.append(
            json.dumps(arguments, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
        )
    return "\t".join(values)


def cmd_list(args: argparse.Namespace) -> int:
    params: dict[str, str] = {"status": args.status}
    if args.agent is not None:
        params["agent_id"] = args.agent
    with _client(args) as client:
        for _ in range(MAX_PAGES):
            page = _call(client, "GET", "/v1/approvals", params=params)
            for item in page["items"]:
                print(_line(item))
            if page.get("next_cursor") is None:
                break
            params["cursor"] = page["next_cursor"]
    return 0


def _decide(args: argparse.Namespace, verb: str) -> int:
    body = {"reason": args.reason} if args.reason is not None else {}
    with _client(args) as client:
        item = _call(client, "POST", f"/v1/approvals/{args.approval_id}/{verb}", json=body)
    print(f"{item['id']}\t{item['status']}")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, "approve")


def cmd_deny(args: argparse.Namespace) -> int:
    return _decide(args, "deny")


def _guarded(command: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            code: int = command(args)
        except CliError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.code
        return code

    return run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    approvals = sub.add_parser("approvals", help="see, approve and deny agents' pending calls")
    commands = approvals.add_subparsers(dest="approvals_command", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--url", default=None, help="the authority; default: the issuer")
        parser.add_argument(
            "--api-key-file", required=True, help="a file holding the owner's API key"
        )

    listing = commands.add_parser("list", help="list approvals (default: pending ones)")
    common(listing)
    listing.add_argument(
        "--status",
        default="pending",
        choices=["pending", "approved", "denied", "used", "expired", "all"],
    )
    listing.add_argument("--agent", default=None, help="only this agent's")
    listing.set_defaults(func=_guarded(cmd_list))

    for verb, command in (("approve", cmd_approve), ("deny", cmd_deny)):
        parser = commands.add_parser(verb, help=f"{verb} one pending call")
        common(parser)
        parser.add_argument("approval_id")
        parser.add_argument("--reason", default=None, help="a note kept in the ledger")
        parser.set_defaults(func=_guarded(command))
