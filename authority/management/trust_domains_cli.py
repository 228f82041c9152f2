"""``authority trust-domains``: the issuers of workload tokens, from a shell (admin).

    authority trust-domains create --name N --preset P --issuer ISS --audience AUD
                                   [--key-source S] [--key-location URL]
                                   [--jwks JSON|@FILE] [--map CLAIM=NAME ...]
    authority trust-domains list | get ID
    authority trust-domains update ID [--audience] [--key-source] [--key-location]
                                   [--jwks] [--map CLAIM=NAME ...] [--enable]
    authority trust-domains disable ID

And the identity rules of ``authority agents create|update --identity-rule``: one rule
as ``domain=ID[,sub=PATTERN][,CLAIM=PATTERN]...`` (``parse_rule``).
"""

from __future__ import annotations

import argparse
from typing import Any

from authority.cli_api import Api, CliError, created, read_json_argument, show, show_all

from .registry_cli import Subparsers, command

DOMAIN_FIELDS = ("id", "name", "preset", "issuer", "audience", "key_source", "status")
PRESETS = ("spiffe", "kubernetes", "github", "gitlab", "oidc")
KEY_SOURCES = ("discovery", "jwks_uri", "static_jwks", "spiffe_bundle")
RULE_FORMAT = "domain=ID[,sub=PATTERN][,CLAIM=PATTERN]..."


def parse_rule(text: str) -> dict[str, Any]:
    """One ``--identity-rule``: the domain, the subject pattern, claim patterns."""
    rule: dict[str, Any] = {"claims": {}}
    for part in text.split(","):
        name, equals, value = part.partition("=")
        name = name.strip()
        if not equals or not name or not value:
            raise CliError(f"an --identity-rule is {RULE_FORMAT}", 2)
        if name == "domain":
            rule["domain_id"] = value
        elif name == "sub":
            rule["subject"] = value
        elif name in rule["claims"]:
            raise CliError("an --identity-rule names a claim twice", 2)
        else:
            rule["claims"][name] = value
    if "domain_id" not in rule:
        raise CliError(f"an --identity-rule names its domain: {RULE_FORMAT}", 2)
    return rule


def _mapping(pairs: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        claim, equals, name = pair.partition("=")
        if not equals or not claim or not name:
            raise CliError("a --map is CLAIM=NAME", 2)
        mapping[claim] = name
    return mapping


def _keys(args: argparse.Namespace, body: dict[str, Any]) -> None:
    if args.key_source is not None:
        body["key_source"] = args.key_source
    if args.key_location is not None:
        body["key_location"] = args.key_location
    if args.jwks is not None:
        body["static_jwks"] = read_json_argument(args.jwks, "--jwks")
    if args.map:
        body["claim_mapping"] = _mapping(args.map)


def cmd_create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "name": args.name,
        "preset": args.preset,
        "issuer": args.issuer,
        "audience": args.audience,
    }
    _keys(args, body)
    with Api(args) as api:
        domain = api.call("POST", "/v1/trust-domains", body)
    return created(args, domain, "trust domain")


def cmd_list(args: argparse.Namespace) -> int:
    with Api(args) as api:
        return show_all(args, api.items("/v1/trust-domains"), DOMAIN_FIELDS)


def cmd_get(args: argparse.Namespace) -> int:
    with Api(args) as api:
        return show(args, api.call("GET", f"/v1/trust-domains/{args.id}"), DOMAIN_FIELDS)


def cmd_update(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.audience is not None:
        body["audience"] = args.audience
    _keys(args, body)
    if args.enable:
        body["status"] = "active"
    if not body:
        raise CliError("name something to change", 2)
    with Api(args) as api:
        domain = api.call("PATCH", f"/v1/trust-domains/{args.id}", body)
    return show(args, domain, DOMAIN_FIELDS)


def cmd_disable(args: argparse.Namespace) -> int:
    with Api(args) as api:
        domain = api.call("PATCH", f"/v1/trust-domains/{args.id}", {"status": "disabled"})
    return show(args, domain, DOMAIN_FIELDS)


def _key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key-source", choices=KEY_SOURCES, default=None)
    parser.add_argument(
        "--key-location", default=None, help="the discovery, JWKS or SPIFFE bundle URL"
    )
    parser.add_argument(
        "--jwks", default=None, metavar="JSON|@FILE", help="the JWKS or SPIFFE bundle held"
    )
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="CLAIM=NAME",
        help="keep a token claim under NAME (repeat)",
    )


def register(sub: Subparsers[argparse.ArgumentParser]) -> None:
    domains = sub.add_parser("trust-domains", help="issuers of workload tokens (admin)")
    group = domains.add_subparsers(dest="trust_domains_command", required=True)
    create = command(group, "create", "register a trust domain; prints its id", cmd_create)
    create.add_argument("--name", required=True)
    create.add_argument("--preset", required=True, choices=PRESETS)
    create.add_argument("--issuer", required=True, help="the exact iss of its tokens")
    create.add_argument("--audience", required=True, help="the aud its tokens carry for us")
    _key_options(create)
    command(group, "list", "every trust domain", cmd_list)
    command(group, "get", "one trust domain", cmd_get).add_argument("id")
    update = command(group, "update", "change a trust domain", cmd_update)
    update.add_argument("id")
    update.add_argument("--audience", default=None)
    _key_options(update)
    update.add_argument("--enable", action="store_true", help="make a disabled domain active")
    command(group, "disable", "disable a trust domain: its tokens verify nothing", cmd_disable)
    group.choices["disable"].add_argument("id")
