"""Policy-as-code with Cedar (``cedarpy``), evaluated after every built-in check passed.

The built-in checks are the permits; operators' Cedar policies can only take away. The
configured policies are evaluated together with an implicit
``permit(principal, action, resource);``, so a ``forbid`` denies and an empty file
changes nothing. A ``forbid`` annotated ``@approval("owner")`` asks for the owner's
approval instead of denying.

Entities per request: ``Agent::"<id>"`` (owner, autonomy_level), ``Tool::"<name>"``
(risk_tier, resource_server, single_use), ``Owner::"<id>"``; the action is
``Action::"<action>"``; the context has the resource, intent, delegation and time, and,
when the agent named them, the call's ``arguments`` (a record: ``policy.cedar_values``
says how JSON becomes Cedar) and their ``arguments_digest`` (also when only the digest
was sent, so ``context has arguments_digest`` asks "are the arguments bound"). A policy
that reads an argument the call lacks is an evaluation error, and an error denies.
Policies are parsed once at start-up; a file that does not parse stops start-up.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cedarpy

from authority.policy import cedar_values
from authority.policy.checks import Facts
from authority.settings import ConfigError

log = logging.getLogger("authority.policy")

PERMIT_ALL = "permit(principal, action, resource);\n"
DEFAULT_POLICY_FILE = Path(__file__).with_name("default.cedar")
#: The policy an evaluation error names; the rest of the message may quote a value.
_ERRING_POLICY = re.compile(r"policy `([^`]{1,64})`")


class PolicyError(ConfigError):
    """The Cedar policy file cannot be used."""


@dataclass(frozen=True, slots=True)
class CedarVerdict:
    allowed: bool
    needs_approval: bool
    policy_ids: tuple[str, ...]


def _quote(value: str) -> str:
    return json.dumps(value)


class CedarPolicy:
    """A parsed Cedar policy set and the annotations of its policies."""

    def __init__(self, text: str) -> None:
        try:
            parsed = json.loads(cedarpy.policies_to_json_str(text))
            self._set = cedarpy.PolicySet.from_str(PERMIT_ALL + text)
        except ValueError as exc:
            raise PolicyError(f"the Cedar policies do not parse: {exc}") from None
        static: dict[str, Any] = parsed.get("staticPolicies", {})
        self.count = len(static)
        # Policy ids shift by one because PERMIT_ALL comes first.
        self._approval: set[str] = set()
        self._names: dict[str, str] = {}
        for index, (_, policy) in enumerate(static.items()):
            annotations = policy.get("annotations", {})
            pid = f"policy{index + 1}"
            self._names[pid] = annotations.get("id", pid)
            if policy.get("effect") == "forbid" and "approval" in annotations:
                self._approval.add(pid)

    @classmethod
    def from_file(cls, path: Path) -> CedarPolicy:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"cannot read the Cedar policy file {path}: {exc}") from None
        return cls(text)

    def _erring(self, errors: list[str]) -> list[str]:
        names = []
        for error in errors:
            found = _ERRING_POLICY.search(error)
            names.append(self._names.get(found.group(1), "?") if found else "the request")
        return names

    def evaluate(self, facts: Facts) -> CedarVerdict:
        if self.count == 0:
            return CedarVerdict(True, False, ())
        agent, tool, call = facts.agent, facts.tool, facts.call
        entities: list[dict[str, Any]] = [
            {
                "uid": {"type": "Agent", "id": agent.id},
                "attrs": {"owner": agent.owner_id, "autonomy_level": agent.autonomy_level},
                "parents": [{"type": "Owner", "id": agent.owner_id}],
            },
            {"uid": {"type": "Owner", "id": agent.owner_id}, "attrs": {}, "parents": []},
        ]
        if tool is not None:
            entities.append(
                {
                    "uid": {"type": "Tool", "id": tool.name},
                    "attrs": {
                        "risk_tier": tool.risk_tier,
                        "resource_server": tool.audience,
                        "single_use": tool.single_use,
                    },
                    "parents": [],
                }
            )
        context: dict[str, Any] = {
            "resource": call.resource,
            "audience": facts.audience,
            "intent": facts.delegation.intent,
            "delegation": facts.delegation.id,
            "time": facts.now,
            "lifetime": facts.lifetime,
            "dpop_bound": facts.dpop_bound,
            "tool": call.tool,
        }
        if facts.workload is not None:
            context["workload"] = dict(facts.workload)
        if call.arguments is not None:
            context["arguments"] = cedar_values.record(call.arguments)
        if call.arguments_digest is not None:
            context["arguments_digest"] = call.arguments_digest
        request = {
            "principal": f"Agent::{_quote(agent.id)}",
            "action": f"Action::{_quote(call.action)}",
            "resource": f"Tool::{_quote(call.tool)}",
            "context": context,
        }
        result = cedarpy.is_authorized(request, self._set, entities)
        if result.diagnostics.errors:
            # An erroring policy is skipped by Cedar; for a forbid that would be a silent
            # allow, so any evaluation error denies (a missing attribute included). Cedar's
            # messages quote the values they failed on, which may be a call's arguments:
            # only the policies that erred are logged.
            log.warning("Cedar evaluation errors in %s", self._erring(result.diagnostics.errors))
            return CedarVerdict(False, False, ())
        if result.decision == cedarpy.Decision.Allow:
            return CedarVerdict(True, False, ())
        reasons = tuple(result.diagnostics.reasons)
        names = tuple(self._names.get(r, r) for r in reasons)
        if reasons and all(r in self._approval for r in reasons):
            return CedarVerdict(False, True, names)
        return CedarVerdict(False, False, names)
