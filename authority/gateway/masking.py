"""Inline masking of what an upstream answers, before the agent sees it (pure, no I/O).

Implements ``MaskingPolicy``, ``JsonMasker`` and ``StreamMasker`` of
``gateway.contracts``, from a per-tool rule set (``policy_from_config``)::

    {
      "default": {"detectors": ["email", "card", "iban", "bearer", "jwt", "pem_private_key"]},
      "tools": {
        "crm.contacts.get": {"fields": ["$.user.ssn", "items[*].card", "$..password"]},
        "mail.send": {"detectors": ["card", "iban", "bearer", "jwt", "pem_private_key"]}
      }
    }

``default`` applies to every call (and to calls that name no tool); omitted, it is every
detector and no field. A tool's rules replace the default member by member: a member it
gives (``fields``, ``detectors``) replaces the default's, a member it omits is the
default's. Field paths (``gateway.paths``): ``$`` (optional), ``.name`` or
``["name"]``, ``.*`` (any member), ``[N]``, ``[*]`` (any element), ``..name`` (a member
of that name at any depth). A matched value, whatever its type, becomes
``"[masked:field]"``; detected text becomes ``[masked:<detector>]``
(``gateway.detectors``: what each one catches and what it does not). ``counts`` say
what fired, by ``field:<path>`` or detector, never a value.

JSON (``JsonMasker``): field rules first, then every string value (and every integer
that is a whole card number) through the detectors. Object keys are not masked. Values
nested deeper than ``MAX_DEPTH`` are masked whole (``[masked:depth]``), not walked.

Streams (``StreamMasker``): detectors only (a byte stream has no fields), over the bytes
as sent (read as Latin-1, so any bytes pass through unchanged). A value split across
chunks is masked as if the stream were one chunk: a decision at one position reads at
most ``detectors.REACH`` characters from it, so the masker releases everything but the
undecided tail, and holds back at most ``STREAM_HOLD`` bytes (16 KiB and a few) between
two chunks; it never holds a whole body. Inside a PEM private key it drops the key's
bytes as they come and holds only what could be the start of its END line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import detectors as found
from .contracts import JsonMasker, MaskingPolicy, StreamMasker
from .detectors import DETECTORS, PEM, PEM_END, PEM_END_REACH, REACH, Detector, replacement
from .paths import Path, State, advance, parse_path

#: JSON nesting walked; deeper values are masked whole.
MAX_DEPTH: Final = 128
#: The most bytes a stream masker holds between two chunks.
STREAM_HOLD: Final = 2 * REACH
FIELD: Final = "field"
DEPTH: Final = "depth"

DetectorName = Literal["email", "card", "iban", "bearer", "jwt", "pem_private_key"]
ToolName = Annotated[str, Field(min_length=1, max_length=200)]


class MaskingConfigError(ValueError):
    """The masking configuration cannot be used; the message names every problem."""


# --- configuration ------------------------------------------------------------------------
class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    fields: list[Annotated[str, Field(min_length=1, max_length=500)]] | None = None
    detectors: list[DetectorName] | None = None

    @field_validator("fields")
    @classmethod
    def _paths(cls, value: list[str] | None) -> list[str] | None:
        for path in value or ():
            parse_path(path)
        return value


class MaskingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    default: Rules = Rules()
    tools: dict[ToolName, Rules] = Field(default_factory=dict)


def _described(error: ValidationError) -> str:
    lines = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in item["loc"]) or "masking"
        lines.append(f"{where}: {item['msg']}")
    return "invalid masking configuration: " + "; ".join(lines)


# --- the maskers --------------------------------------------------------------------------
def _scan(
    text: str,
    pos: int,
    chosen: Sequence[Detector],
    counts: Counter[str],
    *,
    final: bool,
    dropping: bool,
) -> tuple[list[str], int, bool]:
    """Mask ``text`` from ``pos`` as far as can be decided now.

    Returns the masked pieces, where it stopped, and whether it is inside a PEM key's body
    (``dropping``). Unless ``final``, a detection is taken only where every character it
    could read has arrived; what follows stays for the next call.
    """
    pieces: list[str] = []
    end = len(text)
    limit = end if final else end - REACH
    upcoming: dict[str, tuple[int, int] | None] = {}
    while True:
        if dropping:
            # A key runs to its END line; a key without one, to the end of the stream.
            closing = PEM_END.search(text, pos)
            if closing is not None and (final or closing.start() + PEM_END_REACH <= end):
                pos, dropping = closing.end(), False
                continue
            return pieces, end if final else max(pos, end - PEM_END_REACH), True
        best: tuple[Detector, tuple[int, int]] | None = None
        for detector in chosen:
            candidate = upcoming.get(detector.name, (-1, -1))
            if candidate is not None and candidate[0] < pos:
                candidate = upcoming[detector.name] = detector.find(text, pos)
            if candidate is not None and (best is None or candidate[0] < best[1][0]):
                best = (detector, candidate)
        if best is None or best[1][0] >= limit:
            if limit > pos:
                pieces.append(text[pos:limit])
                pos = limit
            return pieces, pos, False
        detector, (start, stop) = best
        pieces.append(text[pos:start])
        pieces.append(replacement(detector.name))
        counts[detector.name] += 1
        pos, dropping = stop, detector.name == PEM


def mask_text(text: str, chosen: Sequence[Detector], counts: Counter[str]) -> str:
    pieces, _, _ = _scan(text, 0, chosen, counts, final=True, dropping=False)
    return "".join(pieces)


class DetectorStream:
    """``StreamMasker`` over one body: the undecided tail is all it keeps.

    ``hold``: how much gathers before a scan (at least ``REACH``); what is decided does
    not depend on it, only how often the scan runs and how much is held back.
    """

    def __init__(self, chosen: Sequence[Detector], hold: int = STREAM_HOLD) -> None:
        if hold < REACH:
            raise ValueError("a stream must hold at least the detectors' reach")
        self._hold = hold
        self._chosen = tuple(chosen)
        self._counts: Counter[str] = Counter()
        self._context = ""  # the character before the held text (for look-behinds)
        self._held = ""
        self._dropping = False

    @property
    def counts(self) -> Mapping[str, int]:
        return dict(self._counts)

    @property
    def held(self) -> int:
        """Bytes received and not yet released."""
        return len(self._held)

    def feed(self, chunk: bytes) -> bytes:
        self._held += chunk.decode("latin-1")
        # Scanning only once a whole hold has gathered keeps tiny chunks cheap; the
        # decisions are the same whenever the scan runs.
        if len(self._held) < self._hold:
            return b""
        return self._release(final=False)

    def finish(self) -> bytes:
        return self._release(final=True)

    def _release(self, *, final: bool) -> bytes:
        text = self._context + self._held
        pieces, pos, self._dropping = _scan(
            text,
            len(self._context),
            self._chosen,
            self._counts,
            final=final,
            dropping=self._dropping,
        )
        self._context = text[pos - 1] if pos > 0 else ""
        self._held = text[pos:]
        return "".join(pieces).encode("latin-1")


@dataclass(frozen=True, slots=True)
class _Field:
    text: str
    steps: Path


class _Json:
    """``JsonMasker`` for one call: fields, then detectors; a fresh value, input untouched."""

    def __init__(self, fields: Sequence[_Field], chosen: Sequence[Detector]) -> None:
        self._fields = tuple(fields)
        self._paths = tuple(f.steps for f in fields)
        self._chosen = tuple(chosen)
        self._cards = any(d.name == "card" for d in chosen)
        self._counts: Counter[str] = Counter()

    @property
    def counts(self) -> Mapping[str, int]:
        return dict(self._counts)

    def mask(self, value: Any) -> Any:
        return self._value(value, frozenset((i, 0) for i in range(len(self._fields))), 0)

    def _value(self, value: Any, states: frozenset[State], depth: int) -> Any:
        for index, step in sorted(states):
            if step == len(self._fields[index].steps):
                self._counts[f"{FIELD}:{self._fields[index].text}"] += 1
                return replacement(FIELD)
        if depth >= MAX_DEPTH and isinstance(value, dict | list):
            self._counts[DEPTH] += 1
            return replacement(DEPTH)
        if isinstance(value, dict):
            return {
                k: self._value(v, advance(self._paths, states, key=k), depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [
                self._value(v, advance(self._paths, states, index=i), depth + 1)
                for i, v in enumerate(value)
            ]
        if isinstance(value, str):
            return mask_text(value, self._chosen, self._counts)
        if self._cards and type(value) is int and found.whole_card(value):
            self._counts["card"] += 1
            return replacement("card")
        return value


@dataclass(frozen=True, slots=True)
class _Effective:
    fields: tuple[_Field, ...]
    detectors: tuple[Detector, ...]


class RuleMaskingPolicy:
    """``MaskingPolicy`` from a validated ``MaskingConfig``."""

    def __init__(self, config: MaskingConfig) -> None:
        self.config = config
        self._default = self._effective(config.default, None)
        self._tools = {
            name: self._effective(rules, self._default) for name, rules in config.tools.items()
        }

    @staticmethod
    def _effective(rules: Rules, default: _Effective | None) -> _Effective:
        if rules.fields is not None:
            fields = tuple(_Field(path, parse_path(path)) for path in rules.fields)
        else:
            fields = default.fields if default is not None else ()
        if rules.detectors is not None:
            names = set(rules.detectors)
            chosen = tuple(d for name, d in DETECTORS.items() if name in names)
        else:
            chosen = default.detectors if default is not None else tuple(DETECTORS.values())
        return _Effective(fields, chosen)

    def _rules(self, tool: str | None) -> _Effective:
        return self._tools.get(tool, self._default) if tool is not None else self._default

    def json_masker(self, tool: str | None) -> JsonMasker:
        rules = self._rules(tool)
        return _Json(rules.fields, rules.detectors)

    def stream_masker(self, tool: str | None) -> StreamMasker:
        return DetectorStream(self._rules(tool).detectors)


def policy_from_config(config: Mapping[str, Any]) -> MaskingPolicy:
    """The masking policy of a configuration (JSON-shaped: from a file or the settings).

    Raises ``MaskingConfigError`` naming every problem (unknown members, unknown
    detectors, unreadable field paths).
    """
    try:
        validated = MaskingConfig.model_validate(config)
    except ValidationError as exc:
        raise MaskingConfigError(_described(exc)) from None
    return RuleMaskingPolicy(validated)
