"""Delegation resource patterns: the documented semantics, agreement with a reference
matcher, and work bounded by the lengths whatever an owner writes and an agent asks."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authority.policy.patterns import match_steps, resource_matches, tokens, wildcards


def reference(pattern: str, resource: str) -> bool:
    """The semantics as a regex (what the matcher replaced): ``**`` is ``.*``, ``*`` is
    ``[^/]*``, everything else literal. Backtracking, so only for small inputs."""
    parts = []
    for piece in re.split(r"(\*\*|\*)", pattern):
        if piece == "**":
            parts.append(".*")
        elif piece == "*":
            parts.append("[^/]*")
        else:
            parts.append(re.escape(piece))
    return re.fullmatch("".join(parts), resource, re.DOTALL) is not None


@pytest.mark.parametrize(
    ("pattern", "resource", "expected"),
    [
        ("acme/*", "acme/web", True),
        ("acme/*", "acme/", True),  # * may match an empty segment
        ("acme/*", "acme/web/x", False),  # * never crosses a /
        ("acme/*", "acme", False),
        ("acme/**", "acme/web/x", True),
        ("acme/**", "acme/", True),
        ("acme/**", "acme", False),
        ("**", "", True),
        ("**", "anything/at/all", True),
        ("*", "", True),
        ("*", "a/b", False),
        ("**/x", "/x", True),  # ** at the start, empty
        ("**/x", "a/b/x", True),
        ("**/x", "x", False),
        ("a**b", "a/c/d/b", True),  # ** is not confined to whole segments
        ("a**b", "ab", True),
        ("a*b", "a/b", False),
        ("acme/*/x", "acme//x", True),  # empty segments are segments
        ("acme//x", "acme/x", False),
        ("***", "a/b", True),  # a run of stars matches what ** matches
        ("a***", "a/b/c", True),
        ("acme/web", "acme/web", True),  # literal
        ("acme/web", "acme/webs", False),
        ("acme/web", "acme/we", False),
        ("a.c", "abc", False),  # regex metacharacters are literal
        ("a+(b)?[c]", "a+(b)?[c]", True),
        ("a+(b)?[c]", "aa(b)[c]", False),
        ("x$^|\\", "x$^|\\", True),
        ("é/*", "é/ü", True),
        ("*.json", "config.json", True),
        ("*.json", "dir/config.json", False),
        ("**.json", "dir/config.json", True),
        ("*a*a*a*a*a*a*a*a*!", "a" * 40, False),
        ("*a*a*a*a*a*a*a*a*!", "a" * 40 + "!", True),
    ],
)
def test_documented_semantics(pattern: str, resource: str, expected: bool) -> None:
    assert resource_matches(pattern, resource) is expected
    if len(resource) <= 20:
        assert reference(pattern, resource) is expected


ALPHABET = "ab/*."


@settings(max_examples=3000, deadline=None)
@given(st.text(ALPHABET, max_size=8), st.text("ab/.", max_size=12))
def test_agrees_with_the_reference(pattern: str, resource: str) -> None:
    assert resource_matches(pattern, resource) is reference(pattern, resource)


@settings(max_examples=1000, deadline=None)
@given(st.text(ALPHABET, max_size=6), st.text("ab/.", max_size=8), st.text("ab/.", max_size=4))
def test_agrees_on_resources_built_from_the_pattern(pattern: str, fill: str, tail: str) -> None:
    """Random resources rarely match; these are the pattern with its stars filled in."""
    resource = pattern.replace("**", fill).replace("*", fill.replace("/", "")) + tail
    assert resource_matches(pattern, resource) is reference(pattern, resource)


def test_wildcards_are_counted_a_run_of_stars_once() -> None:
    assert wildcards("acme/web") == 0
    assert wildcards("acme/*/issues/**") == 2
    assert wildcards("***") == 1
    assert wildcards("*a*a*a*a*a*a*a*a*!") == 9
    assert tokens("a***b*c") == ["a", "**", "b", "*", "c"]


RESOURCE = "a" * 2048
WORST = [
    "*a" * 8 + "!",  # the backtracking regex's exponential case
    "*a" * 255 + "!",  # as many wildcards as a 512-character pattern holds
    "**a" * 170 + "!",
    "**" + "a" * 509 + "!",  # every literal position alive at once
    "*/" * 255 + "*",
    "**a*" * 127 + "!",
]


@pytest.mark.parametrize("pattern", WORST)
def test_worst_cases_take_one_step_per_character(pattern: str) -> None:
    """Steps, not seconds: the work is one step per character of the resource whatever
    the pattern, and twice the resource is twice the steps."""
    assert len(pattern) <= 512
    for resource in (RESOURCE, RESOURCE + "/" + RESOURCE):
        matched, steps = match_steps(pattern, resource)
        assert matched is False
        assert steps <= len(resource)
    _, short = match_steps(pattern, RESOURCE[:1024])
    _, long = match_steps(pattern, RESOURCE)
    assert long <= 2 * short


def test_a_match_reads_the_resource_once() -> None:
    matched, steps = match_steps("*a" * 8 + "*!", RESOURCE + "!")
    assert (matched, steps) == (True, len(RESOURCE) + 1)


def test_a_mismatch_stops_at_the_first_character_nothing_can_follow() -> None:
    assert match_steps("acme/*", "other/" + RESOURCE) == (False, 1)
