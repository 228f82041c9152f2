"""What each agent usually does, held in process so the exchange decides on it for free.

An agent's baseline is learned from its issued grants: the tools it was issued tokens
for, how many calls, over how many active minutes (its usual rate), since when. The
tables (``storage.behaviour``) are folded from the grants in the background
(``authority.behaviour.refresh``); this instance adds what it issues itself in between
(``observe``), so a tool the owner approved joins the baseline at once here, and at the
next fold everywhere.

The rules (``check``), for an agent past its learning phase only (at least
``behaviour_learning_calls`` issued calls, and ``behaviour_learning_days`` since its
first; before that every new tool is simply learned):

* ``new_tool``: a tool it was never issued a token for;
* ``burst``: this minute's calls (checked by this instance, this one included) exceed both
  ``behaviour_burst_floor`` and ``behaviour_burst_factor`` times its usual rate per
  active minute.

A leaf module: ``authority.context`` holds one ``Baselines`` per instance.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

from authority.storage.behaviour import AgentBaseline

DAY: Final = 86400
Kind = Literal["new_tool", "burst"]


@dataclass(frozen=True, slots=True)
class Deviation:
    """A call far outside the baseline: which rule, and the sentence the owner sees."""

    kind: Kind
    explanation: str


@dataclass(frozen=True, slots=True)
class Rules:
    """The thresholds (``Settings.behaviour_*``), as the check needs them."""

    learning_calls: int
    learning_seconds: float
    burst_factor: float
    burst_floor: int


@dataclass(slots=True)
class _Known:
    calls: int
    active_minutes: int
    first_at: int
    tools: set[str] = field(default_factory=set)
    minute: int = -1  # the minute ``in_minute`` counts
    in_minute: int = 0  # calls issued by this instance in ``minute``
    asked_minute: int = -1  # the minute ``asked`` counts
    asked: int = 0  # calls checked for a burst by this instance in ``asked_minute``


class Baselines:
    def __init__(self) -> None:
        self._agents: dict[str, _Known] = {}
        self.loaded = False
        self.loaded_through = 0  # the fold's end when the tables were last loaded

    def load(self, baselines: Iterable[AgentBaseline]) -> None:
        """The tables' view of these agents; what this instance learned since is kept."""
        for stored in baselines:
            known = self._agents.get(stored.agent_id)
            if known is None:
                self._agents[stored.agent_id] = _Known(
                    stored.calls, stored.active_minutes, stored.first_at, set(stored.tools)
                )
                continue
            known.calls = max(known.calls, stored.calls)
            known.active_minutes = max(known.active_minutes, stored.active_minutes)
            known.first_at = min(known.first_at, stored.first_at)
            known.tools.update(stored.tools)
        self.loaded = True

    def observe(self, agent_id: str, tool: str, now: int) -> None:
        """A token issued here: the tool is known, the minute's count goes up."""
        minute = now // 60
        known = self._agents.get(agent_id)
        if known is None:
            known = self._agents[agent_id] = _Known(0, 0, now)
        if known.minute != minute:
            known.minute, known.in_minute = minute, 0
            known.active_minutes += 1
        known.in_minute += 1
        known.calls += 1
        known.tools.add(tool)

    def check(self, agent_id: str, tool: str, now: int, rules: Rules) -> Deviation | None:
        """The deviation of one more call of ``tool`` now, or None."""
        known = self._agents.get(agent_id)
        if known is None:  # no issued call yet: learning
            return None
        if known.calls < rules.learning_calls or now - known.first_at < rules.learning_seconds:
            return None
        if tool not in known.tools:
            return Deviation(
                "new_tool",
                f"first call to tool {tool} after {known.calls:,} calls to "
                f"{len(known.tools)} tool{'s' if len(known.tools) != 1 else ''}",
            )
        if rules.burst_factor <= 0:
            return None
        # The call counts towards this minute when it is checked, not once issued: calls
        # checked together see each other (and one stepped up still counts, erring on the
        # side of asking). The count is this instance's: N instances let up to N times the
        # threshold through in a minute before one of them asks.
        minute = now // 60
        if known.asked_minute != minute:
            known.asked_minute, known.asked = minute, 0
        known.asked += 1
        # The usual rate is that of the minutes before this one.
        calls, minutes, issued = known.calls, known.active_minutes, 0
        if known.minute == minute:
            calls, minutes, issued = calls - known.in_minute, minutes - 1, known.in_minute
        this_minute = max(known.asked, issued + 1)
        usual = calls / max(1, minutes)
        if this_minute > rules.burst_floor and this_minute > rules.burst_factor * usual:
            return Deviation(
                "burst",
                f"{this_minute} calls this minute, against a usual {usual:.1f} per minute "
                f"(step-up above {rules.burst_factor:g}x and {rules.burst_floor})",
            )
        return None

    def tools(self, agent_id: str) -> frozenset[str]:
        known = self._agents.get(agent_id)
        return frozenset() if known is None else frozenset(known.tools)
