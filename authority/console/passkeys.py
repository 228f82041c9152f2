"""WebAuthn Level 3 ceremonies for the console's passkeys, on py_webauthn.

The relying party is the authority's own origin (the issuer's scheme, host and port) and
its id the issuer's host name unless ``console_rp_id`` names a parent domain. Every
ceremony requires user verification (§5.4.6 ``userVerification: "required"``; the
assertion's UV flag is checked, §7.2 step 17), so a passkey is something held *and*
unlocked by its person. Attestation is not asked for (``none``): a passkey's make is not
what the console trusts, the enrolment link is.

What a browser sends is untrusted until verified: it is parsed here, and any failure to
parse or verify is ``Refused`` with a fixed message, never the input or the library's
text (which quotes it).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from authority.settings import Settings

#: Largest credential JSON read from a browser; real ones are a few kilobytes.
MAX_CREDENTIAL_JSON: Final = 16 * 1024
CHALLENGE_BYTES: Final = 32
RP_NAME: Final = "authority console"
_PARSE_ERRORS = (WebAuthnException, ValueError, TypeError, KeyError, AttributeError)


class Refused(Exception):
    """The browser's response does not verify (or does not parse)."""


@dataclass(frozen=True, slots=True)
class NewPasskey:
    credential_id: str  # base64url
    public_key: bytes
    sign_count: int


def origin(settings: Settings) -> str:
    parts = urlsplit(settings.issuer)
    return f"{parts.scheme}://{parts.netloc}"


def rp_id(settings: Settings) -> str:
    return settings.console_rp_id or (urlsplit(settings.issuer).hostname or "")


def challenge_id(challenge: bytes) -> str:
    """How a challenge is stored and found again: its SHA-256, hex."""
    return hashlib.sha256(challenge).hexdigest()


def new_challenge() -> bytes:
    return secrets.token_bytes(CHALLENGE_BYTES)


def registration_options(
    settings: Settings,
    *,
    challenge: bytes,
    user_id: str,
    user_name: str,
    exclude: list[str],
    timeout: int,
) -> str:
    options = generate_registration_options(
        rp_id=rp_id(settings),
        rp_name=RP_NAME,
        user_id=user_id.encode(),
        user_name=user_name,
        challenge=challenge,
        timeout=timeout * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(c)) for c in exclude
        ],
    )
    return options_to_json(options)


def authentication_options(
    settings: Settings, *, challenge: bytes, allow: list[str], timeout: int
) -> str:
    """``allow`` empty: any discoverable passkey of this relying party (sign-in)."""
    options = generate_authentication_options(
        rp_id=rp_id(settings),
        challenge=challenge,
        timeout=timeout * 1000,
        allow_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(c)) for c in allow],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return options_to_json(options)


def _checked_json(text: str) -> str:
    if len(text) > MAX_CREDENTIAL_JSON:
        raise Refused()
    try:
        if not isinstance(json.loads(text), dict):
            raise Refused()
    except (ValueError, RecursionError):
        raise Refused() from None
    return text


def parse_registration(text: str) -> tuple[RegistrationCredential, bytes]:
    """The registration response and the challenge its client data names."""
    try:
        credential = parse_registration_credential_json(_checked_json(text))
        client = parse_client_data_json(credential.response.client_data_json)
    except _PARSE_ERRORS:
        raise Refused() from None
    return credential, client.challenge


def parse_assertion(text: str) -> tuple[AuthenticationCredential, bytes]:
    """The assertion and the challenge its client data names."""
    try:
        credential = parse_authentication_credential_json(_checked_json(text))
        client = parse_client_data_json(credential.response.client_data_json)
    except _PARSE_ERRORS:
        raise Refused() from None
    return credential, client.challenge


def verify_registration(
    settings: Settings, credential: RegistrationCredential, challenge: bytes
) -> NewPasskey:
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id(settings),
            expected_origin=origin(settings),
            require_user_verification=True,
        )
    except _PARSE_ERRORS:
        raise Refused() from None
    if not verified.user_verified:
        raise Refused()
    return NewPasskey(
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
    )


def verify_assertion(
    settings: Settings,
    credential: AuthenticationCredential,
    challenge: bytes,
    *,
    public_key: bytes,
    sign_count: int,
) -> int:
    """The authenticator's new signature counter once the assertion verifies (UV set)."""
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id(settings),
            expected_origin=origin(settings),
            credential_public_key=public_key,
            credential_current_sign_count=sign_count,
            require_user_verification=True,
        )
    except _PARSE_ERRORS:
        raise Refused() from None
    if not verified.user_verified:
        raise Refused()
    return int(verified.new_sign_count)
