"""Resource patterns of a delegation: ``*`` within one ``/``-separated segment, ``**`` across.

A pattern matches a resource as a whole. ``*`` matches any run of characters without a
``/`` (the empty run included), ``**`` any run at all, and every other character stands
for itself. A run of three or more stars matches what ``**`` matches. So ``acme/*``
matches ``acme/web`` and ``acme/`` but not ``acme/web/x``; ``acme/**`` matches all three;
``**`` matches everything.

Owners write the patterns and agents choose the resources, so neither may steer the
matcher into work that grows faster than the two lengths together: a backtracking regex
takes exponential time on ``*a*a*a*a*a*!`` against a run of ``a``. Here the pattern is
read once into an automaton (one position per literal or wildcard) and the resource is
read once, left to right, carrying the set of positions reached as the bits of one
integer (the "shift-and" simulation of Baeza-Yates and Gonnet). Each character of the
resource is one step, a fixed handful of operations on integers of ``len(pattern) + 1``
bits: O(len(pattern) * len(resource)) bit operations at worst, and no backtracking.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final

STAR: Final = "*"
GLOBSTAR: Final = "**"


@dataclass(frozen=True, slots=True)
class Compiled:
    """A pattern's automaton: bit ``i`` stands for "the first ``i`` tokens are matched"."""

    literals: dict[str, int]  # character -> the positions whose next token is that literal
    star: int  # positions whose next token is ``*`` (loops on anything but ``/``)
    globstar: int  # positions whose next token is ``**`` (loops on anything)
    start: int  # positions reached before reading anything
    accept: int  # the position after the last token
    wildcards: int


def tokens(pattern: str) -> list[str]:
    """Single literal characters, ``*`` and ``**``; a run of two or more stars is ``**``."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        if pattern[i] != "*":
            out.append(pattern[i])
            i += 1
            continue
        j = i
        while j < n and pattern[j] == "*":
            j += 1
        out.append(STAR if j - i == 1 else GLOBSTAR)
        i = j
    return out


def _closure(states: int, wild: int) -> int:
    # A wildcard may match the empty run, so reaching it reaches the position after it.
    # Wildcards never follow one another (runs are merged), so one shift is the closure.
    return states | ((states & wild) << 1)


@lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> Compiled:
    literals: dict[str, int] = {}
    star = globstar = wildcards = 0
    parts = tokens(pattern)
    for i, token in enumerate(parts):
        bit = 1 << i
        if token == STAR:
            star |= bit
            wildcards += 1
        elif token == GLOBSTAR:
            globstar |= bit
            wildcards += 1
        else:
            literals[token] = literals.get(token, 0) | bit
    start = _closure(1, star | globstar)
    return Compiled(literals, star, globstar, start, 1 << len(parts), wildcards)


def wildcards(pattern: str) -> int:
    """How many wildcards (``*`` or ``**``, a run of stars counting once) ``pattern`` has."""
    return compile_pattern(pattern).wildcards


def match_steps(pattern: str, resource: str) -> tuple[bool, int]:
    """Whether ``pattern`` matches all of ``resource``, and the steps taken to know.

    One step per character read, never more than ``len(resource)``; each costs a fixed
    number of integer operations on ``len(pattern) + 1`` bits.
    """
    p = compile_pattern(pattern)
    wild = p.star | p.globstar
    literals = p.literals
    states = p.start
    steps = 0
    for ch in resource:
        steps += 1
        # Stay on a wildcard that may consume ``ch``; advance past a literal equal to it.
        loops = p.globstar if ch == "/" else wild
        states = ((states & literals.get(ch, 0)) << 1) | (states & loops)
        states = _closure(states, wild)
        if not states:
            return False, steps
    return bool(states & p.accept), steps


def resource_matches(pattern: str, resource: str) -> bool:
    return match_steps(pattern, resource)[0]
