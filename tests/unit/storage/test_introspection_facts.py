"""The introspection row's decoding (``storage.sql.introspection.facts_of``)."""

from __future__ import annotations

import dataclasses

import pytest

from authority.storage.compiled import Row
from authority.storage.introspection import IntrospectionFacts
from authority.storage.sql.introspection import facts_of

NAMES = [f.name for f in dataclasses.fields(IntrospectionFacts)]


def _row() -> Row:
    return Row({name: f"{name}-value" for name in NAMES} | {"single_use": 1, "revoked_at": None})


def test_facts_of_a_row_are_what_the_dataclass_makes_of_it() -> None:
    row = _row()
    facts = facts_of(row)
    assert type(facts) is IntrospectionFacts
    assert facts == IntrospectionFacts(**row)
    assert dataclasses.asdict(facts) == dict(row)


def test_facts_of_a_row_ignore_other_columns_and_need_every_field() -> None:
    row = _row()
    assert facts_of(Row(row | {"asked_at": 3})) == IntrospectionFacts(**row)
    del row["rs_tools"]
    with pytest.raises(KeyError):
        facts_of(row)


def test_facts_of_a_row_stay_frozen() -> None:
    facts = facts_of(_row())
    with pytest.raises(dataclasses.FrozenInstanceError):
        facts.revoked_at = 1  # type: ignore[misc]
