"""Settings of the console: the relying party its passkeys are for, and its sessions' bounds.

A group of ``authority.settings.Settings``, which alone reads them; the rules across groups
(the relying party follows the issuer, insecure cookies only on loopback) are there.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class ConsoleSettings(BaseModel):
    """The console's fields of ``Settings`` (a base of it, never used alone)."""

    # --- console (passkeys, sessions) -----------------------------------------------
    console_enabled: bool = Field(True, description="Serve the web console under /console.")
    console_rp_id: str | None = Field(
        None,
        max_length=253,
        pattern=r"^[a-z0-9.-]+$",
        description="WebAuthn relying party id of the console's passkeys; default: the "
        "issuer's host name.",
    )
    console_secure_cookies: bool = Field(
        True,
        description="Console cookies are Secure (and __Host- prefixed); false is accepted "
        "only with an http loopback issuer, for tests.",
    )
    console_session_idle_timeout: int = Field(
        900, ge=60, le=86400, description="Seconds without a request after which a session ends."
    )
    console_session_max_lifetime: int = Field(
        43200, ge=300, le=604800, description="Seconds after sign-in at which a session ends."
    )
    console_step_up_window: int = Field(
        60,
        ge=10,
        le=300,
        description="Seconds a step-up passkey challenge stays good for the one action it "
        "was asked for (approve, kill switch, revoke, release).",
    )
    console_ceremony_timeout: int = Field(
        300, ge=30, le=3600, description="Seconds a sign-in or enrolment challenge stays good."
    )
    console_enrolment_lifetime: int = Field(
        86400, ge=300, le=2592000, description="Seconds a one-time enrolment link stays good."
    )
