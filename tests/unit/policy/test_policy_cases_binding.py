"""``authority policy test`` decides as the server does: the arguments bound as an
exchange binds them (digest, canonical form, size), the server's lifetime cap, and files
it cannot use are a usage error that never quotes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from authority.cli import main
from authority.policy import cases
from authority.policy.cedar import CedarPolicy, PolicyError
from authority.sdk.arguments import digest
from authority.settings_tokens import TokenSettings

BOUND = """@id("arguments-bound")
forbid(principal, action, resource) unless { context has arguments_digest };
"""

CALL = 'call = { tool = "t", resource = "r", action = "a"'


def _run(tmp_path: Path, policy: str, body: str) -> list[cases.Result]:
    (tmp_path / "p.cedar").write_text(policy)
    (tmp_path / "c.toml").write_text(f'policy = "p.cedar"\n{body}')
    loaded, named = cases.load(tmp_path / "c.toml")
    assert named is not None
    return cases.run(loaded, CedarPolicy.from_file(named))


def test_arguments_carry_their_digest_as_in_an_exchange(tmp_path: Path) -> None:
    body = f'[[case]]\nname = "x"\nexpect = "allow"\n{CALL}, arguments = {{ n = 1 }} }}\n'
    [result] = _run(tmp_path, BOUND, body)
    assert result.passed, result
    facts = cases.facts_of(cases.load(tmp_path / "c.toml")[0][0], 0)
    assert facts.call.arguments_digest == digest({"n": 1})


def test_a_digest_only_call_can_be_described(tmp_path: Path) -> None:
    stated = digest({"n": 1})
    body = f'[[case]]\nname = "x"\nexpect = "allow"\n{CALL}, arguments_digest = "{stated}" }}\n'
    [result] = _run(tmp_path, BOUND, body)
    assert result.passed, result
    bad = body.replace(stated, "sha-256:nope")
    with pytest.raises(cases.CasesError, match="arguments_digest"):
        _run(tmp_path, BOUND, bad)


@pytest.mark.parametrize(
    "arguments", ["{ at = 1979-05-27T07:32:00Z }", "{ n = 1e400 }", "{ n = 9007199254740993 }"]
)
def test_arguments_an_exchange_refuses_are_a_case_error(
    tmp_path: Path, arguments: str, capsys: pytest.CaptureFixture[str]
) -> None:
    body = f'[[case]]\nname = "x"\nexpect = "allow"\n{CALL}, arguments = {arguments} }}\n'
    with pytest.raises(cases.CasesError, match="canonical form"):
        _run(tmp_path, BOUND, body)
    assert main(["policy", "test", str(tmp_path / "c.toml")]) == 2
    assert "canonical form" in capsys.readouterr().err


def test_the_lifetime_cap_is_the_servers_or_the_cases(tmp_path: Path) -> None:
    cap = TokenSettings.model_fields["access_token_max_lifetime"].default
    over = f"context = {{ lifetime = {cap + 1} }}\n"
    body = f'[[case]]\nname = "x"\nexpect = "deny"\nreason = "lifetime_too_long"\n{over}'
    [result] = _run(tmp_path, "", body + f"{CALL} }}\n")
    assert result.passed, result
    raised = f"context = {{ lifetime = {cap + 1}, server_max_lifetime = {cap + 1} }}\n"
    body = f'[[case]]\nname = "x"\nexpect = "allow"\n{raised}{CALL} }}\n'
    [result] = _run(tmp_path, "", body)
    assert result.passed, result


def test_unusable_files_are_a_usage_error_that_quotes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "c.toml").write_text('[[case]]\nname = "x"\nexpect = "allow"\n' + CALL + " }\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2-not-cedar\n")
    assert main(["policy", "test", str(tmp_path / "c.toml"), "--policy", str(secret)]) == 2
    assert "hunter2" not in capsys.readouterr().err
    (tmp_path / "latin1.cedar").write_bytes(b"// \xe9\n")
    nul = str(tmp_path / "x\x00y")
    for policy in (str(tmp_path / "latin1.cedar"), nul):
        assert main(["policy", "test", str(tmp_path / "c.toml"), "--policy", policy]) == 2
        assert capsys.readouterr().err.startswith("error: ")
    (tmp_path / "latin1.toml").write_bytes(b'# \xe9\n[[case]]\nname = "x"\n')
    for cases_file in (str(tmp_path / "latin1.toml"), nul):
        assert main(["policy", "test", cases_file, "--policy", str(secret)]) == 2
        assert capsys.readouterr().err.startswith("error: ")


def test_files_are_read_up_to_a_bound(tmp_path: Path) -> None:
    # Only the bound and one byte more are read (a device without end is refused too).
    large = tmp_path / "large"
    with large.open("wb") as file:
        file.truncate(2 << 20)
    with pytest.raises(PolicyError, match="exceeds"):
        CedarPolicy.from_file(large)
    with pytest.raises(cases.CasesError, match="exceeds"):
        cases.load(large)
