"""The log formatters (authority.logs): what a line holds, in each format."""

from __future__ import annotations

import json
import logging
import sys

from authority import logs


def record(msg: str = "exchange issued", **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("authority.exchange", logging.INFO, __file__, 1, msg, None, None)
    made.__dict__.update(extra)
    return made


def test_a_json_line_holds_the_fields_and_the_request_id() -> None:
    token = logs.REQUEST_ID.set("rid-1")
    try:
        line = logs.JsonFormatter().format(record(grant_id="grt_1", agent_id=None))
    finally:
        logs.REQUEST_ID.reset(token)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["logger"] == "authority.exchange"
    assert parsed["level"] == "info"
    assert parsed["message"] == "exchange issued"
    assert (parsed["grant_id"], parsed["agent_id"]) == ("grt_1", None)
    assert parsed["request_id"] == "rid-1"


def test_a_field_cannot_overwrite_the_line_s_own_members() -> None:
    parsed = json.loads(logs.JsonFormatter().format(record(level="forged", logger="x")))
    assert (parsed["level"], parsed["logger"]) == ("info", "authority.exchange")


def test_an_exception_stays_inside_its_json_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        made = record("failed")
        made.exc_info = sys.exc_info()
    line = logs.JsonFormatter().format(made)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


def test_text_puts_the_fields_after_the_message() -> None:
    text = logs.TextFormatter().format(record(grant_id="grt_1"))
    assert text.endswith("INFO    authority.exchange: exchange issued grant_id=grt_1")


def test_uvicorn_keeps_its_loggers_in_our_format_and_no_access_line() -> None:
    config = logs.uvicorn_config("info", "json")
    assert config["formatters"]["authority"]["()"] == "authority.logs.JsonFormatter"
    assert config["loggers"]["uvicorn.access"]["handlers"] == []
    assert config["loggers"]["uvicorn.access"]["propagate"] is False
    assert logs.uvicorn_config("info", "text")["formatters"]["authority"]["()"].endswith(
        "TextFormatter"
    )
