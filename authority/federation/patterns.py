"""Patterns an identity rule compares a workload's subject and claims with.

A pattern without ``*`` is compared exactly. ``*`` matches any run of characters (the
empty run too) within one segment: segments are separated by ``/`` and by ``:``, the
separators of the subjects platforms write (``repo:org/repo:ref:refs/heads/main``,
``system:serviceaccount:ns:sa``, ``spiffe://td/path``), so ``repo:org/*:ref:refs/heads/main``
can never be satisfied by ``repo:org/a:ref:refs/heads/x:ref:refs/heads/main``. A pattern
ending in ``/**`` matches its prefix followed by ``/`` and anything non-empty. ``**``
anywhere else is refused when the pattern is made (``check_pattern``).

Matching is segment by segment with a linear-time glob for each, never a backtracking
regular expression: a pattern of many stars cannot make a long value expensive.
"""

from __future__ import annotations

import functools
import re

from authority.management.field_errors import Refused

#: Longest pattern (and longest value worth comparing), characters.
MAX_PATTERN_LENGTH = 512
#: Most ``*`` in one pattern (the trailing ``/**`` not counted).
MAX_WILDCARDS = 16
_SEPARATORS = re.compile(r"([/:])")
_REST = "/**"


class PatternError(Refused):
    """A pattern that cannot be used, in a fixed sentence that never quotes it."""


def check_pattern(pattern: str) -> None:
    """Refuse a pattern that is empty, too long, unprintable or misuses ``**``."""
    if not isinstance(pattern, str) or not pattern:
        raise PatternError("must be a non-empty string")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"must be at most {MAX_PATTERN_LENGTH} characters")
    if not pattern.isprintable():
        raise PatternError("must hold printable characters only")
    head = pattern[: -len(_REST)] if pattern.endswith(_REST) else pattern
    if "**" in head:
        raise PatternError("may use ** only as a last segment after /")
    if pattern.endswith(_REST) and not head:
        raise PatternError("must name a prefix before /**")
    if head.count("*") > MAX_WILDCARDS:
        raise PatternError(f"may hold at most {MAX_WILDCARDS} wildcards")


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str) -> tuple[tuple[str, ...], bool]:
    """The pattern's segments and separators (alternating), and whether ``/**`` ends it."""
    rest = pattern.endswith(_REST)
    head = pattern[: -len(_REST)] if rest else pattern
    return tuple(_SEPARATORS.split(head)), rest


def _glob(pattern: str, value: str) -> bool:
    """``*`` (any run, empty too) against one segment: the greedy two-pointer match,
    O(len(pattern) * len(value)) at worst, never exponential."""
    p = v = 0
    star = -1
    mark = 0
    while v < len(value):
        if p < len(pattern) and pattern[p] == "*":
            star, mark = p, v
            p += 1
        elif p < len(pattern) and pattern[p] == value[v]:
            p += 1
            v += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            v = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def matches(pattern: str, value: str) -> bool:
    """Whether ``value`` satisfies ``pattern`` (see the module's docstring)."""
    if "*" not in pattern:
        return pattern == value
    if len(value) > 4 * MAX_PATTERN_LENGTH:
        return False
    parts, rest = _compiled(pattern)
    values = _SEPARATORS.split(value)
    if rest:
        # The prefix's segments, then "/" and at least one character of anything.
        if len(values) <= len(parts) or values[len(parts)] != "/":
            return False
        if not "".join(values[len(parts) + 1 :]):
            return False
        values = values[: len(parts)]
    elif len(values) != len(parts):
        return False
    for index, (want, have) in enumerate(zip(parts, values, strict=True)):
        if index % 2:  # a separator: exactly the same one
            if want != have:
                return False
        elif not _glob(want, have):
            return False
    return True
