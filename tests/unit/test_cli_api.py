"""``authority.cli_api``: what the command line prints of a server's answer and of a URL."""

from __future__ import annotations

import argparse

import httpx
import pytest

from authority.cli_api import CliError, answer_of, guarded, shown_url


def test_a_refusal_prints_the_servers_text_escaped() -> None:
    body = {"error": "invalid_request", "error_description": "no\x1b[2J\nforged line\u202e"}
    with pytest.raises(CliError) as refused:
        answer_of(httpx.Response(400, json=body), "http://127.0.0.1:8400")
    message = str(refused.value)
    assert message == "HTTP 400 invalid_request: no\\u001b[2J\\u000aforged line\\u202e"


def test_every_error_line_is_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    def command(args: argparse.Namespace) -> int:
        raise CliError("from afar:\x07\r\x1b]0;title\x07", 1)

    assert guarded(command)(argparse.Namespace()) == 1
    err = capsys.readouterr().err
    assert err == "error: from afar:\\u0007\\u000d\\u001b]0;title\\u0007\n"


def test_an_unavailable_answer_names_the_url_without_its_password() -> None:
    with pytest.raises(CliError) as unavailable:
        answer_of(httpx.Response(503), "https://ops:hunter2@authority.example:8443/base")
    assert "hunter2" not in str(unavailable.value)
    assert " at https://authority.example:8443/base " in str(unavailable.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8400", "http://127.0.0.1:8400"),
        ("http://u:p@127.0.0.1:8400/x?y=1", "http://127.0.0.1:8400/x?y=1"),
        ("https://a@b:pw@host.example", "https://host.example"),
        ("http://user@[::1]:9", "http://[::1]:9"),
    ],
)
def test_shown_url_drops_the_userinfo(url: str, shown: str) -> None:
    assert shown_url(url) == shown
