"""Settings of where state lives: the database, Redis, the data directory and the secret key.

A group of ``authority.settings.Settings``, which alone reads them; kept apart so that the
URL rules and the derived engine URL sit next to the fields they read.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from authority.storage import redis_url


class StorageSettings(BaseModel):
    """The storage fields of ``Settings`` (a base of it, never used alone)."""

    # --- storage --------------------------------------------------------------------
    data_dir: Path = Field(Path("var"), description="Where the embedded default keeps its files.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy async URL, or PostgreSQL's with several hosts "
        "(docs/high-availability.md); default: a SQLite file in data_dir.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL for shared hot state (one server, redis+sentinel:// or "
        "redis+cluster://, docs/high-availability.md); default: in-process (single instance).",
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
    exchange_group_commit: bool = Field(
        True,
        description="Write the concurrent exchange spends of a worker together: on SQLite "
        "in one transaction, on PostgreSQL in one statement (one round trip for the batch). "
        "A request cancelled once its spend is queued is still written with its batch: a "
        "call spent, no token sent.",
    )
    exchange_batch_lock_timeout: float = Field(
        0.05,
        gt=0,
        le=5,
        description="PostgreSQL: seconds a group-committed batch of exchange spends waits "
        "for a row lock (a revocation, a kill switch) before its spends are retried one by "
        "one, so that one owner's held rows stall the others' no longer than this.",
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

    @field_validator("database_url")
    @classmethod
    def _database_is_async(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("sqlite+aiosqlite://"):
            return value
        if value.startswith(("postgresql+asyncpg://", "postgresql://", "postgres://")):
            return "postgresql+asyncpg://" + hosts_in_query(value.split("://", 1)[1])
        if value.startswith("sqlite://"):
            return "sqlite+aiosqlite://" + value.split("://", 1)[1]
        raise ValueError("use a sqlite:// or postgresql:// URL")

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None:
            redis_url.parse(value)  # BadRedisURL is a ValueError: reported for this field
        return value

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


def hosts_in_query(rest: str) -> str:
    """libpq's list of hosts (``h1:p1,h2:p2/db``) in SQLAlchemy's form (``/db?host=h1:p1&...``).

    New connections try the hosts in order (``storage.postgres_connect``) and, with
    ``target_session_attrs=read-write``, keep the first that accepts writes: the primary,
    wherever a failover has put it. SQLAlchemy reads a host list only from the query, so
    the libpq form is moved there.
    """
    base, _, query = rest.partition("?")
    netloc, _, path = base.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if "," not in hosts:
        return rest
    listed = []
    for item in hosts.split(","):
        host, _, port = item.partition(":")
        if not host or "[" in item or (port and not port.isdigit()):
            raise ValueError("list several PostgreSQL hosts as name:port,name:port")
        listed.append(f"host={host}:{port or 5432}")
    query = "&".join([*listed, query] if query else listed)
    return f"{userinfo}{at}/{path}?{query}"
