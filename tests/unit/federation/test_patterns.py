"""Rule patterns: exact, ``*`` within one segment, a trailing ``/**``; checked when made."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authority.federation.patterns import MAX_WILDCARDS, PatternError, check_pattern, matches


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("refs/heads/main", "refs/heads/main", True),
        ("refs/heads/main", "refs/heads/main2", False),
        ("refs/heads/main", "Refs/heads/main", False),
        ("refs/heads/*", "refs/heads/feature", True),
        ("refs/heads/*", "refs/heads/", True),
        ("refs/heads/*", "refs/heads/feature/x", False),
        ("refs/heads/release-*", "refs/heads/release-1.2", True),
        ("refs/heads/release-*", "refs/heads/hotfix-1.2", False),
        ("refs/*/main", "refs/heads/main", True),
        ("refs/*/main", "refs/heads/x/main", False),
        ("refs/heads/**", "refs/heads/a/b/c", True),
        ("refs/heads/**", "refs/heads/a", True),
        ("refs/heads/**", "refs/heads/", False),
        ("refs/heads/**", "refs/heads", False),
        ("refs/heads/**", "refs/headsx/a", False),
        ("refs/*/**", "refs/tags/v1/rc", True),
        # ":" separates segments too: a star never spans a GitHub subject's parts.
        ("repo:octo-org/*:ref:refs/heads/main", "repo:octo-org/app:ref:refs/heads/main", True),
        ("repo:octo-org/*:ref:refs/heads/main", "repo:octo-org/a:ref:x:ref:refs/heads/main", False),
        ("system:serviceaccount:agents:*", "system:serviceaccount:agents:planner", True),
        ("system:serviceaccount:agents:*", "system:serviceaccount:agents:a:b", False),
        ("spiffe://td/ns/*/sa/agent", "spiffe://td/ns/prod/sa/agent", True),
        ("*", "anything", True),
        ("*", "", True),
        ("*", "a/b", False),
        ("a*b*c", "aXbYc", True),
        ("a*b*c", "aXbY", False),
        ("*.*", "v1.2", True),
    ],
)
def test_matches(pattern: str, value: str, expected: bool) -> None:
    check_pattern(pattern)
    assert matches(pattern, value) is expected


@pytest.mark.parametrize(
    "pattern",
    [
        "",
        "**",
        "/**",
        "a/**/b",
        "a**",
        "**/a",
        "a\n",
        "a\x00",
        "x" * 513,
        "*a" * (MAX_WILDCARDS + 1),
    ],
)
def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(PatternError) as caught:
        check_pattern(pattern)
    # The sentence never repeats the pattern.
    assert len(pattern) < 4 or pattern not in str(caught.value)


def _reference(pattern: str, value: str) -> bool:
    """The rule as a regular expression (fine for small inputs)."""
    rest = pattern.endswith("/**")
    head = pattern[:-3] if rest else pattern
    regex = "".join("[^/:]*" if c == "*" else re.escape(c) for c in head)
    return re.fullmatch(regex + ("/.+" if rest else ""), value, re.DOTALL) is not None


@given(
    st.text(alphabet="ab*/:", max_size=12).filter(lambda p: "**" not in p),
    st.booleans(),
    st.text(alphabet="ab/:", max_size=14),
)
def test_matching_agrees_with_the_rule_as_a_regex(head: str, rest: bool, value: str) -> None:
    pattern = head + "/**" if rest else head
    if not pattern or (rest and not head):
        return
    assert matches(pattern, value) is _reference(pattern, value)


def test_many_stars_against_a_long_value_stay_cheap() -> None:
    pattern = "*a" * MAX_WILDCARDS
    check_pattern(pattern)
    # A backtracking regular expression of 16 stars would not finish on this; the glob
    # is linear per star.
    assert not matches(pattern, "a" * 2000 + "b")
    assert matches(pattern, "a" * 2000)
