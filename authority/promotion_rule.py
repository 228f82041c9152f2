"""The promotion rule: when an agent's autonomy level is proposed one up to its owner.

A rule is clauses ``NAME OP NUMBER`` joined by ``and``, over the agent's record since its
level last changed (or since its first call): ``days``, ``calls``, ``violations`` (denied
exchanges that count towards containment, and containments) and ``step_ups`` (calls its
baseline sent to the owner). ``days >= 30 and calls >= 1000 and violations == 0`` is the
default. An empty rule never holds. The rule is parsed when the settings load, so a typo
stops the start, not the first evaluation.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

NAMES: Final = frozenset({"days", "calls", "violations", "step_ups"})
_OPS: Final[Mapping[str, Callable[[float, float], bool]]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
}
_CLAUSE = re.compile(r"^\s*([a-z_]+)\s*(>=|<=|==|>|<)\s*(\d+(?:\.\d+)?)\s*$")


class RuleError(ValueError):
    """The rule does not parse; the message names the clause, never more."""


@dataclass(frozen=True, slots=True)
class Clause:
    name: str
    op: str
    value: float

    def holds(self, record: Mapping[str, float]) -> bool:
        return _OPS[self.op](record[self.name], self.value)


def parse(rule: str) -> tuple[Clause, ...]:
    """The clauses of ``rule``; () for an empty one."""
    if not rule.strip():
        return ()
    clauses = []
    for n, part in enumerate(re.split(r"\band\b", rule), start=1):
        match = _CLAUSE.match(part)
        if match is None or match.group(1) not in NAMES:
            raise RuleError(f"clause {n} is not 'NAME OP NUMBER' over {sorted(NAMES)}")
        clauses.append(Clause(match.group(1), match.group(2), float(match.group(3))))
    return tuple(clauses)


def holds(rule: str, record: Mapping[str, float]) -> bool:
    """Whether every clause of ``rule`` holds on ``record``; an empty rule never does."""
    clauses = parse(rule)
    return bool(clauses) and all(clause.holds(record) for clause in clauses)
