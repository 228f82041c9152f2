"""``authority policy test``: example requests against a policy, offline, exit 1 on any
wrong expectation; and a bad text's description names where, never what."""

from __future__ import annotations

from pathlib import Path

import pytest

from authority.cli import main
from authority.errors import InvalidRequest
from authority.policy.versions import compile_text

POLICY = """@id("no-deletes-below-autonomy-3")
forbid(principal, action == Action::"delete", resource)
  when { principal.autonomy_level < 3 };

@id("payments-up-to-100")
forbid(principal, action, resource == Tool::"payments.send")
  when { context.arguments.amount > 100 };

@id("owner-approves-production")
@approval("owner")
forbid(principal, action, resource)
  when { context.resource like "*/production/*" };
"""

CASES = """policy = "policy.cedar"

[defaults]
agent = { autonomy_level = 2 }

[[case]]
name = "an issue may be created"
expect = "allow"
call = { tool = "github.issues", resource = "acme/web", action = "create" }

[[case]]
name = "no deletes below autonomy 3"
expect = "deny"
reason = "policy:no-deletes-below-autonomy-3"
call = { tool = "github.issues", resource = "acme/web", action = "delete" }

[[case]]
name = "autonomy 3 deletes"
expect = "allow"
agent = { autonomy_level = 3 }
call = { tool = "github.issues", resource = "acme/web", action = "delete" }

[[case]]
name = "a large payment"
expect = "deny"
call = { tool = "payments.send", resource = "a/1", action = "send", arguments = { amount = 500 } }

[[case]]
name = "a small payment"
expect = "allow"
call = { tool = "payments.send", resource = "a/1", action = "send", arguments = { amount = 5 } }

[[case]]
name = "production asks the owner"
expect = "approval_required"
call = { tool = "deploy", resource = "acme/production/web", action = "run" }

[[case]]
name = "the built-in checks run first"
expect = "deny"
reason = "tool_not_delegated"
delegation = { scope = [{ tool = "other", resources = ["*"], actions = ["x"] }] }
call = { tool = "github.issues", resource = "acme/web", action = "create" }

[[case]]
name = "an unregistered tool"
expect = "deny"
reason = "tool_unknown"
tool = false
call = { tool = "github.issues", resource = "acme/web", action = "create" }
"""


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "policy.cedar").write_text(POLICY)
    cases = tmp_path / "cases.toml"
    cases.write_text(CASES)
    return cases


def test_right_expectations_pass(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "test", str(files)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 8 and all(line.startswith("ok ") for line in out)
    assert "deny (policy_denied, policy:payments-up-to-100)" in out[3]


def test_a_wrong_expectation_fails(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files.write_text(CASES.replace('expect = "approval_required"', 'expect = "allow"'))
    assert main(["policy", "test", str(files)]) == 1
    [failed] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAIL")]
    assert "production asks the owner: approval_required" in failed
    # A wrong reason fails too, with the right decision.
    files.write_text(CASES.replace('reason = "tool_unknown"', 'reason = "tool_inactive"'))
    assert main(["policy", "test", str(files)]) == 1


def test_another_policy_with_policy(files: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.cedar"
    empty.write_text("")
    # Without the policies, the denials it expects are allowed: wrong expectations.
    assert main(["policy", "test", str(files), "--policy", str(empty)]) == 1


@pytest.mark.parametrize(
    "text",
    [
        "not = [toml",
        'policy = "policy.cedar"\n',  # no case
        CASES.replace('expect = "allow"', 'expect = "maybe"', 1),
        CASES.replace("name = ", "nmae = ", 1),
    ],
)
def test_a_file_that_cannot_be_run_is_a_usage_error(
    files: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    files.write_text(text)
    assert main(["policy", "test", str(files)]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_a_policy_that_does_not_parse_is_a_usage_error(files: Path, tmp_path: Path) -> None:
    (tmp_path / "policy.cedar").write_text("forbid(")
    assert main(["policy", "test", str(files)]) == 2
    files.write_text(CASES.replace('policy = "policy.cedar"\n', ""))
    assert main(["policy", "test", str(files)]) == 2  # no policy named at all


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            "permit(principal, action, resource);\nforbid(principal, action, resource) when { x };",
            "line 2",
        ),
        ("forbid(principal, action, resource) when {", "its end"),
        ('forbid(principal, action, resource)\n when { "sec\\qret" };', "line 2"),
    ],
)
def test_a_bad_text_is_described_by_where_never_by_what(text: str, where: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        compile_text(text)
    description = str(refused.value.description)
    assert f"at {where}" in description
    assert "sec" not in description and "{ x }" not in description
