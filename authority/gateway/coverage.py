"""What an agent's delegation covers of one MCP upstream: the lists it is shown.

The authority tells it in the introspection answer of the session token: the member
``delegation_scope`` holds the delegation's scope entries (``tool``, ``resources``,
``actions``) for the tools of the introspecting resource server only. A listed tool,
prompt or resource is kept when the gateway maps it to a (tool, action) some entry
covers; anything unmapped is never listed, since it could never be called. An answer
without the member (an authority that does not tell) keeps every mapped entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authority.gateway.config import McpCall, Upstream

#: The list method, the callee member of its entries, and the upstream's map for it.
_ENTRIES = {
    "tools/list": ("name", "tools"),
    "prompts/list": ("name", "prompts"),
    "resources/list": ("uri", "resources"),
    "resources/templates/list": ("uriTemplate", "resources"),
}


@dataclass(frozen=True, slots=True)
class Coverage:
    config: Upstream
    #: (tool, action) pairs the delegation covers; None when the authority did not say.
    covered: frozenset[tuple[str, str]] | None

    def allows(self, call: McpCall) -> bool:
        return self.covered is None or (call.tool, call.action) in self.covered

    def keep(self, method: str, entries: Any) -> list[Any]:
        if not isinstance(entries, list) or method not in _ENTRIES:
            return []
        key, table = _ENTRIES[method]
        calls: Mapping[str, McpCall] = getattr(self.config, table)
        kept = []
        for entry in entries:
            name = entry.get(key) if isinstance(entry, dict) else None
            call = calls.get(name) if isinstance(name, str) else None
            if call is not None and self.allows(call):
                kept.append(entry)
        return kept


def coverage_of(answer: Mapping[str, Any] | None, config: Upstream) -> Coverage:
    scope = answer.get("delegation_scope") if answer is not None else None
    if not isinstance(scope, list):
        return Coverage(config, None)
    covered = set()
    for entry in scope:
        if not isinstance(entry, dict) or not isinstance(entry.get("tool"), str):
            continue
        actions = entry.get("actions")
        for action in actions if isinstance(actions, list) else []:
            if isinstance(action, str):
                covered.add((entry["tool"], action))
    return Coverage(config, frozenset(covered))
