"""Preset shapes on verified claims, the claim mapping's checks, SPIFFE IDs."""

from __future__ import annotations

from typing import Any

import pytest

from authority.federation.errors import WorkloadRejected
from authority.federation.model import KeySource, Preset, TrustDomain
from authority.federation.presets import (
    PRESET_CLAIMS,
    check_claim_mapping,
    parse_spiffe_id,
    shape,
)
from authority.management.field_errors import Refused


def _domain(preset: Preset, issuer: str = "https://issuer.test", **mapping: str) -> TrustDomain:
    return TrustDomain(
        id="td",
        name="td",
        preset=preset,
        issuer=issuer,
        audience="aud",
        key_source=KeySource.STATIC_JWKS,
        key_location=None,
        static_jwks={"keys": []},
        claim_mapping=mapping,
    )


def test_values_become_strings_or_are_dropped() -> None:
    domain = _domain(
        Preset.OIDC,
        flag="flag",
        n="n",
        big="big",
        f="f",
        l="l",
        o="o",
        z="z",
        ctl="ctl",
        long="long",
        empty="empty",
    )
    claims: dict[str, Any] = {
        "sub": "s",
        "flag": False,
        "n": 42,
        "big": 2**70,
        "f": 1.5,
        "l": ["a"],
        "o": {"a": 1},
        "z": None,
        "ctl": "a\nb",
        "long": "x" * 1025,
        "empty": "",
    }
    subject, kept = shape(domain, claims)
    assert subject == "s"
    assert kept == {"flag": "false", "n": "42"}


@pytest.mark.parametrize("preset", [p for p in Preset if p is not Preset.SPIFFE])
def test_a_subject_is_required(preset: Preset) -> None:
    with pytest.raises(WorkloadRejected):
        shape(_domain(preset), {"sub": ["x"]})


def test_required_claims_of_the_ci_presets() -> None:
    with pytest.raises(WorkloadRejected, match="workload_bad_claim_repository"):
        shape(_domain(Preset.GITHUB), {"sub": "repo:o/r:ref:x"})
    with pytest.raises(WorkloadRejected, match="workload_bad_claim_project_path"):
        shape(_domain(Preset.GITLAB), {"sub": "project_path:g/p:ref_type:branch:ref:main"})


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("spiffe://example.org/ns/prod/sa/agent", ("example.org", "/ns/prod/sa/agent")),
        ("spiffe://a-b_c.d/x", ("a-b_c.d", "/x")),
        ("spiffe://td/a.b/c-d/e_f", ("td", "/a.b/c-d/e_f")),
    ],
)
def test_spiffe_ids(value: str, parts: tuple[str, str]) -> None:
    assert parse_spiffe_id(value) == parts


@pytest.mark.parametrize(
    "value",
    [
        "spiffe://example.org",
        "spiffe://example.org/",
        "spiffe://Example.org/x",
        "spiffe:///x",
        "spiffe://example.org//x",
        "spiffe://example.org/./x",
        "spiffe://example.org/x/..",
        "spiffe://example.org/x?y",
        "spiffe://example.org/x#y",
        "spiffe://user@example.org/x",
        "spiffe://example.org:443/x",
        "SPIFFE://example.org/x",
        "spiffe://example.org/" + "x" * 2048,
        "spiffe://example.org/%41",
    ],
)
def test_bad_spiffe_ids(value: str) -> None:
    with pytest.raises(ValueError, match="SPIFFE ID"):
        parse_spiffe_id(value)


def test_claim_mapping_checks() -> None:
    assert check_claim_mapping(Preset.GITHUB, {"workflow": "workflow_name"}) == {
        "workflow": "workflow_name"
    }
    cases: list[tuple[dict[str, Any], str]] = [
        ({"workflow": "repository"}, "preset's"),
        ({"a": "x", "b": "x"}, "two claims"),
        ({"a b": "x"}, "claim name"),
        ({"a": 1}, "map claim names"),
        ({f"c{i}": f"n{i}" for i in range(33)}, "at most 32"),
    ]
    for bad, sentence in cases:
        with pytest.raises(Refused, match=sentence):
            check_claim_mapping(Preset.GITHUB, bad)
    assert "namespace" in PRESET_CLAIMS[Preset.KUBERNETES]
