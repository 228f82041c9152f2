"""Settings of call recording: what a gateway may submit of each call, and how long it is kept.

A group of ``authority.settings.Settings``, which alone reads them.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class RecordingSettings(BaseModel):
    """The call-recording fields of ``Settings`` (a base of it, never used alone)."""

    # --- call recording (the gateway's records, authority.recordings) ---------------
    recording_max_body_bytes: int = Field(
        64 * 1024,
        ge=0,
        le=4 * 1024 * 1024,
        description="Largest head of a request or of a response body a gateway may submit "
        "with a call record, bytes, per side (then 413 and nothing is stored).",
    )
    recording_retention: int = Field(
        30,
        ge=1,
        le=36500,
        description="Days the sealed heads of a recorded call are kept; then they are "
        "deleted (the ledger entry and its digests stay).",
    )
    recording_sweep_interval: float = Field(
        3600.0,
        gt=0,
        le=86400,
        description="Seconds between deletions of the sealed heads past recording_retention.",
    )
    recording_rate_per_minute: int = Field(
        60_000, ge=1, description="Call records per gateway per minute (then 429)."
    )
