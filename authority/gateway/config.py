"""The gateway's configuration: a TOML or YAML file plus ``AUTHORITY_GATEWAY_*`` variables.

The file (``AUTHORITY_GATEWAY_CONFIG_FILE``, default ``config/gateway.toml``; ``.yaml`` and
``.yml`` are read as YAML) holds the upstreams, their routes and tool maps; variables
override the top-level scalars (``AUTHORITY_GATEWAY_PORT``, ``AUTHORITY_GATEWAY_ISSUER``...).
Secrets are never written in it: each is a reference, ``{env = "NAME"}`` or
``{file = "/run/secrets/name"}``, read when the gateway starts and kept as ``SecretStr``
(its ``repr`` is ``**********``, so no log or error message shows it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

DEFAULT_CONFIG_FILE = Path("config/gateway.toml")
CONFIG_FILE_VARIABLE = "AUTHORITY_GATEWAY_CONFIG_FILE"
#: The URL path under which each upstream is mounted: ``/u/<name>``.
MOUNT = "/u/"
NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
#: The action of an MCP upstream's session tool.
SESSION_ACTION = "connect"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Strict):
    """Where a secret is: an environment variable or a file (its content, stripped).

    ``value`` exists for programs that build the configuration in code (tests, the demo);
    a configuration file names ``env`` or ``file``.
    """

    env: str | None = None
    file: Path | None = None
    value: SecretStr | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if sum(x is not None for x in (self.env, self.file, self.value)) != 1:
            raise ValueError("a secret is exactly one of env, file or value")
        return self

    def read(self) -> SecretStr:
        """The secret now; ``ValueError`` naming the reference (never the value) if absent."""
        if self.value is not None:
            return self.value
        if self.env is not None:
            found = os.environ.get(self.env)
            if not found:
                raise ValueError(f"the environment variable {self.env} is not set")
            return SecretStr(found)
        assert self.file is not None
        try:
            text = self.file.read_text().strip()
        except OSError:
            raise ValueError(f"the secret file {self.file} cannot be read") from None
        if not text:
            raise ValueError(f"the secret file {self.file} is empty")
        return SecretStr(text)


class Credential(_Strict):
    """What the gateway adds to every request it forwards upstream (agents never see it).

    ``header``: ``name: secret``; ``bearer``: ``Authorization: Bearer secret``; ``basic``:
    ``username`` and the secret as password; ``oauth2``: an OAuth 2.0 client-credentials
    grant (RFC 6749 §4.4) at the upstream's own ``token_url`` with ``client_id`` and the
    secret, the access token cached until shortly before it expires.
    """

    type: Literal["none", "header", "bearer", "basic", "oauth2"] = "none"
    name: str = "Authorization"  # the header, for ``header``
    secret: SecretRef | None = None
    username: str | None = None
    client_id: str | None = None
    token_url: str | None = None
    scope: str | None = None
    #: RFC 8707 resource indicator to ask the upstream's token endpoint for.
    resource: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> Credential:
        if self.type != "none" and self.secret is None:
            raise ValueError(f"a {self.type} credential needs a secret")
        if self.type == "basic" and not self.username:
            raise ValueError("a basic credential needs a username")
        if self.type == "oauth2" and not (self.client_id and self.token_url):
            raise ValueError("an oauth2 credential needs client_id and token_url")
        return self


class HttpRoute(_Strict):
    """One call of an HTTP upstream: ``method path`` (a template, ``/repos/{org}/{repo}``,
    relative to the upstream's mount) is the tool ``tool`` on ``resource`` (a template over
    the path parameters) with ``action``."""

    method: str
    path: str
    tool: str
    action: str
    resource: str
    introspect: bool = False
    #: The request's JSON body is the call's arguments: the token's ``arguments_digest``
    #: must be its RFC 8785 digest (the body is then read whole, within
    #: ``max_message_bytes``, before it is forwarded).
    bind_arguments: bool = False
    #: Forward the request's query string. Off by default: the token names the path's
    #: tool, resource and action (and, with ``bind_arguments``, the body), never the
    #: query, so a query an upstream reads as arguments must not pass unchecked. Allow it
    #: only on routes whose upstream reads nothing from it that the token should bind.
    allow_query: bool = False

    @model_validator(mode="after")
    def _query_is_not_bound(self) -> HttpRoute:
        if self.allow_query and self.bind_arguments:
            raise ValueError("a route that binds its arguments cannot also forward a query")
        return self

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("a route path starts with /")
        return value


class McpCall(_Strict):
    """What one MCP tool (prompt, resource) is at the authority: ``tool`` on ``resource``
    (a template over the call's arguments, ``"{repo}"``) with ``action``."""

    tool: str
    action: str
    resource: str
    introspect: bool = False


class Upstream(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    kind: Literal["http", "mcp"]
    #: The upstream's base URL (HTTP) or its MCP endpoint (Streamable HTTP).
    url: str
    #: This upstream's registration at the authority (a resource server whose audience
    #: is ``<public_url>/u/<name>``): for the revocation feed and introspection.
    client_id: str
    client_secret: SecretRef
    credential: Credential = Credential()
    routes: tuple[HttpRoute, ...] = ()
    tools: dict[str, McpCall] = Field(default_factory=dict)
    prompts: dict[str, McpCall] = Field(default_factory=dict)
    resources: dict[str, McpCall] = Field(default_factory=dict)
    #: The reserved tool whose ``connect`` token authorises the session-level methods of
    #: an MCP upstream (discovery, lists, ping, the stream); default ``mcp.session.<name>``.
    session_tool: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("an upstream URL is http or https")
        return value.rstrip("/") if value.count("/") > 2 else value

    @model_validator(mode="after")
    def _fits_kind(self) -> Upstream:
        if self.kind == "http" and (self.tools or self.prompts or self.resources):
            raise ValueError("an http upstream has routes, not tools, prompts or resources")
        if self.kind == "mcp" and self.routes:
            raise ValueError("an mcp upstream has tools, prompts and resources, not routes")
        return self

    @property
    def session(self) -> str:
        return self.session_tool or f"mcp.session.{self.name}"

    @property
    def mount(self) -> str:
        return MOUNT + self.name


class GatewaySettings(BaseSettings):
    """All of the gateway's configuration, read once at start."""

    model_config = SettingsConfigDict(
        env_prefix="AUTHORITY_GATEWAY_", extra="forbid", frozen=True, validate_default=True
    )

    issuer: str = Field(description="The authority's issuer URL.")
    public_url: str = Field(
        description="The gateway's own URL as agents reach it; each upstream's audience is "
        "<public_url>/u/<name>."
    )
    host: str = "127.0.0.1"
    port: int = Field(8500, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines: text for a terminal, or one JSON object each."
    )
    upstreams: tuple[Upstream, ...] = ()
    leeway: int = Field(5, ge=0, le=60, description="Clock skew allowed on token times.")
    feed_max_silence: float = Field(
        30.0,
        gt=0,
        description="Seconds without a feed event or heartbeat before tokens are "
        "introspected instead.",
    )
    authority_timeout: float = Field(5.0, gt=0, description="Seconds for a call to the authority.")
    upstream_timeout: float = Field(
        30.0, gt=0, description="Seconds to connect and write upstream."
    )
    upstream_read_timeout: float = Field(
        300.0, gt=0, description="Seconds between two reads of an upstream's answer (streams)."
    )
    max_message_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Largest JSON-RPC message, SSE event or bound HTTP body read whole.",
    )
    record_head_bytes: int = Field(4096, ge=0, description="Bytes of each body kept in a record.")
    #: The key that binds handshake-era MCP session ids to a delegation; the same on
    #: every instance that may see the same sessions (default: one per process).
    session_key: SecretRef | None = None
    #: Configuration of the masking policy, the command rules and the recorder; read by
    #: ``authority.gateway.wiring.build_gateway``.
    masking: dict[str, Any] | None = None
    blocking: dict[str, Any] | None = None
    recording: dict[str, Any] | None = None

    @field_validator("issuer", "public_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")) or "?" in value or "#" in value:
            raise ValueError("an http(s) URL without query or fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _unique(self) -> GatewaySettings:
        names = [u.name for u in self.upstreams]
        if len(names) != len(set(names)):
            raise ValueError("two upstreams have the same name")
        return self

    def audience(self, upstream: Upstream) -> str:
        return self.public_url + upstream.mount

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments, then AUTHORITY_GATEWAY_* variables, then the file.
        path = Path(os.environ.get(CONFIG_FILE_VARIABLE, DEFAULT_CONFIG_FILE))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path.is_file():
            if path.suffix in (".yaml", ".yml"):
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
            else:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


class GatewayConfigError(Exception):
    """A configuration the gateway refuses to start with."""


def load_gateway_settings(**overrides: Any) -> GatewaySettings:
    """Read the configuration; ``GatewayConfigError`` naming every bad setting."""
    from pydantic import ValidationError

    known = {f"AUTHORITY_GATEWAY_{n.upper()}" for n in GatewaySettings.model_fields}
    known.add(CONFIG_FILE_VARIABLE)
    unknown = sorted(k for k in os.environ if k.startswith("AUTHORITY_GATEWAY_") and k not in known)
    if unknown:
        raise GatewayConfigError("unknown setting " + ", ".join(unknown))
    try:
        return GatewaySettings(**overrides)
    except ValidationError as exc:
        problems = [
            ".".join(str(p) for p in err["loc"]) + ": " + err["msg"] for err in exc.errors()
        ]
        raise GatewayConfigError("invalid configuration: " + "; ".join(problems)) from None
