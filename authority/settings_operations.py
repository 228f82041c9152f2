"""Settings of the background work: approvals, webhooks, containment, metrics, policy, ledger.

A group of ``authority.settings.Settings``, which alone reads them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from authority import promotion_rule


class OperationsSettings(BaseModel):
    """The approval to ledger fields of ``Settings`` (a base of it, never used alone)."""

    # --- approvals (OpenID CIBA, poll mode) ------------------------------------------
    approval_lifetime: int = Field(
        300,
        ge=10,
        le=86400,
        description="Seconds an approval request (its auth_req_id) stays valid (CIBA expires_in).",
    )
    approval_poll_interval: int = Field(
        5, ge=1, le=60, description="Least seconds between two polls (CIBA interval)."
    )
    approval_max_pending: int = Field(
        20,
        ge=1,
        le=10_000,
        description="Pending approvals one agent may have at once; more are refused, so an "
        "agent cannot flood its owner.",
    )

    # --- owner notification webhooks (Standard Webhooks, HMAC-SHA-256) --------------
    webhook_queue_size: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Notices waiting for delivery per instance; more are dropped and logged.",
    )
    webhook_workers: int = Field(4, ge=1, le=64, description="Concurrent deliveries.")
    webhook_timeout: float = Field(5.0, gt=0, le=60, description="Seconds per delivery attempt.")
    webhook_max_attempts: int = Field(6, ge=1, le=20, description="Delivery attempts per notice.")
    webhook_retry_base: float = Field(
        2.0, gt=0, le=600, description="Seconds before the first retry; doubled each time."
    )
    webhook_retry_max: float = Field(300.0, gt=0, le=86400, description="Longest retry delay.")
    webhook_allow_http: bool = Field(
        False, description="Accept http:// webhook URLs (development only; https otherwise)."
    )
    webhook_allow_private_addresses: bool = Field(
        False,
        description="Deliver to loopback, private and link-local addresses (development "
        "only: otherwise an owner could make the authority call its own network).",
    )

    # --- automatic containment --------------------------------------------------------
    containment_threshold: int = Field(
        10,
        ge=0,
        le=1_000_000,
        description="Violations (denied exchanges, and its tokens presented at a resource "
        "server they are not for) within containment_window that quarantine an agent; "
        "0 turns containment off.",
    )
    containment_window: int = Field(60, ge=1, le=86400, description="Seconds.")
    containment_memory: int = Field(
        30 * 86400,
        ge=0,
        description="Seconds over which a repeated containment lowers the autonomy level.",
    )
    kill_cascade_batch_size: int = Field(
        500,
        ge=1,
        le=5000,
        description="Agents or delegations a kill switch stops per transaction, after the "
        "one commit that contains their owner.",
    )
    kill_cascade_pace: float = Field(
        1.0,
        ge=0,
        le=10,
        description="Seconds the kill switch's cascade rests per second of batch work (1.0: "
        "at most half the time), so other owners' requests keep their latency.",
    )

    # --- behaviour: the baseline each agent earns, promotion proposals --------------------
    behaviour_learning_calls: int = Field(
        200,
        ge=0,
        description="Issued calls an agent makes while its baseline is learned: until it has "
        "made these and behaviour_learning_days have passed since its first, a new tool "
        "joins its baseline without asking the owner.",
    )
    behaviour_learning_days: float = Field(
        7.0, ge=0, description="Days of history an agent needs before a new tool steps up."
    )
    behaviour_burst_factor: float = Field(
        10.0,
        ge=0,
        description="A minute with more than this many times the agent's usual calls per "
        "minute (and more than behaviour_burst_floor) asks the owner; 0 turns bursts off.",
    )
    behaviour_burst_floor: int = Field(
        30, ge=0, description="Calls in a minute below which a burst never steps up."
    )
    behaviour_refresh_interval: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Seconds between two folds of the issued grants into the baselines (and "
        "evaluations of the promotion rule).",
    )
    behaviour_enabled: bool = Field(
        True, description="Step up calls far outside an agent's baseline to the owner."
    )
    promotion_rule: str = Field(
        "days >= 30 and calls >= 1000 and violations == 0",
        max_length=4096,  # a proposal's ledger entry records it whole
        description="When an agent's autonomy level is proposed one up to its owner: clauses "
        "'NAME OP NUMBER' joined by 'and', over days, calls, violations and step_ups since "
        "its level last changed (or its first call); empty: never proposed.",
    )
    promotion_max_level: int = Field(
        2, ge=0, le=3, description="The highest autonomy level a promotion is proposed to."
    )

    @field_validator("promotion_rule")
    @classmethod
    def _rule_parses(cls, value: str) -> str:
        promotion_rule.parse(value)  # RuleError is a ValueError: a validation error
        return value

    # --- metrics (Prometheus) ---------------------------------------------------------
    metrics_enabled: bool = Field(True, description="Serve /metrics.")
    metrics_token: str | None = Field(
        None,
        min_length=32,
        description="Bearer token the scraper sends; default: an admin or auditor API key.",
    )
    metrics_max_agents: int = Field(
        100,
        ge=0,
        le=100_000,
        description="Agents with a series of their own; later ones are counted as 'other'.",
    )
    metrics_sample_interval: float = Field(
        5.0,
        gt=0,
        le=300,
        description="Seconds between two samples of a worker's gauges (database pools) when "
        "several workers serve; a scrape samples the worker answering it.",
    )

    # --- policy ---------------------------------------------------------------------
    policy_file: Path | None = Field(
        None,
        description="Cedar policy file evaluated after the built-in checks: stored as "
        "policy version 1 at the first start with no stored version; afterwards the stored "
        "versions rule (authority policy set|activate) and a file that differs from the "
        "active version is logged as a warning at start.",
    )
    policy_refresh_interval: float = Field(
        1.0,
        ge=0,
        le=60,
        description="Most seconds an instance decides on its active policy version without "
        "confirming it in the database (0: every decision); a change reaches every instance "
        "within it, and a confirmation that fails answers 503.",
    )

    # --- ledger ---------------------------------------------------------------------
    checkpoint_interval: float = Field(
        1.0, gt=0, le=3600, description="Seconds between ledger sequencing rounds and checkpoints."
    )
    ledger_straggler_window: float = Field(
        300.0,
        ge=1,
        description="Seconds beyond which no transaction appending to the ledger is still "
        "open: how far back the sequencer looks for late-committing entries.",
    )
    ledger_batch_size: int = Field(
        2000, ge=1, le=100_000, description="Entries sequenced per sequencer transaction."
    )
