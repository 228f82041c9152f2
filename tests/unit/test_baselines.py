"""The baseline's rules (``authority.baselines``) and the promotion rule's format
(``authority.promotion_rule``), on values: no storage, no clock but the numbers given."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from authority import promotion_rule
from authority.baselines import DAY, Baselines, Rules
from authority.settings import Settings
from authority.storage.behaviour import AgentBaseline

T0 = 1_800_000_000  # a minute's start
RULES = Rules(learning_calls=100, learning_seconds=7 * DAY, burst_factor=10, burst_floor=30)


def learned(calls: int = 1000, minutes: int = 500, age: int = 30 * DAY) -> Baselines:
    known = Baselines()
    known.load([AgentBaseline("agt_1", calls, minutes, T0 - age, T0 - 60, frozenset({"a", "b"}))])
    return known


def test_an_unknown_agent_and_one_still_learning_are_never_stepped_up() -> None:
    assert Baselines().check("agt_1", "new", T0, RULES) is None
    assert learned(calls=99).check("agt_1", "new", T0, RULES) is None
    assert learned(age=6 * DAY).check("agt_1", "new", T0, RULES) is None


def test_a_new_tool_after_learning_is_explained() -> None:
    found = learned(calls=1200).check("agt_1", "new", T0, RULES)
    assert found is not None and found.kind == "new_tool"
    assert found.explanation == "first call to tool new after 1,200 calls to 2 tools"
    assert learned().check("agt_1", "a", T0, RULES) is None


def test_a_burst_needs_both_the_factor_and_the_floor() -> None:
    known = learned(calls=1000, minutes=500)  # 2 a minute: 10x is 20, the floor 30
    for _ in range(30):
        assert known.check("agt_1", "a", T0, RULES) is None
        known.observe("agt_1", "a", T0)
    found = known.check("agt_1", "a", T0, RULES)
    assert found is not None and found.kind == "burst"
    assert found.explanation.startswith("31 calls this minute, against a usual 2.0 per minute")
    assert known.check("agt_1", "a", T0 + 60, RULES) is None  # a new minute
    off = Rules(100, 7 * DAY, burst_factor=0, burst_floor=0)
    assert known.check("agt_1", "a", T0, off) is None


def test_what_this_instance_issued_is_kept_across_a_load() -> None:
    known = learned()
    known.observe("agt_1", "c", T0)
    known.load([AgentBaseline("agt_1", 900, 400, T0 - 30 * DAY, T0, frozenset({"a"}))])
    assert known.tools("agt_1") == frozenset({"a", "b", "c"})
    assert known.check("agt_1", "c", T0, RULES) is None


def test_the_promotion_rule_format() -> None:
    rule = "days >= 30 and calls >= 1000 and violations == 0"
    assert promotion_rule.holds(rule, {"days": 30, "calls": 1000, "violations": 0, "step_ups": 9})
    assert not promotion_rule.holds(rule, {"days": 29.9, "calls": 5000, "violations": 0})
    assert not promotion_rule.holds(rule, {"days": 90, "calls": 5000, "violations": 1})
    assert not promotion_rule.holds("", {"days": 90})
    for bad in ("days >= x", "days => 3", "hours >= 3", "days >= 3 or calls > 1"):
        with pytest.raises(promotion_rule.RuleError):
            promotion_rule.parse(bad)


def test_a_rule_that_does_not_parse_stops_the_settings() -> None:
    with pytest.raises(ValidationError):
        Settings(secret_key="x" * 40, promotion_rule="days >= soon")


def test_a_rule_longer_than_its_proposal_records_stops_the_settings() -> None:
    rule = " and ".join(["calls >= 1"] * 400)  # parses, 5,996 characters
    promotion_rule.parse(rule)
    with pytest.raises(ValidationError):
        Settings(secret_key="x" * 40, promotion_rule=rule)
