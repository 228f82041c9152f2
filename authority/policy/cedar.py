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

Only static policies: a text with a template (a ``?principal`` or ``?resource`` slot) is
refused, as one nesting brackets beyond ``MAX_DEPTH`` or chaining more than ``MAX_TERMS``
operators in a policy (checked before cedarpy, whose parser would overflow the stack).
The annotations are read by Cedar's own policy ids, those its decisions name.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cedarpy

from authority.policy import cedar_values
from authority.policy.checks import Facts
from authority.settings import ConfigError

log = logging.getLogger("authority.policy")

PERMIT_ALL = "permit(principal, action, resource);\n"
#: Cedar's id of ``PERMIT_ALL``, first in every set.
_PERMIT_ALL_ID = "policy0"
DEFAULT_POLICY_FILE = Path(__file__).with_name("default.cedar")
#: The policy an evaluation error names; the rest of the message may quote a value.
_ERRING_POLICY = re.compile(r"policy `([^`]{1,64})`")
#: Bounds checked before cedarpy sees a text: its parser recurses on nested brackets and
#: on long chains of operators and overflows the stack (the process dies) beyond a few
#: hundred levels; its JSON form nests as deep, beyond what ``json.loads`` recurses.
MAX_TEXT_BYTES: Final = 1 << 20
MAX_DEPTH: Final = 64
MAX_TERMS: Final = 1000
_BRACKET = re.compile(r"[()\[\]{}]")
#: A string literal, or a comment: to the end of the line, which Cedar ends at a carriage
#: return as at a line feed (ending it later would hide brackets Cedar parses).
_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"?|//[^\n\r]*', re.DOTALL)
_TERM = re.compile(r"&&|\|\||[-+*.!]|\bif\b")
_QUOTED = re.compile(r"`[^`]*`|\"[^\"]*\"|'[^']*'|\?[A-Za-z_][A-Za-z0-9_]*")
TEMPLATES: Final = "Policy templates are not supported; write static policies."
TOO_LARGE: Final = f"The policy text exceeds {MAX_TEXT_BYTES} bytes."
TOO_DEEP: Final = (
    f"The policy text nests brackets more than {MAX_DEPTH} levels deep, or has more than "
    f"{MAX_TERMS} operators in one policy."
)


class PolicyError(ConfigError):
    """The Cedar policy file cannot be used."""


class PolicyRefused(PolicyError):
    """A text refused before or after parsing; ``str()`` is a fixed description."""


@dataclass(frozen=True, slots=True)
class CedarVerdict:
    allowed: bool
    needs_approval: bool
    policy_ids: tuple[str, ...]


def _quote(value: str) -> str:
    return json.dumps(value)


def shape(message: str) -> str:
    """cedarpy's message without what it quotes of the text (a token, a template slot),
    and nothing after a colon (where it names a variable or a value)."""
    masked = _QUOTED.sub("`…`", message).split(":", 1)[0].strip()
    return masked[:120] or "it does not parse"


def _code(text: str) -> list[str]:
    """The text outside string literals and comments, one piece per policy (at ``;``)."""
    return _LITERAL.sub('""', text).split(";")


def refusal(text: str) -> str | None:
    """Why a text may not reach cedarpy at all (too large, too deeply nested), or None."""
    if len(text) > MAX_TEXT_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
        return TOO_LARGE
    for piece in _code(text):
        if len(_TERM.findall(piece)) > MAX_TERMS:
            return TOO_DEEP
        depth = 0
        for bracket in _BRACKET.findall(piece):
            depth = depth + 1 if bracket in "([{" else max(depth - 1, 0)
            if depth > MAX_DEPTH:
                return TOO_DEEP
    return None


def decoded(raw: bytes, path: Path) -> str:
    """A policy file's text, at most ``MAX_TEXT_BYTES`` of UTF-8 (read at most one more)."""
    if len(raw) > MAX_TEXT_BYTES:
        raise PolicyError(f"the Cedar policy file {path} exceeds {MAX_TEXT_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(f"the Cedar policy file {path} is not UTF-8") from None


def annotations_by_id(parsed: Mapping[str, Any]) -> tuple[dict[str, str], set[str]]:
    """The ``@id`` of each static policy and the approval forbids, keyed by Cedar's own
    policy ids (its JSON form's keys: templates and static policies are numbered together,
    so counting the static ones would name the wrong policy)."""
    names: dict[str, str] = {}
    approval: set[str] = set()
    for pid, policy in parsed.get("staticPolicies", {}).items():
        annotations = policy.get("annotations", {})
        names[pid] = str(annotations.get("id", pid))
        if policy.get("effect") == "forbid" and "approval" in annotations:
            approval.add(pid)
    return names, approval


class CedarPolicy:
    """A parsed Cedar policy set and the annotations of its policies."""

    def __init__(self, text: str) -> None:
        refused = refusal(text)
        if refused is not None:
            raise PolicyRefused(refused)
        full = PERMIT_ALL + text
        try:
            parsed = json.loads(cedarpy.policies_to_json_str(full))
            self._set = cedarpy.PolicySet.from_str(full)
        except RecursionError:
            raise PolicyRefused(TOO_DEEP) from None
        except ValueError as exc:
            raise PolicyError(f"the Cedar policies do not parse: {shape(str(exc))}") from None
        if parsed.get("templates") or parsed.get("templateLinks"):
            raise PolicyRefused(TEMPLATES)
        self._names, self._approval = annotations_by_id(parsed)
        self._names.pop(_PERMIT_ALL_ID, None)
        self._approval.discard(_PERMIT_ALL_ID)
        self.count = len(self._names)

    @classmethod
    def from_file(cls, path: Path) -> CedarPolicy:
        try:
            with path.open("rb") as file:
                raw = file.read(MAX_TEXT_BYTES + 1)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not a usable path"
            raise PolicyError(f"cannot read the Cedar policy file {path}: {reason}") from None
        return cls(decoded(raw, path))

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
