"""The instance secret: keys the HMAC of generated secrets and encrypts private keys at rest."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from authority.settings import Settings


def load_secret_key(settings: Settings) -> bytes:
    """The configured secret, or one generated once into ``data_dir/secret.key`` (0600).

    Every instance that shares a database must share this secret: set
    ``AUTHORITY_SECRET_KEY`` for anything but the embedded default.
    """
    if settings.secret_key is not None:
        return settings.secret_key.encode()
    path = settings.data_dir / "secret.key"
    if path.exists():
        _check_private(path)
        return path.read_bytes().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    value = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(value + b"\n")
    return value


def _check_private(path: Path) -> None:
    mode = path.stat().st_mode & 0o077
    if mode:
        raise PermissionError(
            f"{path} is readable by group or others (mode {oct(path.stat().st_mode & 0o777)}); "
            "run chmod 600 on it"
        )
