"""Command-level blocking: rules on a call's arguments that stop it before the upstream
sees it (the gateway's ``CommandPolicy``; pure, no I/O).

``policy_from_config`` reads, and validates with pydantic::

    {
      "default": [{"name": "no-rm-rf", "path": "$..command", "deny": ["rm -rf"]}],
      "tools": {
        "sql.query": [
          {"name": "no-ddl", "path": "$.sql", "deny": ["DROP", "TRUNCATE"], "normalise": "sql"},
          {"name": "no-bare-delete", "path": "sql", "normalise": "sql",
           "deny_regex": ["\\\\bdelete\\\\s+from\\\\s+\\\\S+\\\\s*(;|$)"]}
        ],
        "payments.send": [
          {"name": "amount-cap", "path": "amount", "max": 100, "required": true},
          {"name": "known-currencies", "path": "currency", "allowed": ["EUR", "USD"]}
        ],
        "deploy.run": [{"name": "no-force", "path": "force", "equals": true}]
      }
    }

Every rule of ``default`` applies to every tool, then the tool's own (a tool cannot lift a
default rule); the first that blocks names the refusal. A rule reads the values its
``path`` (``gateway.paths``; ``$`` alone is all the arguments) selects; with
``required`` a call where it selects nothing is blocked, otherwise such a call passes
that rule. One condition per rule:

``deny``        words or phrases, matched whole (a word is not matched inside a longer
                word) in every string of the selected values, object keys included
``deny_regex``  RE2 patterns (linear time whatever the pattern or the input;
                case-insensitive unless ``normalise`` is ``exact``), searched the same way
``max``/``min`` a number within the bounds; anything else (a string, a boolean, a
                non-finite number) is blocked, since an upstream may read it as a number
``allowed``     each selected value equal to one of these (JSON equality, RFC 8785
                canonical form: ``1.0`` is ``1``, ``true`` is not ``1``)
``equals``      blocked when a selected value equals this; strings compare normalised,
                and a string that spells the same number, boolean or null counts

``normalise`` (for ``deny``, ``deny_regex`` and ``equals``): ``text`` (the default):
Unicode NFKC, format characters (zero-width spaces and the like) removed, case folded,
runs of whitespace made one space; ``sql``: ``text`` over three readings of the value,
blocked if any matches: as sent, with each comment (``/* */``, ``--``, ``#``) read as a
space, and with each comment removed (so ``DR/**/OP`` reads ``DROP`` and
``DROP/**/TABLE`` reads ``drop table``); MySQL's executable comments ``/*! */`` keep
their text in all three. ``exact``: the value as sent.

What is caught and what is not: any case and spacing, comments between or inside words,
``/*!DROP*/``, fullwidth letters, zero-width characters, a word anywhere in the value
(in a string literal or a comment too, which may block a harmless call: rules err on the
side of refusing). Not caught: a command assembled at run time (``CONCAT('DR','OP')``,
``CHAR(68,82,79,80)``, hex or base64 literals, ``EXECUTE``/``PREPARE`` of a variable,
stored procedures), synonyms the rule does not list, letters from other scripts that
look alike (a Cyrillic ``O``, U+041E, in ``DROP``, which no database reads as the
keyword either).
Deny the building blocks too (``EXECUTE``, ``PREPARE``, ``CALL``) where that matters.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

import re2
import rfc8785
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from .contracts import CommandPolicy
from .paths import Path, TooDeep, find, parse_path

RuleName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
ToolName = Annotated[str, Field(min_length=1, max_length=200)]
Pattern = Annotated[str, Field(min_length=1, max_length=1000)]
Normalise = Literal["text", "sql", "exact"]
#: How deep rules look into a selected value before they block it as too deep to judge.
MAX_DEPTH: Final = 64
_RE2_MEMORY: Final = 8 * 1024 * 1024
_CONDITIONS: Final = ("deny", "deny_regex", "max", "min", "allowed", "equals")


class BlockingConfigError(ValueError):
    """The command rules cannot be used; the message names every problem."""


# --- normalisation ------------------------------------------------------------------------
def normalise_text(value: str) -> str:
    """NFKC, format characters removed, case folded, whitespace runs made one space."""
    value = unicodedata.normalize("NFKC", value)
    value = "".join(c for c in value if unicodedata.category(c) != "Cf")
    return " ".join(value.casefold().split())


def _next(text: str, marker: str, start: int, found: dict[str, int]) -> int:
    """The next ``marker`` at or after ``start`` (cached, so one scan stays linear)."""
    at = found.get(marker, -2)
    if at != -1 and at < start:
        at = found[marker] = text.find(marker, start)
    return at


def without_sql_comments(text: str, joiner: str) -> str:
    """``text`` with each SQL comment replaced by ``joiner``; ``/*! … */`` keeps its text.

    Not quote-aware, and block comments do not nest: both can only make more of the
    text visible to a rule (``rules`` also read the text as sent), never less.
    """
    out: list[str] = []
    found: dict[str, int] = {}
    pos = 0
    while True:
        starts = [(at, m) for m in ("/*", "--", "#") if (at := _next(text, m, pos, found)) >= 0]
        if not starts:
            out.append(text[pos:])
            return "".join(out)
        at, marker = min(starts)
        out.append(text[pos:at])
        if marker == "/*":
            close = text.find("*/", at + 2)
            end = len(text) if close < 0 else close
            out.append(joiner)
            if text.startswith("!", at + 2):  # MySQL runs what an executable comment holds
                out.append(text[at + 3 : end].lstrip("0123456789"))
                out.append(joiner)
            pos = len(text) if close < 0 else close + 2
        else:
            close = text.find("\n", at)
            out.append(joiner)
            pos = len(text) if close < 0 else close


def readings(value: str, normalise: Normalise) -> tuple[str, ...]:
    if normalise == "exact":
        return (value,)
    if normalise == "text":
        return (normalise_text(value),)
    forms = (value, without_sql_comments(value, " "), without_sql_comments(value, ""))
    return tuple(dict.fromkeys(normalise_text(form) for form in forms))


# --- the rules ----------------------------------------------------------------------------
class RuleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: RuleName
    path: Annotated[str, Field(min_length=1, max_length=500)]
    required: bool = False
    normalise: Normalise = "text"
    deny: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = None
    deny_regex: list[Pattern] | None = None
    max: int | float | None = None
    min: int | float | None = None
    allowed: list[JsonValue] | None = None
    equals: JsonValue = None

    @model_validator(mode="after")
    def _one_condition(self) -> RuleConfig:
        parse_path(self.path, root=True)
        given = [c for c in _CONDITIONS if c in self.model_fields_set]
        kinds = {"min" if c == "max" else c for c in given}
        if len(kinds) != 1:
            raise ValueError(
                f"rule {self.name!r} needs exactly one condition of "
                f"{', '.join(_CONDITIONS)} (max and min may go together), not {given or 'none'}"
            )
        for bound in (self.max, self.min):
            if isinstance(bound, float) and not math.isfinite(bound):
                raise ValueError(f"rule {self.name!r}: a bound must be a finite number")
        if self.deny is not None and not all(normalise_text(w) for w in self.deny):
            raise ValueError(f"rule {self.name!r}: a deny word is empty once normalised")
        for pattern in self.deny_regex or ():
            _compile(pattern, self.normalise)
        return self


class BlockingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    default: list[RuleConfig] = Field(default_factory=list)
    tools: dict[ToolName, list[RuleConfig]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_names(self) -> BlockingConfig:
        for tool, rules in {"": [], **self.tools}.items():
            names = [r.name for r in [*self.default, *rules]]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                where = f"tool {tool!r}" if tool else "default"
                raise ValueError(f"{where}: rule names must be unique, not {twice}")
        return self


def _compile(pattern: str, normalise: Normalise) -> Any:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _RE2_MEMORY
    options.case_sensitive = normalise == "exact"
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        raise ValueError(f"not an RE2 pattern: {pattern!r} ({exc})") from None


def _words_pattern(words: Sequence[str], normalise: Normalise) -> Any:
    """One RE2 alternation of the words, each matched whole where it starts or ends in a
    word character (``rm -rf`` and ``--force`` alike)."""
    parts = []
    for word in words:
        form = word if normalise == "exact" else normalise_text(word)
        before = r"\b" if form[0].isalnum() or form[0] == "_" else ""
        after = r"\b" if form[-1].isalnum() or form[-1] == "_" else ""
        parts.append(before + re2.escape(form) + after)
    return _compile("(?:" + "|".join(parts) + ")", normalise)


def _strings(value: Any, depth: int = 0) -> Iterator[str]:
    """Every string in ``value``, keys included; numbers and booleans as JSON writes them."""
    if depth > MAX_DEPTH:
        raise TooDeep("value")
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, member in value.items():
            yield str(key)
            yield from _strings(member, depth + 1)
    elif isinstance(value, list):
        for element in value:
            yield from _strings(element, depth + 1)
    elif isinstance(value, bool):
        yield "true" if value else "false"
    elif isinstance(value, int | float):
        yield str(value)


def _canonical(value: Any) -> bytes | None:
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError):
        return None


def _spelled(value: str) -> Any:
    """What a string may be read as by an upstream that coerces: a number, a boolean, null."""
    text = normalise_text(value)
    if text in ("true", "false"):
        return text == "true"
    if text in ("null", "none"):
        return None
    try:
        number = float(text)
    except ValueError:
        return value
    return number if math.isfinite(number) else value


def _equal(value: Any, target: Any, normalise: Normalise) -> bool:
    if isinstance(value, str) and isinstance(target, str):
        if normalise == "exact":
            return value == target
        return normalise_text(value) == normalise_text(target)
    if normalise != "exact":
        if isinstance(value, str):
            value = _spelled(value)
        elif isinstance(target, str):
            target = _spelled(target)
    if isinstance(value, bool) or isinstance(target, bool):
        return isinstance(value, bool) and isinstance(target, bool) and value == target
    if value is None or target is None:
        return value is None and target is None
    if isinstance(value, int | float) and isinstance(target, int | float):
        return value == target
    canonical = _canonical(value)
    return canonical is not None and canonical == _canonical(target)


Check = Callable[[Any], bool]  # True: the value is blocked


def _condition(rule: RuleConfig) -> Check:
    normalise = rule.normalise
    if rule.deny is not None or rule.deny_regex is not None:
        patterns = (
            [_words_pattern(rule.deny, normalise)]
            if rule.deny is not None
            else [_compile(p, normalise) for p in rule.deny_regex or ()]
        )

        def denied(value: Any) -> bool:
            return any(
                pattern.search(form) is not None
                for text in _strings(value)
                for form in readings(text, normalise)
                for pattern in patterns
            )

        return denied
    if rule.allowed is not None:
        allowed = {_canonical(v) for v in rule.allowed}

        def not_allowed(value: Any) -> bool:
            canonical = _canonical(value)
            return canonical is None or canonical not in allowed

        return not_allowed
    if "equals" in rule.model_fields_set:
        target = rule.equals
        return lambda value: _equal(value, target, normalise)
    high, low = rule.max, rule.min

    def out_of_bounds(value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return True
        if isinstance(value, float) and not math.isfinite(value):
            return True
        return (high is not None and value > high) or (low is not None and value < low)

    return out_of_bounds


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    path: Path
    required: bool
    check: Check

    def blocks(self, arguments: Mapping[str, Any]) -> bool:
        try:
            selected = list(find(dict(arguments), self.path, MAX_DEPTH))
            if not selected:
                return self.required
            return any(self.check(value) for value in selected)
        except (TooDeep, RecursionError):
            return True  # too deep to judge: refused, never let through unread


class RuleCommandPolicy:
    """``CommandPolicy`` from a validated ``BlockingConfig``."""

    def __init__(self, config: BlockingConfig) -> None:
        self.config = config
        self._default = tuple(_rule(r) for r in config.default)
        self._tools = {tool: tuple(_rule(r) for r in rules) for tool, rules in config.tools.items()}

    def blocks(self, tool: str, arguments: Mapping[str, Any]) -> str | None:
        for rule in (*self._default, *self._tools.get(tool, ())):
            if rule.blocks(arguments):
                return rule.name
        return None


def _rule(config: RuleConfig) -> Rule:
    path = parse_path(config.path, root=True)
    return Rule(config.name, path, config.required, _condition(config))


def _described(error: ValidationError) -> str:
    lines = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in item["loc"]) or "rules"
        lines.append(f"{where}: {item['msg']}")
    return "invalid command rules: " + "; ".join(lines)


def policy_from_config(config: Mapping[str, Any]) -> CommandPolicy:
    """The command rules of a configuration; ``BlockingConfigError`` names every problem."""
    try:
        validated = BlockingConfig.model_validate(config)
    except ValidationError as exc:
        raise BlockingConfigError(_described(exc)) from None
    return RuleCommandPolicy(validated)
