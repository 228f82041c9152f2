"""A call's JSON arguments as Cedar values, for ``context.arguments`` (Cedar's JSON entity
and context format, "Representing values").

Cedar has strings, booleans, 64-bit integers (``Long``), sets and records, and no null,
no order and no non-integer numbers outside its ``decimal`` extension. The mapping:

=========================  ==============================================================
JSON                       Cedar
=========================  ==============================================================
string, true/false         String, Bool
integer                    Long (the arguments' RFC 8785 form already bounds them to
                           ±(2**53 - 1), well inside Long)
integral number (``2.0``)  Long, as RFC 8785 reads it (the digest does not tell ``2.0``
                           from ``2`` either)
any other number           String: its RFC 8785 spelling (``"0.5"``, ``"1e+30"``). A
                           comparison such as ``context.arguments.amount <= 100`` on it
                           is a type error, and an erroring policy denies the call
object                     Record; members named ``__…`` are left out, because Cedar
                           reads an object of one ``__entity`` or ``__extn`` member as an
                           entity reference or an extension value, which an agent must
                           not be able to forge
array                      Set: exact for what Cedar can ask of a set (``contains``,
                           ``containsAll``, ``containsAny``, ``isEmpty``); order and
                           repeats are not visible, so ``==`` between two arrays compares
                           them as sets. Cedar has no length, index or order on a set,
                           so a policy cannot ask those questions at all
null                       left out (the member is absent: ``has`` is false)
nested deeper than         left out: Cedar's request parser stops at a fixed nesting
``MAX_DEPTH``              depth, and a request it cannot parse would deny every call
=========================  ==============================================================

A member that is left out is absent, so a policy reading it errors, and the decision
treats any Cedar evaluation error as a denial (``policy.cedar``): a policy that reads an
argument the call lacks denies it. A policy that means "only if present" says so with
``has`` (``context.arguments has sql && context.arguments.sql like "*DROP*"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import rfc8785

#: Nesting levels of the arguments Cedar sees (the request adds its own few).
MAX_DEPTH: Final = 32
_LONG_MIN: Final = -(2**63)
_LONG_MAX: Final = 2**63 - 1
#: Cedar's escapes in its JSON format (``__entity``, ``__extn``, and any it adds).
_RESERVED: Final = "__"


class _Omitted:
    """A JSON value Cedar does not get."""


_OMIT: Final = _Omitted()


def record(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """``arguments`` (a JSON object) as a Cedar record in the JSON format."""
    return _record(arguments, 1)


def _record(value: Mapping[str, Any], depth: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, member in value.items():
        if not isinstance(key, str) or key.startswith(_RESERVED):
            continue
        converted = _value(member, depth + 1)
        if converted is not _OMIT:
            result[key] = converted
    return result


def _value(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH or value is None:
        return _OMIT
    # bool before int: True is an int in Python.
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if _LONG_MIN <= value <= _LONG_MAX else _number_text(value)
    if isinstance(value, float):
        if value.is_integer() and _LONG_MIN <= value <= _LONG_MAX:
            return int(value)
        return _number_text(value)
    if isinstance(value, dict):
        return _record(value, depth)
    if isinstance(value, list | tuple):
        members = (_value(item, depth + 1) for item in value)
        return [m for m in members if m is not _OMIT]
    return _OMIT


def _number_text(value: float) -> Any:
    """A number Cedar cannot hold, as its RFC 8785 spelling; omitted if it has none."""
    try:
        return rfc8785.dumps(value).decode("ascii")
    except (rfc8785.CanonicalizationError, ValueError, OverflowError):
        return _OMIT
