"""Hypothesis strategies for what masking must catch: each value the way it appears."""

from __future__ import annotations

import base64
import json
import string

from hypothesis import strategies as st

from authority.gateway.detectors import IBAN_LENGTHS, luhn_valid


def luhn_complete(body: str) -> str:
    """``body`` and the one check digit that makes it Luhn-valid."""
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable")


@st.composite
def formatted(draw: st.DrawFn, digits: str) -> str:
    """The digits with a single space, a dash or nothing between any two."""
    out = [digits[0]]
    for char in digits[1:]:
        out.append(draw(st.sampled_from(["", "", " ", "-"])) + char)
    return "".join(out)


@st.composite
def cards(draw: st.DrawFn) -> str:
    length = draw(st.integers(min_value=13, max_value=19))
    body = draw(st.text("0123456789", min_size=length - 1, max_size=length - 1))
    return draw(formatted(luhn_complete(body)))


@st.composite
def ibans(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(sorted(IBAN_LENGTHS)))
    bban = draw(
        st.text(
            string.digits + string.ascii_uppercase,
            min_size=IBAN_LENGTHS[country] - 4,
            max_size=IBAN_LENGTHS[country] - 4,
        )
    )
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    iban = f"{country}{98 - number % 97:02d}{bban}"
    if draw(st.booleans()):  # the print form: groups of four
        iban = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


TOKEN_CHARS = string.ascii_letters + string.digits + "-._~+/"


@st.composite
def bearer_tokens(draw: st.DrawFn) -> tuple[str, str]:
    """(what appears, the secret in it)."""
    token = draw(st.text(TOKEN_CHARS, min_size=16, max_size=200))
    scheme = draw(st.sampled_from(["Bearer", "bearer", "BEARER", "DPoP"]))
    return f"{scheme} {token}", token


@st.composite
def jwts(draw: st.DrawFn) -> str:
    header = {"alg": draw(st.sampled_from(["RS256", "ES256", "EdDSA", "HS256"]))}
    if draw(st.booleans()):
        header["typ"] = "JWT"
    claims = draw(st.dictionaries(st.text(string.ascii_letters, max_size=5), st.integers()))
    signature = draw(st.binary(min_size=0, max_size=64))
    parts = [json.dumps(header).encode(), json.dumps(claims).encode(), signature]
    return ".".join(_b64url(p) for p in parts)


@st.composite
def pem_keys(draw: st.DrawFn) -> str:
    label = draw(
        st.sampled_from(
            [
                "PRIVATE KEY",
                "RSA PRIVATE KEY",
                "EC PRIVATE KEY",
                "OPENSSH PRIVATE KEY",
                "ENCRYPTED PRIVATE KEY",
            ]
        )
    )
    body = base64.b64encode(draw(st.binary(min_size=1, max_size=300))).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----"


@st.composite
def emails(draw: st.DrawFn) -> str:
    local = draw(st.text(string.ascii_letters + string.digits + "._%+-", min_size=1, max_size=30))
    labels = draw(
        st.lists(
            st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12),
            min_size=1,
            max_size=3,
        )
    )
    tld = draw(st.text(string.ascii_lowercase, min_size=2, max_size=6))
    return f"{local}@{'.'.join(labels)}.{tld}"


@st.composite
def secrets(draw: st.DrawFn) -> tuple[str, str, str]:
    """(detector, what appears, the part that must never appear in the output)."""
    kind = draw(st.sampled_from(["card", "iban", "bearer", "jwt", "pem_private_key", "email"]))
    if kind == "bearer":
        shown, secret = draw(bearer_tokens())
        return kind, shown, secret
    value = draw(
        {
            "card": cards(),
            "iban": ibans(),
            "jwt": jwts(),
            "pem_private_key": pem_keys(),
            "email": emails(),
        }[kind]
    )
    secret = value.split("\n")[1] if kind == "pem_private_key" else value
    return kind, value, secret


#: Text between values: words and punctuation, never a character a value could run into.
FILLER = st.text(string.ascii_letters + " ,;:!?()\n", max_size=40)
SEPARATOR = st.sampled_from([" ", "\n", " (", ") ", ": ", ", "])
