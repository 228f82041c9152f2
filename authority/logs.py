"""The server's logs: one line per record, as text for a terminal or as JSON for a collector.

Everything the authority logs goes through the ``authority`` logger and its children;
``configure`` gives them one handler on standard error at ``log_level``, formatted as
``log_format`` says. Under ``authority serve`` uvicorn's own loggers get the same
handler (``uvicorn_config``), so a JSON deployment writes JSON only.

A record's ``extra`` fields become members of the JSON line (``key=value`` in text), and
the request id of the request being served (``REQUEST_ID``, set by
``endpoints.request_log``) is added to every record made while it runs: a decision's
line and its request's line share it. What is logged is ids, codes and timings; never a
token, a secret, a header value or a body (the callers see to it; nothing here could
tell a token from an id).
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import IO, Any, Final, Literal

import orjson

#: The id of the HTTP request being served (None outside one).
REQUEST_ID: ContextVar[str | None] = ContextVar("authority_request_id", default=None)

Format = Literal["text", "json"]

#: The attributes every ``LogRecord`` has: anything else on a record came from ``extra``.
_STANDARD: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)
#: uvicorn's own extras, which its formatters use and ours would print twice.
_IGNORED: Final = frozenset({"color_message"})


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and key not in _IGNORED
    }
    request_id = REQUEST_ID.get()
    if request_id is not None and "request_id" not in fields:
        fields["request_id"] = request_id
    return fields


_second: list[Any] = [None, ""]  # the last second formatted, and its text


def _timestamp(created: float) -> str:
    whole = int(created)
    if _second[0] != whole:  # strftime once a second, not once a line
        _second[:] = [whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))]
    return f"{_second[1]}.{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        # default=str: a field of an unexpected type is shown, never fails the line.
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``: for a person reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        text = (
            f"{_timestamp(record.created)} {record.levelname:<7} {record.name}: "
            f"{record.getMessage()}"
        )
        fields = _fields(record)
        if fields:
            text += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def formatter(log_format: Format) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


#: The handler ``configure`` installed, so that configuring again replaces it.
_HANDLER_MARK: Final = "_authority_handler"


def configure(log_level: str, log_format: Format, *, stream: IO[str] | None = None) -> None:
    """Give the ``authority`` loggers one handler (standard error by default) at ``log_level``.

    Idempotent: a second call replaces the handler the first installed. The loggers do
    not propagate to the root logger, which uvicorn or an embedding program may own.
    """
    logger = logging.getLogger("authority")
    for existing in list(logger.handlers):
        if getattr(existing, _HANDLER_MARK, False):
            logger.removeHandler(existing)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(log_format))
    setattr(handler, _HANDLER_MARK, True)
    logger.addHandler(handler)
    logger.setLevel(log_level.upper())
    logger.propagate = False


def uvicorn_config(log_level: str, log_format: Format) -> dict[str, Any]:
    """uvicorn's ``log_config`` (logging.config.dictConfig): its loggers in our format.

    uvicorn applies it in every worker process before it imports the app, which
    configures the ``authority`` loggers itself (``authority.asgi``). Its access
    logger is left without a handler: ``endpoints.request_log`` writes the one line per
    request, with the route template and the request id that uvicorn's line lacks.
    """
    level = log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "authority": {
                "()": f"{__name__}.{'JsonFormatter' if log_format == 'json' else 'TextFormatter'}"
            }
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "authority",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
