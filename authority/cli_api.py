"""The command line's client of the ``/v1`` management API: where, with which key, and how
answers and refusals print.

Commands that talk to a running authority share this module, so that they agree on
everything a script depends on:

* the authority is ``--url``, else ``AUTHORITY_URL``, else this machine's configured
  issuer (when the server is installed here), else ``http://127.0.0.1:8400``;
* the API key is ``--api-key-file``, else ``--api-key``, else ``AUTHORITY_API_KEY``
  (a file keeps it out of the process list and the shell history);
* ``--json`` prints the API's own JSON answer (a list: every page's items, as one JSON
  array), sorted keys, two-space indent; otherwise one line per object, tab-separated;
* exit status: 0 done, 1 refused (the API answered 4xx), 2 usage (bad arguments, an
  unreadable key file, no key), 3 unavailable (cannot connect, a timeout, a 5xx); the
  message is one line on stderr, naming the URL tried when it could not be reached.

Whatever the server (or anyone between) sent is printed through ``printable``, and a URL
without its userinfo (``shown_url``): a line on the terminal neither acts on it nor
shows a password that came with ``--url``.

It needs only ``httpx`` (a base dependency), so an owner's or auditor's machine runs these
commands from the SDK install, without the server's packages.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
#: ``authority token`` only: the call waits for the owner's approval.
EXIT_PENDING = 4

URL_VARIABLE = "AUTHORITY_URL"
API_KEY_VARIABLE = "AUTHORITY_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8400"
TIMEOUT = httpx.Timeout(30.0)
MAX_PAGES = 10_000

Command = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """One line for stderr and the exit status that goes with it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def create_private(path: Path, what: str) -> int:
    """``path``, new and readable by its owner only, made before the API is asked (so a
    file that cannot be made leaves nothing registered whose secret is lost); on an
    existing file, or through a symlink, the mode would be ignored and ``what`` would
    land in whatever permissions and place were there, so neither is accepted."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise CliError(f"{path} exists: {what} is never written over a file", 2) from None
    except OSError as exc:
        raise CliError(f"cannot create {path}: {exc.strerror}", 2) from None


def guarded(command: Command) -> Command:
    """Run ``command``; a ``CliError`` becomes its one line on stderr and its status."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except CliError as exc:
            print(f"error: {printable(str(exc))}", file=sys.stderr)
            return exc.code

    run.__doc__ = command.__doc__
    return run


def base_url(args: argparse.Namespace) -> str:
    url = getattr(args, "url", None) or os.environ.get(URL_VARIABLE)
    if not url:
        url = _configured_issuer(args) or DEFAULT_URL
    if not url.startswith(("http://", "https://")):
        raise CliError(
            f"the authority's URL must start with http:// or https://: {shown_url(url)!r}", 2
        )
    return url.rstrip("/")


def shown_url(url: str) -> str:
    """``url`` as it may be printed: without the ``user:password@`` it may carry."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a URL that does not parse)"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _configured_issuer(args: argparse.Namespace) -> str | None:
    """The issuer this machine's server is configured with, when the server is installed."""
    try:
        from authority.settings import ConfigError, load_settings
    except ImportError:
        return None
    overrides: dict[str, object] = {}
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    try:
        return load_settings(**overrides).issuer
    except ConfigError:
        return None


def api_key(args: argparse.Namespace) -> str:
    key_file = getattr(args, "api_key_file", None)
    if key_file is not None:
        try:
            key = Path(key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CliError(f"cannot read the API key file {key_file}: {exc.strerror}", 2) from None
        if not key:
            raise CliError(f"the API key file {key_file} is empty", 2)
        return key
    key = getattr(args, "api_key", None) or os.environ.get(API_KEY_VARIABLE, "")
    if not key.strip():
        raise CliError(
            f"no API key: set {API_KEY_VARIABLE}, or pass --api-key-file FILE or --api-key KEY", 2
        )
    return key.strip()


class Api:
    """One authority, one API key: JSON in, JSON out, refusals as ``CliError``."""

    def __init__(self, args: argparse.Namespace, *, authenticated: bool = True) -> None:
        self.url = base_url(args)
        self.shown = shown_url(self.url)
        headers = {"Authorization": f"Bearer {api_key(args)}"} if authenticated else {}
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=TIMEOUT, follow_redirects=False
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        try:
            response = self._http.request(
                method, path, json=body, params={k: v for k, v in params.items() if v}
            )
        except httpx.HTTPError as exc:
            raise CliError(
                f"cannot reach the authority at {self.shown}: {_reason(exc)}", EXIT_UNAVAILABLE
            ) from None
        return answer_of(response, self.url)

    def items(self, path: str, **params: str) -> Iterator[dict[str, Any]]:
        """Every item of a paged list, page after page."""
        for _ in range(MAX_PAGES):
            page = self.call("GET", path, **params)
            yield from page.get("items", [])
            cursor = page.get("next_cursor")
            if not isinstance(cursor, str):
                return
            params["cursor"] = cursor
        raise CliError(f"{path}: too many pages", EXIT_UNAVAILABLE)


def _reason(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or no route (is it running? set AUTHORITY_URL or --url)"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return type(exc).__name__


def answer_of(response: httpx.Response, url: str) -> Any:
    """The JSON of a 2xx answer; anything else as a ``CliError`` with its exit status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if 200 <= response.status_code < 300:
        return body
    error = description = ""
    if isinstance(body, dict):
        error = str(body.get("error") or "")
        description = str(body.get("error_description") or "")
    code = EXIT_UNAVAILABLE if response.status_code >= 500 else EXIT_REFUSED
    detail = ": ".join(part for part in (error, description) if part) or response.reason_phrase
    where = f" at {shown_url(url)}" if code == EXIT_UNAVAILABLE else ""
    raise CliError(f"HTTP {response.status_code}{where} {printable(detail)}", code)


# --- output ---------------------------------------------------------------------------------
def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=True))


def line(item: dict[str, Any], fields: Sequence[str]) -> str:
    """One object as one line: its ``fields``, tab-separated, control characters escaped."""
    values = []
    for name in fields:
        value = item.get(name)
        if value is None:
            text = "-"
        elif isinstance(value, str):
            text = value
        else:
            text = json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
        values.append(printable(text))
    return "\t".join(values)


def printable(text: str) -> str:
    """``text`` with every control and format character escaped (a tab as a space), so
    nothing the API stores can act on the terminal or shift the columns."""
    out = []
    for char in text:
        if char == "\t":
            out.append(" ")
        elif unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


def show(args: argparse.Namespace, value: Any, fields: Sequence[str]) -> int:
    """One object: its JSON with ``--json``, else its ``fields`` on one line."""
    if args.json:
        print_json(value)
    else:
        print(line(value, fields))
    return EXIT_OK


def show_all(
    args: argparse.Namespace, items: Iterator[dict[str, Any]], fields: Sequence[str]
) -> int:
    if args.json:
        print_json(list(items))
        return EXIT_OK
    for item in items:
        print(line(item, fields))
    return EXIT_OK


def created(args: argparse.Namespace, value: dict[str, Any], what: str, shown: str = "id") -> int:
    """A new object: its JSON with ``--json``; else ``shown`` (its id, or the secret shown
    once) alone on stdout, so ``$(...)`` captures it, and a note on stderr."""
    if args.json:
        print_json(value)
        return EXIT_OK
    note = "" if shown == "id" else f"; its {shown.replace('_', ' ')} is shown once: store it now"
    print(printable(f"created {what} {value.get('id', '')}{note}"), file=sys.stderr)
    print(value[shown])
    return EXIT_OK


# --- arguments ------------------------------------------------------------------------------
def add_connection(parser: argparse.ArgumentParser, *, key: bool = True) -> None:
    """``--url``, the API key options and ``--json``, as every API command takes them."""
    parser.add_argument(
        "--url", default=None, help=f"the authority (default: ${URL_VARIABLE}, else the issuer)"
    )
    if key:
        parser.add_argument(
            "--api-key-file", default=None, metavar="FILE", help="a file holding the API key"
        )
        parser.add_argument(
            "--api-key",
            default=None,
            metavar="KEY",
            help=f"the API key (default: ${API_KEY_VARIABLE})",
        )
    add_json(parser)


def add_json(parser: argparse.ArgumentParser) -> None:
    if not any("--json" in action.option_strings for action in parser._actions):
        parser.add_argument("--json", action="store_true", help="machine-readable JSON output")


def read_json_argument(value: str, what: str) -> Any:
    """A JSON argument given inline or as ``@FILE``."""
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot read {what} from {value[1:]}: {exc.strerror}", 2) from None
    try:
        return json.loads(text)
    except ValueError:
        raise CliError(f"{what} is not valid JSON", 2) from None
