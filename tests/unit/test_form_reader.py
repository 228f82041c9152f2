"""The form reader (``endpoints.http``): what it refuses, and that it reads a body exactly
as ``urllib.parse.parse_qsl`` in strict mode did (RFC 6749 §3.1, appendix B); and the
pre-rendered answer introspection sends."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from authority.endpoints import forms
from authority.endpoints.http import (
    MAX_FORM_FIELDS,
    MAX_KEPT_FIELD,
    NO_STORE,
    ClientGone,
    NoStoreJSON,
    json_response,
    parse_urlencoded,
    read_body,
    read_form,
)
from authority.errors import AuthorityError

MALFORMED = "The form body is malformed."


def reference(raw: bytes) -> list[tuple[str, str]] | None:
    """What the reader parsed before: parse_qsl, strict; None where it refused."""
    try:
        text = raw.decode("ascii")
        return parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=bool(text),
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        return None


def parsed(raw: bytes) -> list[tuple[str, str]] | None:
    try:
        return parse_urlencoded(raw)
    except AuthorityError as exc:
        refused = (exc.status_code, exc.body()["error_description"])
    assert refused == (400, MALFORMED)
    return None


#: Bytes a form body is made of, and the ones that have a meaning in one, often.
_ALPHABET = st.sampled_from(
    [
        b"a",
        b"b",
        b"=",
        b"&",
        b"+",
        b"%",
        b"2",
        b"0",
        b"C3",
        b"A9",
        b"FF",
        b"zz",
        b";",
        b"\xc3",
        b" ",
    ]
)


@given(st.lists(_ALPHABET, max_size=40).map(b"".join))
def test_the_reader_parses_and_refuses_as_parse_qsl_did(raw: bytes) -> None:
    assert parsed(raw) == reference(raw)


@given(st.binary(max_size=80))
def test_any_bytes_are_parsed_or_refused_as_parse_qsl_did(raw: bytes) -> None:
    assert parsed(raw) == reference(raw)


#: Names and values of any text (multi-byte UTF-8 included), encoded as clients encode them.
_FIELDS = st.lists(st.tuples(st.text(max_size=12), st.text(max_size=12)), max_size=8)


@given(_FIELDS, st.booleans())
def test_encoded_text_is_decoded_as_parse_qsl_did(
    fields: list[tuple[str, str]], plus: bool
) -> None:
    raw = urlencode(fields, quote_via=quote_plus if plus else quote).encode()
    assert parsed(raw) == reference(raw)
    if raw:
        assert parsed(raw) == fields


@pytest.mark.parametrize("size", [1, MAX_KEPT_FIELD // 6, MAX_KEPT_FIELD // 6 + 1, 400])
def test_a_field_is_decoded_the_same_kept_or_not(size: int) -> None:
    # Each "%C3%A9" is 6 encoded characters: sizes on both sides of the kept length.
    raw = b"a%C3%A9=" + b"%C3%A9" * size
    for _ in range(2):  # the second time from the kept decodings
        assert parsed(raw) == reference(raw) == [("a\u00e9", "\u00e9" * size)]
        assert parsed(raw[:-3]) is None is reference(raw[:-3])  # a cut UTF-8 sequence


@pytest.mark.parametrize(
    "raw",
    [
        b"a=1&&b=2",  # an empty field
        b"a",  # a field without "="
        b"a=1&",
        b"&a=1",
        b"a=%C3",  # not UTF-8 once decoded
        b"a=\xc3\xa9",  # not ASCII
        b"&".join([b"a=1"] * (MAX_FORM_FIELDS + 1)),
    ],
)
def test_malformed_bodies_are_refused(raw: bytes) -> None:
    assert reference(raw) is None
    assert parsed(raw) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", []),
        (b"=", [("", "")]),
        (b"a=", [("a", "")]),
        (b"a=b=c", [("a", "b=c")]),
        (b"a+b=c%20d%2B", [("a b", "c d+")]),
        (b"a=%zz", [("a", "%zz")]),
        (b"&".join([b"a=1"] * MAX_FORM_FIELDS), [("a", "1")] * MAX_FORM_FIELDS),
    ],
)
def test_well_formed_bodies(raw: bytes, expected: list[tuple[str, str]]) -> None:
    assert parse_urlencoded(raw) == expected == reference(raw)


def request(
    body: bytes | list[bytes],
    *,
    content_type: bytes | None = b"application/x-www-form-urlencoded",
    content_length: bytes | None = None,
    query: bytes = b"",
    disconnect: bool = False,
) -> Request:
    chunks = [body] if isinstance(body, bytes) else body
    headers = []
    if content_type is not None:
        headers.append((b"content-type", content_type))
    if content_length is not None:
        headers.append((b"content-length", content_length))
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    if disconnect:
        messages[-1]["more_body"] = True
        messages.append({"type": "http.disconnect"})

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    app = SimpleNamespace(state=SimpleNamespace())  # no services: nothing counted
    scope = {
        "type": "http",
        "method": "POST",
        "headers": headers,
        "query_string": query,
        "app": app,
    }
    return Request(scope, receive)


async def refusal(request: Request, limit: int = 100) -> tuple[int, str, str]:
    with pytest.raises(AuthorityError) as raised:
        await read_form(request, limit, schema=(forms.IntrospectionForm,))
    body = raised.value.body()
    return raised.value.status_code, body["error"], body["error_description"]


async def test_a_body_in_several_chunks_is_read_whole() -> None:
    form = await read_form(request([b"tok", b"en=a", b"bc"]), 100)
    assert form.get("token") == "abc"
    assert await read_body(request([b"", b"{}", b""]), 100) == b"{}"


async def test_every_refusal_keeps_its_code_and_description() -> None:
    assert await refusal(request(b"token=a&token=b")) == (
        400,
        "invalid_request",
        "A parameter is included more than once.",
    )
    assert await refusal(request(b"token=a", query=b"token=a")) == (
        400,
        "invalid_request",
        "Parameters must be sent in the request body, not the URL.",
    )
    assert await refusal(request(b"{}", content_type=b"application/json")) == (
        415,
        "invalid_request",
        "The body must be application/x-www-form-urlencoded.",
    )
    assert (await refusal(request(b"token=a", content_type=None)))[0] == 415
    assert await refusal(request(b"token=a", content_length=b"7x")) == (
        400,
        "invalid_request",
        "The Content-Length header is invalid.",
    )
    assert (await refusal(request(b"token=a", content_length=b"101")))[0] == 413
    assert (await refusal(request([b"token=", b"a" * 100])))[0] == 413
    assert await refusal(request(b"token=%FF")) == (400, "invalid_request", MALFORMED)


async def test_the_charset_parameter_and_case_of_the_media_type_are_accepted() -> None:
    content_type = b"Application/X-WWW-Form-Urlencoded; charset=UTF-8"
    form = await read_form(request(b"token=a", content_type=content_type), 100)
    assert form.get("token") == "a"


async def test_a_client_gone_mid_body_is_its_own_refusal() -> None:
    with pytest.raises(ClientGone):
        await read_form(request(b"token=", disconnect=True), 100)


def test_a_prerendered_no_store_answer_is_byte_for_byte_the_json_response() -> None:
    content = {"active": True, "aud": "https://tools.example.test", "exp": 1}
    made = NoStoreJSON(orjson.dumps(content))
    expected = json_response(content, 200, NO_STORE)
    assert (made.status_code, made.body, made.raw_headers) == (
        expected.status_code,
        expected.body,
        expected.raw_headers,
    )
