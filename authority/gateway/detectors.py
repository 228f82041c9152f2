"""Detectors of secrets and personal data in text, for the gateway's masking (pure, no I/O).

Each detector is a bounded regular expression (no nested unbounded repetition, a
left-boundary look-behind so that a match can only start where a value can) and a check
of what it found: the Luhn checksum of a payment card number (ISO/IEC 7812-1 annex B),
the mod-97 check and the country's length of an IBAN (ISO 13616-1, ISO 7064 MOD 97-10),
a JSON header naming an ``alg`` for a JWT (RFC 7519 §7.2, RFC 7515 §4.1.1). Matching at
one position reads at most ``REACH`` characters from it, which is what lets the stream
masker hold back a bounded tail and still decide exactly as it would on the whole text.

``scan`` walks a text from left to right: at each position the leftmost detection wins
(by ``DETECTORS`` order at one position), its text is replaced, and the walk goes on
after it. A PEM private key runs from its ``BEGIN`` line to the next ``END … PRIVATE
KEY`` line, or, without one, to the end of the text: a key cut short is still a key.

What is not caught: values written with escapes the detectors do not read (JSON
``\\u0040`` for ``@``, percent-encoding, base64 of a whole document), card numbers
grouped by anything but single spaces or dashes, IBANs of countries outside
``IBAN_LENGTHS``, e-mail addresses with non-ASCII characters or a local part over 64
characters (RFC 5321 §4.5.3.1.1), bearer tokens shorter
than 16 characters, JWTs whose header is over 1 KiB. Of a bearer token longer than
4 KiB or a JWT payload longer than 6 KiB only the first part is replaced.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

# ISO 13616 registry: the length of each country's IBAN.
IBAN_LENGTHS: Final[dict[str, int]] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    "YE": 30,
}  # fmt: skip


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum (ISO/IEC 7812-1): every second digit from the right doubled."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """ISO 13616: the country's length, and ISO 7064 MOD 97-10 over the rearranged text."""
    iban = iban.upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum() or not iban.isascii():
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


Found = tuple[int, int]  # (start, end) in the text
#: The first checked detection that starts at or after a position, or None.
Finder = Callable[[str, int], Found | None]


def _digit(char: str) -> bool:
    return "0" <= char <= "9"


def _alnum(char: str) -> bool:
    return char.isascii() and char.isalnum()


@dataclass(frozen=True, slots=True)
class Detector:
    name: str
    find: Finder  # the candidates from a position on, checked, leftmost first
    reach: int  # the most characters a decision at one position reads, from it


def _checked(
    pattern: re.Pattern[str], check: Callable[[str, re.Match[str]], Found | None]
) -> Finder:
    def find(text: str, pos: int) -> Found | None:
        while (match := pattern.search(text, pos)) is not None:
            found = check(text, match)
            if found is not None:
                return found
            pos = match.start() + 1
        return None

    return find


# --- e-mail addresses (RFC 5321 §4.5.3.1 bounds: 64-octet local part, 63-octet labels) ---
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}"
    r"[A-Za-z]{2,63}(?![A-Za-z])"
)
EMAIL_REACH: Final = 64 + 1 + 8 * 64 + 63 + 1


def _email(text: str, match: re.Match[str]) -> Found | None:
    return match.span()


# --- payment card numbers: 13 to 19 digits, single spaces or dashes between them ---------
_CARD = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}")
CARD_REACH: Final = 19 + 18 + 1


def _card(text: str, match: re.Match[str]) -> Found | None:
    """The longest Luhn-valid run of 13-19 digits from the match's start that does not
    stop inside a longer number."""
    start = match.start()
    ends = [start + i + 1 for i, char in enumerate(match.group()) if _digit(char)]
    for count in range(len(ends), 12, -1):
        end = ends[count - 1]
        if end < len(text) and _digit(text[end]):
            continue
        digits = "".join(c for c in text[start:end] if _digit(c))
        if luhn_valid(digits):
            return start, end
    return None


# --- IBANs, electronic or grouped by single spaces ------------------------------------------
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}(?: ?[A-Za-z0-9]){11,30}")
IBAN_REACH: Final = 4 + 2 * 30 + 1


def _iban(text: str, match: re.Match[str]) -> Found | None:
    start = match.start()
    length = IBAN_LENGTHS.get(match.group()[:2].upper())
    if length is None:
        return None
    seen = 0
    for offset, char in enumerate(match.group()):
        if char == " ":
            continue
        seen += 1
        if seen == length:
            end = start + offset + 1
            if end < len(text) and _alnum(text[end]):
                return None
            compact = text[start:end].replace(" ", "")
            return (start, end) if iban_valid(compact) else None
    return None


# --- bearer tokens (RFC 6750 §2.1 b64token), also under the DPoP scheme (RFC 9449 §7.1) --
_BEARER = re.compile(
    r"(?<![A-Za-z0-9])(?:[Bb][Ee][Aa][Rr][Ee][Rr]|[Dd][Pp][Oo][Pp])[ \t]{1,8}"
    r"[A-Za-z0-9._~+/-]{16,4096}={0,8}"
)
BEARER_REACH: Final = 6 + 8 + 4096 + 8 + 1


def _bearer(text: str, match: re.Match[str]) -> Found | None:
    return match.span()


# --- JWTs (RFC 7519): base64url segments, the first a JSON header naming an alg --------------
_JWT = re.compile(
    r"(?<![A-Za-z0-9_-])([A-Za-z0-9_-]{4,1024})\.[A-Za-z0-9_-]{1,6144}(?:\.[A-Za-z0-9_-]{0,1024})?"
)
JWT_REACH: Final = 1024 + 1 + 6144 + 1 + 1024 + 1


def _jwt(text: str, match: re.Match[str]) -> Found | None:
    segment = match.group(1)
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        return None
    if isinstance(header, dict) and isinstance(header.get("alg"), str):
        return match.span()
    return None


# --- PEM private keys (RFC 7468 §10 and §11; OpenSSH, PGP and others' labels alike) ----------
_PEM_LABEL = r"[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
PEM_BEGIN = re.compile(r"-----BEGIN " + _PEM_LABEL)
PEM_END = re.compile(r"-----END " + _PEM_LABEL)
PEM_REACH: Final = len("-----BEGIN ") + 40 + len("PRIVATE KEY BLOCK-----") + 1
#: The longest END line: what the stream holds back while it drops a key's body.
PEM_END_REACH: Final = len("-----END ") + 40 + len("PRIVATE KEY BLOCK-----") + 1
PEM: Final = "pem_private_key"


def _pem(text: str, match: re.Match[str]) -> Found | None:
    return match.span()  # the BEGIN line; ``scan`` drops the body up to the END line


# Order decides between detections that start at the same position.
DETECTORS: Final[dict[str, Detector]] = {
    d.name: d
    for d in (
        Detector(PEM, _checked(PEM_BEGIN, _pem), PEM_REACH),
        Detector("jwt", _checked(_JWT, _jwt), JWT_REACH),
        Detector("bearer", _checked(_BEARER, _bearer), BEARER_REACH),
        Detector("iban", _checked(_IBAN, _iban), IBAN_REACH),
        Detector("card", _checked(_CARD, _card), CARD_REACH),
        Detector("email", _checked(_EMAIL, _email), EMAIL_REACH),
    )
}
#: The most characters any decision reads from its position (and the one before it).
REACH: Final = max(d.reach for d in DETECTORS.values()) + 1


def replacement(name: str) -> str:
    return f"[masked:{name}]"


def whole_card(number: int) -> bool:
    """A JSON integer that is, in full, a Luhn-valid card number."""
    digits = str(number)
    return not digits.startswith("-") and 13 <= len(digits) <= 19 and luhn_valid(digits)
