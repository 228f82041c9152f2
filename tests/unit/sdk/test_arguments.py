"""A call's arguments digest: RFC 8785 canonical form, whatever order or spacing."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authority.sdk.arguments import UncanonicalArguments, canonical, digest, matches

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def test_the_canonical_form_is_rfc_8785s() -> None:
    # RFC 8785 §3.2.2 / §3.2.3: keys sorted by UTF-16 code units, numbers as ECMAScript
    # prints them, no whitespace.
    value = {"b": [1.0, 1e21, 0.000001], "a": "\u20ac", "\U0001f600": 1, "\ufb33": 2}
    assert canonical(value) == (
        '{"a":"\u20ac","b":[1,1e+21,0.000001],"\U0001f600":1,"\ufb33":2}'.encode()
    )


@given(JSON)
def test_any_serialisation_of_the_same_value_has_the_same_digest(value: Any) -> None:
    reparsed = json.loads(json.dumps(value, indent=3, sort_keys=False))
    assert digest(reparsed) == digest(value)
    assert matches(reparsed, digest(value))


@given(st.dictionaries(st.text(max_size=6), JSON, min_size=1, max_size=4), st.text(max_size=6))
def test_a_changed_argument_changes_the_digest(arguments: dict[str, Any], extra: str) -> None:
    changed = {**arguments, "\x00" + extra: True}
    assert not matches(changed, digest(arguments))


@pytest.mark.parametrize("value", [math.nan, math.inf, 2**60, {1: "x"}, b"bytes", object()])
def test_a_value_json_cannot_carry_has_no_digest(value: Any) -> None:
    with pytest.raises(UncanonicalArguments):
        digest(value)
    assert not matches(value, "sha-256:x")


def test_the_digest_names_its_algorithm_and_is_unpadded_base64url() -> None:
    value = digest({"sql": "SELECT 1"})
    assert value.startswith("sha-256:") and len(value) == len("sha-256:") + 43
    assert "=" not in value and "+" not in value and "/" not in value
