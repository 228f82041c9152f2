"""Settings of the HTTP service: discovery, request bodies, pages, rate limits, the feed.

A group of ``authority.settings.Settings``, which alone reads them: the bounds that keep
one client from taking an instance's capacity.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class HttpSettings(BaseModel):
    """The HTTP fields of ``Settings`` (a base of it, never used alone)."""

    # --- discovery ------------------------------------------------------------------
    service_documentation: str | None = Field(
        None, description="URL of human-readable documentation, named in the metadata."
    )

    # --- HTTP -----------------------------------------------------------------------
    max_body_bytes: int = Field(
        64 * 1024, ge=1024, le=16 * 1024 * 1024, description="Largest request body, bytes (413)."
    )
    authorization_details_max_arguments_bytes: int = Field(
        16 * 1024,
        ge=2,
        le=1024 * 1024,
        description="Largest tool_call arguments an exchange may bind, bytes of their RFC 8785 "
        "canonical form (else invalid_authorization_details).",
    )
    body_read_timeout: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Seconds from a request's arrival by which its whole body must have "
        "arrived (then 400 and the connection is dropped).",
    )
    max_body_uploads_per_client: int = Field(
        32,
        ge=1,
        le=100_000,
        description="Requests with a body still arriving that one client address may have "
        "open at once, per instance (then 429).",
    )
    page_size_default: int = Field(50, ge=1, le=1000, description="Items per page of a list.")
    page_size_max: int = Field(500, ge=1, le=10000, description="Largest ?limit= of a list.")

    # --- abuse limits ---------------------------------------------------------------
    introspection_rate_per_minute: int = Field(
        60_000, ge=1, description="Introspections per resource server per minute (then 429)."
    )
    # authority.rate_window: one window admits at most limit + N x min(budget, limit),
    # N being instances x workers; without hot state, a worker answers for the allowance.
    introspection_rate_sync_interval: float = Field(
        0.1,
        gt=0,
        le=10,
        description="Seconds between reconciliations of each worker's introspection counts "
        "with hot state.",
    )
    introspection_rate_local_budget: int = Field(
        100,
        ge=1,
        le=100_000,
        description="Introspections per resource server a worker may admit before hot state "
        "has counted them: the over-admission bound per worker and window.",
    )
    introspection_rate_outage_allowance: float = Field(
        2.0,
        gt=0,
        le=60,
        description="Seconds since its last reconciliation a worker keeps counting "
        "introspections without hot state (then 503).",
    )
    revocation_rate_per_minute: int = Field(
        600, ge=1, description="Revocation requests per client per minute (then 429)."
    )

    # --- revocation feed ------------------------------------------------------------
    revocation_feed_heartbeat: float = Field(
        15.0, gt=0, le=300, description="Seconds between keep-alive comments on an idle feed."
    )
    revocation_feed_poll_interval: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Seconds between reads of new revocation events from SQL, in case a "
        "pub/sub notice was lost: the longest an event can take to reach a subscriber.",
    )
    revocation_feed_max_duration: float = Field(
        300.0,
        ge=1,
        le=86400,
        description="Seconds after which a feed stream ends; the client resumes it with "
        "Last-Event-ID (bounds how long a shutdown waits for open streams).",
    )
    revocation_feed_max_streams_per_client: int = Field(
        32,
        ge=1,
        le=100_000,
        description="Feed streams one client address may hold open at once, per instance "
        "(then 429).",
    )
    revocation_feed_max_streams_per_server: int = Field(
        16,
        ge=1,
        le=100_000,
        description="Feed streams one resource server may hold open at once, per instance "
        "(then 429).",
    )
    revocation_feed_buffer: int = Field(
        4096, ge=16, le=1_000_000, description="Recent events each instance keeps in memory."
    )
