"""The ``invalid_request`` descriptions of a body that fails its model (``field_errors``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from pydantic import AfterValidator, Field, StringConstraints

from authority.errors import InvalidRequest
from authority.grants.delegations import CreateDelegation
from authority.management.inputs import Body, parse
from authority.management.resource_servers import ServerCreate
from authority.management.tools import ToolCreate

SECRET = "S3CRET-VALUE-never-echoed"


class Item(Body):
    tool: Annotated[str, StringConstraints(min_length=1, max_length=20, pattern=r"^[a-z]+$")]
    resources: list[str] = Field(min_length=1, max_length=3)


class Sample(Body):
    risk: Literal["low", "medium", "high"]
    level: Annotated[int, Field(ge=0, le=3)] = 0
    ratio: Annotated[float, Field(gt=0)] = 1.0
    count: Annotated[int, Field(gt=0, lt=10)] = 1
    scope: list[Item] = Field(default_factory=list)
    masked: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)


def described(data: dict[str, Any], model: type[Body] = Sample) -> str:
    with pytest.raises(InvalidRequest) as caught:
        parse(model, data)
    return caught.value.description


def test_a_nested_list_item_is_named_by_its_full_path() -> None:
    text = described({"risk": "low", "scope": [{"tool": "a", "resources": "x"}]})
    assert text == "The scope[0].resources field must be an array of 1 to 3 items."


def test_a_nested_missing_field_is_named_by_its_full_path() -> None:
    text = described({"risk": "low", "scope": [{"tool": "a", "resources": ["r"]}, {"tool": "b"}]})
    assert text == "The scope[1].resources field is required."


def test_a_literal_names_its_allowed_values() -> None:
    text = described({"risk": SECRET})
    assert text == "The risk field must be one of low, medium, high."
    assert SECRET not in text


@pytest.mark.parametrize("value", [-1, 4, "1", 1.5, True, None])
def test_an_integer_names_its_range(value: Any) -> None:
    text = described({"risk": "low", "level": value})
    assert text == "The level field must be an integer between 0 and 3."


def test_exclusive_integer_bounds_read_as_inclusive_ones() -> None:
    assert described({"risk": "low", "count": 10}) == (
        "The count field must be an integer between 1 and 9."
    )


def test_a_number_names_its_bound() -> None:
    assert (
        described({"risk": "low", "ratio": 0.0}) == "The ratio field must be a number of above 0."
    )


def test_a_string_names_its_length_and_pattern() -> None:
    text = described({"risk": "low", "scope": [{"tool": SECRET, "resources": ["r"]}]})
    assert text == (
        "The scope[0].tool field must be a string of 1 to 20 characters matching ^[a-z]+$."
    )


def test_a_missing_field_is_named() -> None:
    assert described({}) == "The risk field is required."


def test_an_unknown_field_names_the_allowed_ones_but_not_itself() -> None:
    text = described({"risk": "low", SECRET: 1})
    assert text == (
        "The body has an unknown field; the allowed fields are "
        "risk, level, ratio, count, scope and masked."
    )
    nested = described({"risk": "low", "scope": [{"tool": "a", "resources": ["r"], SECRET: 1}]})
    assert nested == (
        "The scope[0] object has an unknown field; the allowed fields are tool and resources."
    )
    assert SECRET not in text + nested


def test_a_mapping_key_is_never_repeated() -> None:
    text = described({"risk": "low", "masked": {SECRET: -1}})
    assert text == "The masked[*] field must be an integer of at least 0."
    assert SECRET not in text


def test_several_problems_are_all_named_up_to_a_bound() -> None:
    text = described({"scope": "x", "level": 9})
    assert text == (
        "The risk field is required. The level field must be an integer between 0 and 3. "
        "The scope field must be an array."
    )
    many = described({"scope": [{} for _ in range(3)], "level": 9, "count": 0, "ratio": 0.0})
    assert many.endswith("more problems not shown.)")


def test_the_models_of_the_api_say_what_they_allow() -> None:
    assert described(
        {"name": "t", "resource_server_id": "r", "actions": ["a"], "risk_tier": 7}, ToolCreate
    ) == ("The risk_tier field must be an integer between 0 and 3.")
    text = described(
        {
            "agent_id": "a",
            "intent": "i",
            "expires_in": 600,
            "scope": [{"tool": "t", "actions": ["a"], "resources": []}],
        },
        CreateDelegation,
    )
    assert text == "The scope[0].resources field must be an array of 1 to 50 items."


def test_a_pattern_with_a_backslash_is_referred_to_not_quoted() -> None:
    # RFC 6749 §5.2: error_description excludes '"' and '\'.
    text = described(
        {"name": "Bad Name", "resource_server_id": "r", "actions": ["a"], "risk_tier": 0},
        ToolCreate,
    )
    assert "\\" not in text and '"' not in text
    assert text.startswith("The name field must be a string of 1 to 200 characters")


def test_a_validator_names_its_own_reason_but_never_a_library_message() -> None:
    """``urlsplit`` quotes a bad port in its ValueError: only a ``Refused`` sentence of
    this code base is passed on."""
    base = {"name": "rs"}
    assert described({**base, "audience": "ftp://x/"}, ServerCreate) == (
        "The audience field is invalid (not an http(s) URI)."
    )
    text = described({**base, "audience": f"https://h:{SECRET}/"}, ServerCreate)
    assert text == "The audience field is invalid (has a bad port)."

    def library(value: str) -> str:
        raise ValueError(f"cannot use {value!r}")

    class Quoting(Body):
        field: Annotated[str, AfterValidator(library)]

    text = described({"field": SECRET}, Quoting)
    assert SECRET not in text and "cannot use" not in text
