"""``authority agents baseline|promotions``: an agent's behaviour from a shell.

    authority agents baseline ID
    authority agents promotions ID [--accept PROPOSAL_ID]

``baseline`` prints the agent's totals and tools, its most used calls and the calls its
baseline sent to the owner, with the explanation the owner was shown (escaped, as every
text from the API). ``promotions`` lists the proposals to raise its autonomy level;
``--accept`` accepts one, and only then does the level change.
"""

from __future__ import annotations

import argparse
from typing import Any

from authority.cli_api import EXIT_OK, Api, line, print_json, printable, show

from .registry_cli import Subparsers, command

PROPOSAL_FIELDS = ("id", "status", "from_level", "to_level", "created_at", "rule")
CALL_FIELDS = ("tool", "resource", "action", "calls", "last_at")
STEP_UP_FIELDS = ("approval_id", "status", "created_at", "explanation")


def cmd_baseline(args: argparse.Namespace) -> int:
    with Api(args) as api:
        baseline: dict[str, Any] = api.call("GET", f"/v1/agents/{args.id}/baseline")
    if args.json:
        print_json(baseline)
        return EXIT_OK
    phase = "learning" if baseline["learning"] else "learned"
    print(
        printable(
            f"{baseline['agent_id']}: {baseline['calls']} calls over "
            f"{baseline['active_minutes']} active minutes "
            f"(usual {baseline['usual_per_minute']} per minute), {phase}; "
            f"tools: {', '.join(baseline['tools']) or '-'}"
        )
    )
    for call in baseline["most_used"]:
        print(line(call, CALL_FIELDS))
    for step_up in baseline["step_ups"]:
        print(line({**step_up, "approval_id": "step-up " + step_up["approval_id"]}, STEP_UP_FIELDS))
    return EXIT_OK


def cmd_promotions(args: argparse.Namespace) -> int:
    with Api(args) as api:
        if args.accept is not None:
            path = f"/v1/agents/{args.id}/promotions/{args.accept}/accept"
            return show(args, api.call("POST", path), PROPOSAL_FIELDS)
        items = api.call("GET", f"/v1/agents/{args.id}/promotions")["items"]
    if args.json:
        print_json(items)
        return EXIT_OK
    for item in items:
        print(line(item, PROPOSAL_FIELDS))
    return EXIT_OK


def register(group: Subparsers[argparse.ArgumentParser]) -> None:
    baseline = command(
        group, "baseline", "an agent's baseline and the calls it sent to its owner", cmd_baseline
    )
    baseline.add_argument("id")
    promotions = command(
        group, "promotions", "an agent's promotion proposals; --accept one", cmd_promotions
    )
    promotions.add_argument("id")
    promotions.add_argument(
        "--accept", default=None, metavar="PROPOSAL_ID", help="accept this proposal"
    )
