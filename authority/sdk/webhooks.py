"""Verifying the authority's webhook deliveries on the owner's side (Standard Webhooks).

The authority signs every delivery with the owner's secret (``whsec_...``, shown once
when the webhook was registered)::

    webhook-id: msg_...
    webhook-timestamp: <Unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA-256 of "{id}.{timestamp}.{body}">

``verify_webhook`` checks the signature in constant time against every ``v1`` signature
in the header (a space-separated list, so secrets can be rotated), refuses a timestamp
more than ``tolerance`` seconds away from now (a replayed old delivery), and only then
parses the body. Pass the body exactly as received, before any JSON parsing: the
signature is over those bytes. Dedupe on the returned ``id``: a retry carries the same one.

Standard library only, like the rest of the SDK's receiving side::

    event = verify_webhook(secret, request.headers, await request.body())
    if event.type == "approval.requested": ...
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300  # seconds, as the Standard Webhooks reference libraries use


class WebhookVerificationError(Exception):
    """The delivery is not provably from the authority, or is too old or too new."""


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    id: str
    type: str
    timestamp: int
    data: dict[str, Any]


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError(f"missing header {name}")


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("the secret is not a whsec_ secret") from None


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> WebhookEvent:
    """The delivery's event if its signature and timestamp verify; raise otherwise."""
    msg_id = _header(headers, "webhook-id")
    raw_timestamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    if not raw_timestamp.isascii() or not raw_timestamp.isdigit() or len(raw_timestamp) > 12:
        raise WebhookVerificationError("invalid webhook-timestamp")
    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError("webhook-timestamp outside the tolerance")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    for candidate in signatures.split():
        version, _, encoded = candidate.partition(",")
        if version != "v1":
            continue
        try:
            presented = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(presented, expected):
            break
    else:
        raise WebhookVerificationError("no valid signature")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise WebhookVerificationError("the body is not JSON") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        raise WebhookVerificationError("the body is not a webhook event")
    data = payload.get("data")
    return WebhookEvent(
        id=msg_id,
        type=payload["type"],
        timestamp=timestamp,
        data=data if isinstance(data, dict) else {},
    )
