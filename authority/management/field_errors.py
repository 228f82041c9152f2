"""What a client is told about a request body that fails its pydantic model.

Each problem names the full path of the field (``scope[0].resources``) and what the model
allows there (the values of a ``Literal``, the range of a number, the lengths of a string
or a list, the fields of an object), all read from the model itself, so the message and
the OpenAPI document say the same thing. Never the value sent: pydantic's own messages
quote the input (``Input should be 'low'...`` is fine, but ``string_too_long`` and
``value_error`` show what was sent), so none of them is passed on; and the keys of a
client's own mappings (a ``dict`` field, an unknown field) are never repeated back
either, because they are input too.

The text keeps to the characters RFC 6749 §5.2 allows in ``error_description``
(%x20-21 / %x23-5B / %x5D-7E): a regular expression with a backslash or a quote is
referred to, not quoted.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails


class Refused(ValueError):
    """A validator's refusal in a fixed sentence of this code base: the only validator
    text passed on to the client (a library's ``ValueError`` may quote the input, as
    ``urlsplit`` does a bad port)."""


#: At most this many problems are described in one answer; the rest are counted.
MAX_PROBLEMS = 5
#: Patterns longer than this are referred to, not quoted.
_MAX_QUOTED_PATTERN = 80
_SEQUENCES = (list, tuple, set, frozenset)


@dataclass
class _Place:
    """Where a location points in the model: its rendered path, type and constraints."""

    path: str = ""
    annotation: Any = None
    constraints: list[Any] = field(default_factory=list)
    #: False once a segment could not be followed (the rest is not named).
    known: bool = True


def describe(model: type[BaseModel], exc: ValidationError) -> str:
    """One sentence per problem (at most ``MAX_PROBLEMS``), none quoting the input."""
    sentences: list[str] = []
    for error in exc.errors(include_url=False, include_input=False, include_context=True):
        sentence = _sentence(model, error)
        if sentence not in sentences:
            sentences.append(sentence)
    shown = sentences[:MAX_PROBLEMS]
    rest = len(sentences) - len(shown)
    if rest:
        shown.append(f"({rest} more {'problem' if rest == 1 else 'problems'} not shown.)")
    return " ".join(shown)


def _sentence(model: type[BaseModel], error: ErrorDetails) -> str:
    location = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        # The last segment is the client's own key: only its parent is named.
        parent = _locate(model, location[:-1])
        allowed = _fields_of(parent.annotation)
        where = f"The {parent.path} object" if parent.path else "The body"
        if not parent.known or allowed is None:
            return f"{where} has an unknown field."
        return f"{where} has an unknown field; the allowed fields are {_join(allowed)}."
    place = _locate(model, location)
    name = f"The {place.path} field" if place.path else "The body"
    if kind == "missing":
        return f"{name} is required."
    if not place.known:
        return f"{name} is invalid."
    allowed_text = _allowed(place.annotation, place.constraints)
    if kind in ("value_error", "assertion_error"):
        # A validator's own reason (a fixed sentence of this code base, never the input).
        reason = _reason(error)
        if reason is not None:
            return f"{name} is invalid ({reason})."
    if allowed_text is None:
        return f"{name} is invalid."
    return f"{name} must be {allowed_text}."


def _reason(error: ErrorDetails) -> str | None:
    cause = error.get("ctx", {}).get("error")
    text = str(cause) if isinstance(cause, Refused) else ""
    return text if text and _safe(text) and len(text) <= 100 else None


# --- following a location through the model ------------------------------------------------
def _unwrap(annotation: Any, constraints: list[Any]) -> tuple[Any, list[Any]]:
    """Without ``Annotated`` (its metadata kept) and without ``| None``."""
    collected = list(constraints)
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            base, *metadata = get_args(annotation)
            for item in metadata:
                # ``Annotated[int, Field(ge=0)]`` nested in a container keeps a FieldInfo.
                collected.extend(item.metadata if isinstance(item, FieldInfo) else [item])
            annotation = base
            continue
        if origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation, collected


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _locate(model: type[BaseModel], location: Sequence[int | str]) -> _Place:
    place = _Place(annotation=model)
    segments = list(location)
    i = 0
    while i < len(segments):
        segment = segments[i]
        base, _ = _unwrap(place.annotation, place.constraints)
        origin = get_origin(base)
        if _is_model(base) and isinstance(segment, str) and segment in base.model_fields:
            info = base.model_fields[segment]
            place.path = f"{place.path}.{segment}" if place.path else segment
            place.annotation, place.constraints = info.annotation, list(info.metadata)
        elif isinstance(segment, int) and origin in _SEQUENCES and get_args(base):
            place.path += f"[{segment}]"
            place.annotation, place.constraints = get_args(base)[0], []
        elif origin is dict and len(get_args(base)) == 2:
            # A client's key: named as "any key", never repeated.
            key_type, value_type = get_args(base)
            place.path += "[*]"
            if i + 1 < len(segments) and segments[i + 1] == "[key]":
                place.path += " key"
                place.annotation, place.constraints = key_type, []
                i += 1
            else:
                place.annotation, place.constraints = value_type, []
        else:
            place.known = False
            return place
        i += 1
    place.annotation, place.constraints = _unwrap(place.annotation, place.constraints)
    return place


# --- what a type allows, in words ------------------------------------------------------------
def _bound(constraints: Iterable[Any], name: str) -> Any:
    found = None
    for item in constraints:
        value = getattr(item, name, None)
        if value is not None:
            found = value
    return found


def _fields_of(annotation: Any) -> list[str] | None:
    base, _ = _unwrap(annotation, [])
    return list(base.model_fields) if _is_model(base) else None


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def _safe(text: str) -> bool:
    """Within RFC 6749's ``error_description`` characters."""
    return all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in text)


def _range(constraints: list[Any], integer: bool) -> str:
    low, high = _bound(constraints, "ge"), _bound(constraints, "le")
    above, below = _bound(constraints, "gt"), _bound(constraints, "lt")
    if integer:
        # Strict bounds read better as inclusive ones when the values are integers.
        low = above + 1 if low is None and isinstance(above, int) else low
        high = below - 1 if high is None and isinstance(below, int) else high
        above = below = None
    parts: list[str] = []
    if low is not None and high is not None:
        return f" between {low} and {high}"
    if low is not None:
        parts.append(f"at least {low}")
    elif above is not None:
        parts.append(f"above {above}")
    if high is not None:
        parts.append(f"at most {high}")
    elif below is not None:
        parts.append(f"below {below}")
    return f" of {' and '.join(parts)}" if parts else ""


def _length(constraints: list[Any], unit: str) -> str:
    low, high = _bound(constraints, "min_length"), _bound(constraints, "max_length")
    if low and high is not None:
        return f" of {low} to {high} {unit}"
    if high is not None:
        return f" of at most {high} {unit}"
    if low:
        return f" of at least {low} {unit}"
    return ""


def _allowed(annotation: Any, constraints: list[Any]) -> str | None:
    origin = get_origin(annotation)
    if origin is Literal:
        values = [_literal(v) for v in get_args(annotation)]
        return values[0] if len(values) == 1 else f"one of {', '.join(values)}"
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "an integer" + _range(constraints, integer=True)
    if annotation is float:
        return "a number" + _range(constraints, integer=False)
    if annotation is str:
        text = "a string" + _length(constraints, "characters")
        pattern = _bound(constraints, "pattern")
        if pattern is None:
            return text
        pattern = getattr(pattern, "pattern", pattern)
        if isinstance(pattern, str) and _safe(pattern) and len(pattern) <= _MAX_QUOTED_PATTERN:
            return f"{text} matching {pattern}"
        return f"{text} in the form the OpenAPI document gives"
    if origin in _SEQUENCES or annotation in _SEQUENCES:
        return "an array" + _length(constraints, "items")
    if origin is dict or annotation is dict:
        return "a JSON object" + _length(constraints, "members")
    fields = _fields_of(annotation)
    if fields is not None:
        return f"an object with the fields {_join(fields)}"
    return None


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
