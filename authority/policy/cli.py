"""``authority policy``: the Cedar policy's versions from a shell, and its tests offline.

    authority policy show [VERSION]            # the active version's text (or VERSION's)
    authority policy versions                  # every version: number, digest, author, ...
    authority policy set FILE [--comment TEXT] # a new version, active at once (admin)
    authority policy activate VERSION          # an older version again: a rollback (admin)
    authority policy test CASES [--policy FILE]

All but ``test`` are one request to ``/v1/policies`` (``authority.cli_api``). ``test``
runs a TOML file of example requests (``policy.cases``) against a policy file, with no
server: each case's result on a line, and exit 1 if any expectation is wrong, for an
owner's own CI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from authority.cli_api import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    Api,
    CliError,
    add_connection,
    guarded,
    print_json,
    printable,
    show,
    show_all,
)

Subparsers = argparse._SubParsersAction

VERSION_FIELDS = ("version", "active", "digest", "author", "created_at", "comment")


def _version(value: str) -> str:
    if not value.isdigit() or not 0 < int(value) < 10**9:
        raise CliError(f"not a policy version: {printable(value)!r}", EXIT_USAGE)
    return str(int(value))


def cmd_show(args: argparse.Namespace) -> int:
    path = "/v1/policies/" + (_version(args.version) if args.version else "active")
    with Api(args) as api:
        policy = api.call("GET", path)
    if args.json:
        print_json(policy)
        return EXIT_OK
    note = f"policy version {policy.get('version')} ({policy.get('digest')})"
    print(printable(note), file=sys.stderr)
    for text in str(policy.get("text", "")).splitlines():
        print(printable(text))
    return EXIT_OK


def cmd_versions(args: argparse.Namespace) -> int:
    with Api(args) as api:
        return show_all(args, api.items("/v1/policies"), VERSION_FIELDS)


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise CliError(f"cannot read {what} {printable(path)}: {reason}", EXIT_USAGE) from None


def cmd_set(args: argparse.Namespace) -> int:
    body = {"text": _read(args.file, "the policy file")}
    if args.comment is not None:
        body["comment"] = args.comment
    with Api(args) as api:
        policy = api.call("POST", "/v1/policies", body)
    if args.json:
        print_json(policy)
        return EXIT_OK
    print(printable(f"policy version {policy['version']} is active"), file=sys.stderr)
    print(policy["version"])
    return EXIT_OK


def cmd_activate(args: argparse.Namespace) -> int:
    with Api(args) as api:
        policy = api.call("POST", f"/v1/policies/{_version(args.version)}/activate")
    return show(args, policy, VERSION_FIELDS)


def cmd_test(args: argparse.Namespace) -> int:
    # Imported here: the tests need cedarpy, which only the server's install has.
    from authority.policy import cases
    from authority.policy.cedar import CedarPolicy, PolicyError

    try:
        loaded, named = cases.load(Path(args.cases))
    except cases.CasesError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    policy_file = Path(args.policy) if args.policy else named
    if policy_file is None:
        raise CliError("no policy: pass --policy FILE, or name it in the cases file", EXIT_USAGE)
    try:
        policy = CedarPolicy.from_file(policy_file)
    except PolicyError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    try:
        results = cases.run(loaded, policy)
    except cases.CasesError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    if args.json:
        print_json([vars_of(r) for r in results])
    else:
        for r in results:
            why = f" ({', '.join(r.reasons)})" if r.reasons else ""
            verdict = "ok  " if r.passed else "FAIL"
            expected = "" if r.passed else f", expected {r.expected} {r.expected_reason or ''}"
            print(printable(f"{verdict} {r.name}: {r.decision}{why}{expected}".rstrip()))
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed", file=sys.stderr)
    return EXIT_REFUSED if failed else EXIT_OK


def vars_of(result: object) -> dict[str, object]:
    fields = ("name", "passed", "decision", "reasons", "expected", "expected_reason")
    return {name: getattr(result, name) for name in fields}


def register(sub: Subparsers[argparse.ArgumentParser]) -> None:
    policy = sub.add_parser("policy", help="the Cedar policy: versions, changes, tests")
    group = policy.add_subparsers(dest="policy_command", required=True)

    def command(name: str, help_text: str, handler: object) -> argparse.ArgumentParser:
        parser = group.add_parser(name, help=help_text)
        add_connection(parser)
        parser.set_defaults(func=guarded(handler))  # type: ignore[arg-type]
        return parser

    command("show", "the active version's text (or VERSION's)", cmd_show).add_argument(
        "version", nargs="?", default=None
    )
    command("versions", "every version, newest first", cmd_versions)
    put = command("set", "store FILE as a new version, active at once (admin)", cmd_set)
    put.add_argument("file", metavar="FILE")
    put.add_argument("--comment", default=None, help="why (kept with the version)")
    command("activate", "make an older version active: a rollback (admin)", cmd_activate)
    group.choices["activate"].add_argument("version", metavar="VERSION")
    test = group.add_parser("test", help="run example requests against a policy, offline")
    test.add_argument("cases", metavar="CASES", help="a TOML file of cases (policy.cases)")
    test.add_argument("--policy", default=None, metavar="FILE", help="the Cedar policy file")
    test.add_argument("--json", action="store_true", help="machine-readable JSON output")
    test.set_defaults(func=guarded(cmd_test))
