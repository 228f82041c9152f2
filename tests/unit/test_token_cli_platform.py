"""``authority token --platform-token-file``: read afresh per request, never a guess."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest

from authority.cli_api import CliError
from authority.token_cli import MAX_PLATFORM_TOKEN, _exchange, _platform_token_reader


def test_the_file_is_read_again_for_every_request(tmp_path: Path) -> None:
    path = tmp_path / "token.jwt"
    path.write_text("a.b.c\n")
    read = _platform_token_reader(str(path))
    assert read() == "a.b.c"
    path.write_text("d.e.f")  # the platform renewed it
    assert read() == "d.e.f"


@pytest.mark.parametrize(
    "content",
    [b"", b"not a jwt", b"a.b", "a.b.\u00e9".encode(), b"a.b." + b"c" * MAX_PLATFORM_TOKEN],
)
def test_what_is_not_one_token_is_a_usage_error_that_does_not_quote_it(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "token.jwt"
    path.write_bytes(content)
    with pytest.raises(CliError) as caught:
        _platform_token_reader(str(path))
    assert caught.value.code == 2
    assert "not hold a platform token" in str(caught.value)
    assert "not a jwt" not in str(caught.value)


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(CliError) as caught:
        _platform_token_reader(str(tmp_path / "absent"))
    assert caught.value.code == 2


def test_an_agent_needs_a_key_or_a_platform_token() -> None:
    args = argparse.Namespace(key=None, platform_token_file=None)
    with pytest.raises(CliError) as caught:
        asyncio.run(_exchange(args, "http://127.0.0.1:8400"))
    assert caught.value.code == 2
