"""Configuration: the one module that reads the environment (``AUTHORITY_*``) or a config file.

Every limit, lifetime and skew used by the handlers is a field here, with its default
documented in README.md. Invalid values fail at start-up with the setting's name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_CONFIG_FILE = Path("config/authority.toml")


class Settings(BaseSettings):
    """All of the authority's configuration, loaded once by ``create_app``."""

    model_config = SettingsConfigDict(
        env_prefix="AUTHORITY_",
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    # --- identity -------------------------------------------------------------------
    issuer: str = Field(
        "",
        description="The issuer identifier (RFC 8414 §2): an https URL in production; "
        "default: http://HOST:PORT (loopback only).",
    )

    # --- storage --------------------------------------------------------------------
    data_dir: Path = Field(Path("var"), description="Where the embedded default keeps its files.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy async URL; default: a SQLite file in data_dir.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL for shared hot state; default: in-process (single instance).",
    )
    redis_prefix: str = Field("authority:", description="Key prefix for everything in Redis.")
    redis_timeout: float = Field(
        0.25,
        gt=0,
        description="Seconds before a Redis call counts as failed (fail closed). Measured on "
        "the event loop, so it includes the time a busy instance takes to read the reply.",
    )
    database_pool_size: int = Field(
        10,
        ge=1,
        le=200,
        description="PostgreSQL connections per worker for the hot path, and as many again "
        "for everything else (which opens up to as many more on demand).",
    )
    database_timeout: float = Field(
        5.0,
        gt=0,
        le=60,
        description="Seconds a request waits for the database (a connection, a statement, a "
        "commit) before it answers 503 (fail closed); the hot path's statements are bounded "
        "by it on the server too.",
    )
    used_jti_sweep_interval: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Seconds between deletions of spent JWT ids whose JWTs have expired.",
    )
    auto_migrate: bool | None = Field(
        None, description="Migrate at start-up; default: only for the embedded SQLite."
    )

    # --- secrets --------------------------------------------------------------------
    secret_key: str | None = Field(
        None,
        min_length=32,
        description="Key for HMAC of generated secrets and for key encryption at rest; "
        "default: generated once into data_dir/secret.key (mode 0600).",
    )

    # --- tokens ---------------------------------------------------------------------
    # RS256 by default: RFC 9068 §2.1 makes it the one algorithm every authorization
    # server supports, so every validator accepts it (README, "Signing algorithms").
    signing_alg: Literal["RS256", "ES256", "EdDSA"] = Field(
        "RS256", description="Algorithm of new signing keys (existing keys keep theirs)."
    )
    signing_rsa_bits: Literal[2048, 3072, 4096] = Field(
        2048, description="Modulus size of new RS256 signing keys, bits."
    )
    access_token_lifetime: int = Field(5, ge=1, le=3600, description="Default seconds.")
    access_token_max_lifetime: int = Field(60, ge=1, le=3600, description="Server cap, seconds.")
    delegation_max_lifetime: int = Field(
        30 * 24 * 3600, ge=60, description="Longest delegation an owner can grant, seconds."
    )
    delegation_max_pattern_wildcards: int = Field(
        8,
        ge=0,
        le=64,
        description="Most wildcards one resource pattern of a delegation may hold (a run of "
        "stars counts once); a pattern with more is refused when the delegation is created.",
    )
    assertion_max_lifetime: int = Field(
        60,
        ge=1,
        le=600,
        description="Seconds after its iat that an attestation or client assertion is "
        "accepted (never after its exp).",
    )
    assertion_max_keys_without_kid: int = Field(
        5,
        ge=1,
        le=10,
        description="Registered keys tried for an attestation or client assertion without "
        "kid (those whose type fits its alg); a client with more must send kid.",
    )
    clock_skew: int = Field(5, ge=0, le=120, description="Seconds of leeway for iat/nbf/exp.")
    dpop_proof_max_age: int = Field(
        60, ge=1, le=600, description="Oldest DPoP proof (by iat) accepted, seconds."
    )
    key_rotation_grace: int | None = Field(
        None,
        ge=0,
        description="Seconds a retired public key stays published; default: the longest "
        "lifetime anything it signed can have.",
    )
    key_activation_delay: int = Field(
        20,
        ge=0,
        le=86400,
        description="Seconds a new signing key is published before it signs; at least "
        "jwks_max_age + keyring_refresh_interval + clock_skew.",
    )
    keyring_refresh_interval: float = Field(
        2.0, gt=0, le=300, description="Seconds between re-reads of the signing keys from SQL."
    )
    jwks_max_age: int = Field(
        10, ge=0, le=3600, description="Cache-Control max-age of the JWKS, seconds."
    )

    # --- discovery ------------------------------------------------------------------
    service_documentation: str | None = Field(
        None, description="URL of human-readable documentation, named in the metadata."
    )

    # --- HTTP -----------------------------------------------------------------------
    max_body_bytes: int = Field(
        64 * 1024, ge=1024, le=16 * 1024 * 1024, description="Largest request body, bytes (413)."
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

    # --- policy ---------------------------------------------------------------------
    policy_file: Path | None = Field(
        None, description="Cedar policy file evaluated after the built-in checks."
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

    # --- serving --------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address `authority serve` binds.")
    port: int = Field(8400, ge=0, le=65535, description="Port `authority serve` binds.")
    workers: int = Field(
        1, ge=1, le=64, description="uvicorn worker processes (more than one needs Redis)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Server log level."
    )

    @model_validator(mode="before")
    @classmethod
    def _default_issuer(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("issuer"):
            host = data.get("host", "127.0.0.1")
            port = data.get("port", 8400)
            data = {**data, "issuer": f"http://{host}:{port}"}
        return data

    @field_validator("issuer")
    @classmethod
    def _issuer_is_url(cls, value: str) -> str:
        # RFC 8414 §2: "a URL that uses the https scheme and has no query or fragment
        # components". http is allowed for loopback development only.
        if "?" in value or "#" in value:
            raise ValueError("the issuer must have no query or fragment")
        if value.startswith("https://"):
            return value.rstrip("/")
        loopback = ("http://127.0.0.1", "http://localhost", "http://[::1]")
        if value.startswith(loopback):
            return value.rstrip("/")
        raise ValueError("the issuer must be an https URL (http only on loopback)")

    @field_validator("database_url")
    @classmethod
    def _database_is_async(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            return value
        if value.startswith(("postgresql://", "postgres://")):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite://"):
            return "sqlite+aiosqlite://" + value.split("://", 1)[1]
        raise ValueError("use a sqlite:// or postgresql:// URL")

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("use a redis://, rediss:// or unix:// URL")
        return value

    @model_validator(mode="after")
    def _lifetimes_fit(self) -> Settings:
        if self.access_token_lifetime > self.access_token_max_lifetime:
            raise ValueError("access_token_lifetime must not exceed access_token_max_lifetime")
        if self.page_size_default > self.page_size_max:
            raise ValueError("page_size_default must not exceed page_size_max")
        return self

    @model_validator(mode="after")
    def _rotation_is_safe(self) -> Settings:
        # A new key may sign only once every instance has read it from SQL (refresh
        # interval), every cached copy of the JWKS has expired (max-age) and the clocks of
        # the instances agree (skew): until then some verifier may not know its kid.
        needed = self.jwks_max_age + self.keyring_refresh_interval + self.clock_skew
        if self.key_activation_delay < needed:
            raise ValueError(
                "key_activation_delay must be at least "
                "jwks_max_age + keyring_refresh_interval + clock_skew"
            )
        return self

    # --- derived --------------------------------------------------------------------
    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url is not None:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'authority.db').as_posix()}"

    @property
    def is_embedded(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        return self.is_embedded if self.auto_migrate is None else self.auto_migrate

    @property
    def retired_key_grace(self) -> int:
        if self.key_rotation_grace is not None:
            return self.key_rotation_grace
        return max(self.access_token_max_lifetime, self.delegation_max_lifetime) + self.clock_skew

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments, then AUTHORITY_* variables, then the TOML file
        # named by AUTHORITY_CONFIG_FILE (default config/authority.toml, if present).
        config_file = Path(os.environ.get("AUTHORITY_CONFIG_FILE", DEFAULT_CONFIG_FILE))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


def load_settings(**overrides: object) -> Settings:
    """Load settings; raise ``ConfigError`` naming every bad setting."""
    from pydantic import ValidationError

    # A misspelt variable would otherwise be ignored silently and leave a default in force.
    known = {f"AUTHORITY_{name.upper()}" for name in Settings.model_fields} | {
        "AUTHORITY_CONFIG_FILE"
    }
    unknown = sorted(k for k in os.environ if k.startswith("AUTHORITY_") and k not in known)
    if unknown:
        raise ConfigError("invalid configuration: unknown setting " + ", ".join(unknown))
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(part) for part in err["loc"]) or "settings"
            if name == "config_file":
                continue
            problems.append(f"AUTHORITY_{name.upper()}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


class ConfigError(Exception):
    """Configuration that the authority refuses to start with."""
