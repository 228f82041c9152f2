"""Parsing a Cedar text: Cedar's own policy ids name the annotations, templates and texts
that would crash or overflow the parser are refused before they are used, and refusals do
not quote the text."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import cast

import cedarpy
import pytest

from authority.errors import InvalidRequest
from authority.policy.cedar import (
    MAX_TEXT_BYTES,
    PERMIT_ALL,
    TEMPLATES,
    CedarPolicy,
    PolicyError,
    PolicyRefused,
    annotations_by_id,
    refusal,
    shape,
)
from authority.policy.versions import compile_text, seed_from_file
from authority.storage.policies import PolicyStore

WITH_TEMPLATE = """forbid(principal == ?principal, action, resource);
@id("never-create") forbid(principal, action == Action::"create", resource);
@id("ask-prod") @approval("owner") forbid(principal, action, resource)
  when { context.resource like "*prod*" };
"""


def test_the_annotations_follow_cedars_ids_not_a_count() -> None:
    # Cedar numbers templates and static policies together: after a template the first
    # static policy is policy2 of PERMIT_ALL + text, not policy1.
    parsed = json.loads(cedarpy.policies_to_json_str(PERMIT_ALL + WITH_TEMPLATE))
    names, approval = annotations_by_id(parsed)
    assert names["policy2"] == "never-create"
    assert names["policy3"] == "ask-prod"
    assert approval == {"policy3"}


def test_the_reasons_name_the_policies_that_decided() -> None:
    policy = CedarPolicy(
        '@id("a") forbid(principal, action == Action::"x", resource);\n'
        "permit(principal, action, resource);\n"
        '@id("b") @approval("owner") forbid(principal, action == Action::"y", resource);\n'
    )
    assert policy.count == 3
    assert policy._names == {"policy1": "a", "policy2": "policy2", "policy3": "b"}
    assert policy._approval == {"policy3"}


@pytest.mark.parametrize(
    "text", [WITH_TEMPLATE, "permit(principal, action, resource in ?resource);"]
)
def test_templates_are_refused(text: str) -> None:
    with pytest.raises(PolicyRefused, match="templates are not supported"):
        CedarPolicy(text)
    with pytest.raises(InvalidRequest) as refused:
        compile_text(text)
    assert refused.value.description == TEMPLATES


def test_a_template_slot_is_masked_in_a_parse_error() -> None:
    assert "hunter2" not in shape("unexpected token ?hunter2secret here")
    with pytest.raises(InvalidRequest) as refused:
        compile_text("forbid(principal == ?hunter2secret, action, resource")
    assert "hunter2" not in refused.value.description


def test_a_parse_error_of_a_file_does_not_quote_it() -> None:
    with pytest.raises(PolicyError) as refused:
        CedarPolicy("s3cr3t-token-value")
    assert "s3cr3t" not in str(refused.value)


@pytest.mark.parametrize("opening", ["(", "[", "{a:"])
def test_deep_nesting_is_refused_before_cedarpy(opening: str) -> None:
    closing = {"(": ")", "[": "]", "{a:": "}"}[opening]
    text = f"forbid(principal, action, resource) when {{ {opening * 700}1{closing * 700} }};"
    assert refusal(text) is not None
    # A comment ends at a carriage return too, as Cedar's do; a close before does not
    # make room for more opens.
    assert refusal(f"// x\r{text}") is not None
    assert refusal(f"permit(principal, action, resource) when {{ {closing * 700}{text}") is not None
    # Brackets in strings and comments are not nesting.
    assert refusal('permit(principal, action, resource) when { "((((" == "" }; // ((((') is None


def test_deep_nesting_does_not_crash_the_process() -> None:
    # Without the bound cedarpy's parser overflows the stack and the process dies, so the
    # text is compiled in a child process, which must refuse it and exit normally.
    script = textwrap.dedent(
        """
        from authority.errors import InvalidRequest
        from authority.policy.cedar import CedarPolicy, PolicyError
        from authority.policy.versions import compile_text
        deep = "(" * 700 + "true" + ")" * 700
        text = "// x\\r" + "forbid(principal, action, resource) when { " + deep + " };"
        for compile in (compile_text, CedarPolicy):
            try:
                compile(text)
            except (InvalidRequest, PolicyError):
                print("refused")
        """
    )
    done = subprocess.run(  # noqa: S603 - this interpreter and a fixed script
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused", "refused"]


def test_a_chain_too_deep_for_json_is_a_refusal_not_a_recursion_error() -> None:
    chain = " && ".join(["true"] * 900)
    with pytest.raises(PolicyRefused):
        CedarPolicy(f"forbid(principal, action, resource) when {{ {chain} }};")
    longer = " + ".join(["1"] * 1500)
    assert refusal(f"forbid(principal, action, resource) when {{ {longer} == 1 }};") is not None


def test_a_text_beyond_the_size_bound_is_refused() -> None:
    text = "// " + "x" * MAX_TEXT_BYTES + "\npermit(principal, action, resource);"
    with pytest.raises(InvalidRequest, match="exceeds"):
        compile_text(text)


def test_a_policy_file_that_is_not_utf8_stops_start_up(tmp_path: Path) -> None:
    path = tmp_path / "policy.cedar"
    path.write_bytes(b"// \xe9\n")
    store = cast(PolicyStore, object())  # never reached: the file is refused first
    with pytest.raises(PolicyError, match="not UTF-8"):
        asyncio.run(seed_from_file(store, path, now=0))
