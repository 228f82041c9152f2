"""A call's arguments as Cedar sees them (``policy.cedar_values``), and Cedar deciding on them."""

from __future__ import annotations

import logging
from typing import Any

import cedarpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authority.policy.arguments import ArgumentsRejected, BoundArguments, bind
from authority.policy.cedar import CedarPolicy
from authority.policy.cedar_values import MAX_DEPTH, record
from authority.policy.checks import AgentFacts, DelegationFacts, Facts, ToolCall, ToolFacts
from authority.sdk.arguments import digest


def facts(arguments: dict[str, Any] | None, digest_: str | None = None) -> Facts:
    return Facts(
        now=1_800_000_000,
        agent=AgentFacts("agt_1", "own_1", "active", 2, "active"),
        delegation=DelegationFacts(
            "dlg_1", "own_1", "agt_1", "active", 1_900_000_000, (), "intent", None, None, 0
        ),
        tool=ToolFacts(
            "sql.query", "active", "https://db", "rs_1", ("run",), (), 1, False, False, False, None
        ),
        call=ToolCall(
            "sql.query",
            "db/main",
            "run",
            arguments_digest=digest_ or (digest(arguments) if arguments is not None else None),
            arguments=arguments,
        ),
        audience="https://db",
        lifetime=5,
        server_max_lifetime=60,
        dpop_bound=False,
    )


# --- the mapping --------------------------------------------------------------------------------
def test_json_values_become_cedar_values() -> None:
    assert record(
        {
            "s": "x",
            "t": True,
            "n": -7,
            "whole": 2.0,
            "half": 0.5,
            "huge": 1e30,
            "none": None,
            "list": [1, "a", None, [2], {"k": None}],
            "obj": {"a": {"b": 1}},
        }
    ) == {
        "s": "x",
        "t": True,
        "n": -7,
        "whole": 2,
        "half": "0.5",
        "huge": "1e+30",
        "list": [1, "a", [2], {}],
        "obj": {"a": {"b": 1}},
    }


def test_cedar_escapes_cannot_be_forged() -> None:
    """``{"__entity": …}`` would be an entity reference to Cedar, ``{"__extn": …}`` a value
    of an extension type: an agent's argument must never become either."""
    forged = {
        "to": {"__entity": {"type": "Owner", "id": "own_1"}},
        "amount": {"__extn": {"fn": "decimal", "arg": "1.0"}},
        "__entity": {"type": "Agent", "id": "agt_1"},
        "deep": [{"__expr": "1"}],
    }
    assert record(forged) == {"to": {}, "amount": {}, "deep": [{}]}


def test_nesting_beyond_the_bound_is_left_out() -> None:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(MAX_DEPTH + 5):
        value = {"a": value}
    converted = record(value)
    depth = 0
    while isinstance(converted, dict) and "a" in converted:
        converted = converted["a"]
        depth += 1
    assert depth == MAX_DEPTH - 1


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b", "__entity", "__extn", "", "x y"]), children)
    ),
    max_leaves=20,
)
_PERMIT = cedarpy.PolicySet.from_str("permit(principal, action, resource);")


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=6), JSON, max_size=6))
def test_cedar_accepts_every_converted_object(arguments: dict[str, Any]) -> None:
    """Whatever JSON the agent sends, Cedar can build the request (no request error)."""
    request = {
        "principal": 'Agent::"a"',
        "action": 'Action::"run"',
        "resource": 'Tool::"t"',
        "context": {"arguments": record(arguments)},
    }
    result = cedarpy.is_authorized(request, _PERMIT, [])
    assert result.diagnostics.errors == []
    assert result.decision == cedarpy.Decision.Allow


@given(st.integers(min_value=0, max_value=40))
def test_deep_arrays_are_still_a_request_cedar_builds(depth: int) -> None:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    request = {
        "principal": 'Agent::"a"',
        "action": 'Action::"run"',
        "resource": 'Tool::"t"',
        "context": {"arguments": record({"v": value})},
    }
    assert cedarpy.is_authorized(request, _PERMIT, []).diagnostics.errors == []


# --- decisions ----------------------------------------------------------------------------------
POLICY = CedarPolicy(
    '@id("no-drop")\n'
    'forbid(principal, action, resource == Tool::"sql.query")\n'
    '  when { context.arguments.sql like "*DROP*" };\n'
)
BOUND_ONLY = CedarPolicy(
    "forbid(principal, action, resource) unless { context has arguments_digest };"
)


def test_a_forbid_on_an_argument_denies_only_what_it_says() -> None:
    assert POLICY.evaluate(facts({"sql": "SELECT 1"})).allowed
    verdict = POLICY.evaluate(facts({"sql": "DROP TABLE t"}))
    assert (verdict.allowed, verdict.policy_ids) == (False, ("no-drop",))
    # Only the digest: the arguments are unknown here, so the policy cannot hold: denied.
    assert not POLICY.evaluate(facts(None, digest({"sql": "SELECT 1"}))).allowed


def test_a_policy_can_require_bound_arguments() -> None:
    """``context has arguments_digest``: the token will be good for one set of arguments."""
    assert not BOUND_ONLY.evaluate(facts(None)).allowed
    assert BOUND_ONLY.evaluate(facts(None, digest({"sql": "x"}))).allowed
    assert BOUND_ONLY.evaluate(facts({"sql": "x"})).allowed


def test_a_missing_argument_denies_and_the_log_names_the_policy_not_the_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = CedarPolicy(
        '@id("cap")\nforbid(principal, action, resource) when { context.arguments.n * 4096 > 0 };'
    )
    with caplog.at_level(logging.WARNING, logger="authority.policy"):
        assert not policy.evaluate(facts({"m": 1})).allowed  # no attribute n
        # Cedar's message for an overflow quotes the operand: the log must not.
        assert not policy.evaluate(facts({"n": 9007199254740991})).allowed
    assert "cap" in caplog.text
    assert "9007199254740991" not in caplog.text


# --- binding --------------------------------------------------------------------------------------
def test_bind_keeps_the_arguments_out_of_its_repr() -> None:
    bound = bind({"arguments": {"password": "hunter2"}}, max_bytes=100)
    assert isinstance(bound, BoundArguments)
    assert "hunter2" not in repr(bound)
    assert "hunter2" not in repr(ToolCall("t", "r", "a", bound.digest, bound.arguments))


def test_bind_counts_canonical_bytes() -> None:
    # "é" is two UTF-8 bytes; RFC 8785 writes it as itself, not as \\u00e9.
    assert bind({"arguments": {"a": "é"}}, max_bytes=len('{"a":"é"}'.encode())) is not None
    with pytest.raises(ArgumentsRejected):
        bind({"arguments": {"a": "é"}}, max_bytes=len('{"a":"é"}'))
