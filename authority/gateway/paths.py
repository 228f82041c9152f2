"""Paths into a JSON value, in a small subset of JSONPath (RFC 9535) syntax (pure).

``$`` (optional), ``.name`` or ``["name"]`` / ``['name']``, ``.*`` (any member),
``[N]`` (an element), ``[*]`` (any element), ``..name`` (a member of that name at any
depth below). ``items[*].card`` reads as ``$.items[*].card``. No filters, slices or
unions: what masking and command rules need, and nothing that costs more than one walk.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

Path = tuple["Step", ...]
State = tuple[int, int]  # (path, step): how far one path has matched so far


@dataclass(frozen=True, slots=True)
class Step:
    kind: Literal["key", "any_key", "index", "any_index", "descend"]
    name: str | None = None
    index: int | None = None


class TooDeep(ValueError):
    """The value nests deeper than the walk goes."""


_NAME = re.compile(r"[^.\[\]\s\"']+")
_STEP = re.compile(
    r"""\.\.(?P<descend>[^.\[\]\s"']+)|\.(?P<star>\*)(?![^.\[])|\.(?P<key>[^.\[\]\s"']+)"""
    r"""|\[(?P<index>[0-9]{1,9})\]|\[(?P<all>\*)\]|\["(?P<dq>[^"\\]*)"\]|\['(?P<sq>[^'\\]*)'\]"""
)
#: How deep ``find`` walks before it gives up (``TooDeep``).
MAX_DEPTH: Final = 128


def parse_path(text: str, *, root: bool = False) -> Path:
    """A path's steps; ``ValueError`` says where it stops making sense.

    ``$`` alone (no steps: the whole value) only with ``root``.
    """
    rest = text[1:] if text.startswith("$") else text
    position = len(text) - len(rest)
    if rest and _NAME.match(rest) is not None and not rest.startswith("*"):
        rest = "." + rest
        position -= 1
    steps: list[Step] = []
    while rest:
        match = _STEP.match(rest)
        if match is None:
            raise ValueError(f"path {text!r}: cannot read it from position {max(position, 0)}")
        groups = match.groupdict()
        if groups["descend"] is not None:
            steps.append(Step("descend", name=groups["descend"]))
        elif groups["key"] is not None:
            steps.append(Step("key", name=groups["key"]))
        elif groups["dq"] is not None or groups["sq"] is not None:
            name = groups["dq"] if groups["dq"] is not None else groups["sq"]
            steps.append(Step("key", name=name))
        elif groups["star"] is not None:
            steps.append(Step("any_key"))
        elif groups["index"] is not None:
            steps.append(Step("index", index=int(groups["index"])))
        else:
            steps.append(Step("any_index"))
        position += match.end()
        rest = rest[match.end() :]
    if not steps and not root:
        raise ValueError(f"path {text!r}: names no member (a path must name what it selects)")
    return tuple(steps)


def advance(
    paths: Sequence[Path],
    states: frozenset[State],
    *,
    key: str | None = None,
    index: int | None = None,
) -> frozenset[State]:
    """The states of a member (``key``) or an element (``index``) of a value in ``states``."""
    following: set[State] = set()
    for which, at in states:
        steps = paths[which]
        if at >= len(steps):
            continue
        step = steps[at]
        if step.kind == "descend":
            following.add((which, at))  # still looking, deeper down
            if key is not None and key == step.name:
                following.add((which, at + 1))
        elif (
            (step.kind == "key" and key is not None and key == step.name)
            or (step.kind == "any_key" and key is not None)
            or (step.kind == "index" and index is not None and index == step.index)
            or (step.kind == "any_index" and index is not None)
        ):
            following.add((which, at + 1))
    return frozenset(following)


def find(value: Any, path: Path, max_depth: int = MAX_DEPTH) -> Iterator[Any]:
    """Every value ``path`` selects in ``value``, in document order.

    Raises ``TooDeep`` rather than walk past ``max_depth`` while the path may still match.
    """
    paths = (path,)
    stack: list[tuple[Any, frozenset[State], int]] = [(value, frozenset({(0, 0)}), 0)]
    while stack:
        current, states, depth = stack.pop()
        if not states:
            continue
        if any(at == len(path) for _, at in states):
            yield current
            if all(at == len(path) for _, at in states):
                continue
        if depth >= max_depth and isinstance(current, dict | list):
            raise TooDeep(path)
        children: list[tuple[Any, frozenset[State], int]] = []
        if isinstance(current, dict):
            for key, member in current.items():
                children.append((member, advance(paths, states, key=key), depth + 1))
        elif isinstance(current, list):
            for at, element in enumerate(current):
                children.append((element, advance(paths, states, index=at), depth + 1))
        stack.extend(reversed(children))
