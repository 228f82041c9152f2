"""``authority policy test``: an owner's example requests and the decisions they expect.

A TOML file (the standard library reads it) of cases, each the facts of one request in
the shape the exchange decides on (``policy.checks.Facts``), run through the same code
(``policy.rules.decide``) against a policy file, offline::

    policy = "policy.cedar"            # relative to this file; --policy overrides it

    [defaults]                         # merged into every case (tables member by member)
    agent = { autonomy_level = 1 }

    [[case]]
    name = "no deletes below autonomy 3"
    expect = "deny"                    # allow | deny | approval_required
    reason = "policy_denied"           # optional: the reason code expected
    call = { tool = "github.issues", resource = "acme/web", action = "delete" }

Each case has a ``call`` (``tool``, ``resource``, ``action``, optional ``arguments``
and ``arguments_digest``, bound as an exchange binds them: canonical form, digest, size
bound; arguments an exchange would refuse, a TOML date or an infinite number, are an
error of the cases file) and may set ``agent`` (``id``, ``owner_id``, ``status``,
``autonomy_level``, ``owner_status``), ``delegation`` (``id``, ``status``,
``expires_at``, ``scope``, ``intent``, ``max_calls``, ``rate_per_minute``,
``calls_used``), ``tool`` (``name``, ``status``, ``audience``, ``actions``,
``read_actions``, ``risk_tier``, ``approval_required``, ``single_use``,
``dpop_required``, ``max_token_lifetime``; ``tool = false``: not registered) and
``context`` (``now``, ``audience``, ``lifetime``, ``dpop_bound``, and the server's
``server_max_lifetime`` and ``max_arguments_bytes``; by default the default settings').
What a case leaves out is what lets the call through the built-in checks: an active
agent and owner, a delegation of exactly this call, a registered tool offering the
action at risk tier 0, the tool's audience. The rate window and the call cap are
counted at the spend, not here.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from authority.policy import rules
from authority.policy.arguments import (
    ARGUMENTS,
    ARGUMENTS_DIGEST,
    ArgumentsRejected,
    BoundArguments,
    bind,
)
from authority.policy.cedar import CedarPolicy
from authority.policy.checks import (
    AgentFacts,
    Allow,
    DelegationFacts,
    Deny,
    Facts,
    ScopeEntry,
    ToolCall,
    ToolFacts,
)
from authority.settings_http import HttpSettings
from authority.settings_tokens import TokenSettings

Expected = Literal["allow", "deny", "approval_required"]
_AUDIENCE = "https://tools.example"
MAX_FILE_BYTES = 1 << 20
#: The server's defaults, which a case's ``context`` may change.
_LIFETIME: int = TokenSettings.model_fields["access_token_lifetime"].default
_MAX_LIFETIME: int = TokenSettings.model_fields["access_token_max_lifetime"].default
_MAX_ARGUMENTS: int = HttpSettings.model_fields["authorization_details_max_arguments_bytes"].default


class CasesError(ValueError):
    """The cases file cannot be run; ``str()`` says why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Call(_Strict):
    tool: str
    resource: str
    action: str
    arguments: dict[str, Any] | None = None
    arguments_digest: str | None = None


class _Agent(_Strict):
    id: str = "agt_example"
    owner_id: str = "own_example"
    status: str = "active"
    autonomy_level: int = Field(3, ge=0, le=3)
    owner_status: str = "active"


class _Scope(_Strict):
    tool: str
    resources: list[str]
    actions: list[str]


class _Delegation(_Strict):
    id: str = "dlg_example"
    status: str = "active"
    expires_at: int | None = None
    scope: list[_Scope] | None = None
    intent: str = ""
    max_calls: int | None = None
    rate_per_minute: int | None = None
    calls_used: int = 0


class _Tool(_Strict):
    name: str | None = None
    status: str = "active"
    audience: str = _AUDIENCE
    actions: list[str] | None = None
    read_actions: list[str] = []
    risk_tier: int = Field(0, ge=0, le=3)
    approval_required: bool = False
    single_use: bool = False
    dpop_required: bool = False
    max_token_lifetime: int | None = None


class _Context(_Strict):
    now: int | None = None
    audience: str | None = None
    lifetime: int = _LIFETIME
    server_max_lifetime: int = _MAX_LIFETIME
    max_arguments_bytes: int = _MAX_ARGUMENTS
    dpop_bound: bool = False


class Case(_Strict):
    name: str
    expect: Expected
    reason: str | None = None
    call: _Call
    agent: _Agent = _Agent()
    delegation: _Delegation = _Delegation()
    tool: _Tool | Literal[False] = _Tool()
    context: _Context = _Context()


class _File(_Strict):
    policy: str | None = None
    defaults: dict[str, Any] = {}
    case: list[dict[str, Any]] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    passed: bool
    decision: Expected
    reasons: list[str]
    expected: Expected
    expected_reason: str | None


def _merged(defaults: Mapping[str, Any], case: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(defaults)
    for key, value in case.items():
        base = merged.get(key)
        both = isinstance(base, Mapping) and isinstance(value, Mapping)
        merged[key] = {**base, **value} if both else value  # type: ignore[dict-item]
    return merged


def _bound(case: Case) -> BoundArguments | None:
    """The call's arguments bound as an exchange binds them (canonical form, digest)."""
    call = case.call
    detail: dict[str, object] = {}
    if call.arguments is not None:
        detail[ARGUMENTS] = call.arguments
    if call.arguments_digest is not None:
        detail[ARGUMENTS_DIGEST] = call.arguments_digest
    try:
        return bind(detail, max_bytes=case.context.max_arguments_bytes)
    except ArgumentsRejected as exc:
        raise CasesError(f"case {case.name!r}: {exc}") from None


def facts_of(case: Case, now: int) -> Facts:
    """The case as the facts an exchange decides on; ``CasesError`` for a case whose
    arguments an exchange would refuse."""
    call, agent, d, context = case.call, case.agent, case.delegation, case.context
    bound = _bound(case)
    at = context.now if context.now is not None else now
    scope = d.scope or [_Scope(tool=call.tool, resources=[call.resource], actions=[call.action])]
    tool = None
    if case.tool is not False:
        t = case.tool
        tool = ToolFacts(
            name=t.name or call.tool,
            status=t.status,
            audience=t.audience,
            resource_server_id="rs_example",
            actions=tuple(t.actions if t.actions is not None else [call.action]),
            read_actions=tuple(t.read_actions),
            risk_tier=t.risk_tier,
            approval_required=t.approval_required,
            single_use=t.single_use,
            dpop_required=t.dpop_required,
            max_token_lifetime=t.max_token_lifetime,
        )
    audience = context.audience or (tool.audience if tool is not None else _AUDIENCE)
    return Facts(
        now=at,
        agent=AgentFacts(
            agent.id, agent.owner_id, agent.status, agent.autonomy_level, agent.owner_status
        ),
        delegation=DelegationFacts(
            id=d.id,
            owner_id=agent.owner_id,
            agent_id=agent.id,
            status=d.status,
            expires_at=d.expires_at if d.expires_at is not None else at + 3600,
            scope=tuple(ScopeEntry(s.tool, tuple(s.resources), tuple(s.actions)) for s in scope),
            intent=d.intent,
            max_calls=d.max_calls,
            rate_per_minute=d.rate_per_minute,
            calls_used=d.calls_used,
        ),
        tool=tool,
        call=ToolCall(
            call.tool,
            call.resource,
            call.action,
            arguments_digest=bound.digest if bound is not None else None,
            arguments=bound.arguments if bound is not None else None,
        ),
        audience=audience,
        lifetime=context.lifetime,
        server_max_lifetime=context.server_max_lifetime,
        dpop_bound=context.dpop_bound,
    )


def _read(path: Path) -> str:
    """The file's text: at most ``MAX_FILE_BYTES`` of UTF-8, read one byte beyond."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise CasesError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:  # a NUL in the path
        raise CasesError(f"cannot read {path}: not a usable path") from None
    if len(data) > MAX_FILE_BYTES:
        raise CasesError(f"{path} exceeds {MAX_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CasesError(f"{path} is not UTF-8") from None


def load(path: Path) -> tuple[list[Case], Path | None]:
    """The cases of a file and the policy file it names (relative to it), if any."""
    text = _read(path)
    try:
        raw = tomllib.loads(text)
        parsed = _File.model_validate(raw)
        cases = [Case.model_validate(_merged(parsed.defaults, c)) for c in parsed.case]
    except tomllib.TOMLDecodeError as exc:
        raise CasesError(f"{path} is not TOML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise CasesError(f"{path}: {where}: {first['msg']}") from None
    policy = (path.parent / parsed.policy) if parsed.policy is not None else None
    return cases, policy


def run(cases: list[Case], policy: CedarPolicy, now: int | None = None) -> list[Result]:
    at = int(time.time()) if now is None else now
    results = []
    for case in cases:
        facts = facts_of(case, at)
        decided = rules.decide(facts, policy)
        reasons = rules.explain(facts, policy, decided)
        decision: Expected = "approval_required"
        if isinstance(decided, Allow):
            decision = "allow"
        elif isinstance(decided, Deny):
            decision = "deny"
        passed = decision == case.expect and (case.reason is None or case.reason in reasons)
        results.append(Result(case.name, passed, decision, reasons, case.expect, case.reason))
    return results
