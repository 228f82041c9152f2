"""Configuration: the one module that reads the environment (``AUTHORITY_*``) or a config file.

Every limit, lifetime and skew used by the handlers is a field of ``Settings``, with its
default documented in README.md. Invalid values fail at start-up with the setting's name.

``Settings`` is one class, read once; its fields are declared by group in
``settings_storage``, ``settings_tokens``, ``settings_http``, ``settings_operations``,
``settings_recording`` and ``settings_console`` (bases of it that read nothing
themselves), so that each group's rules sit next to its fields. The rules across groups,
and where values come from, are here.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from authority.settings_console import ConsoleSettings
from authority.settings_http import HttpSettings
from authority.settings_operations import OperationsSettings
from authority.settings_recording import RecordingSettings
from authority.settings_storage import StorageSettings
from authority.settings_tokens import TokenSettings

DEFAULT_CONFIG_FILE = Path("config/authority.toml")
CONFIG_FILE_VARIABLE = "AUTHORITY_CONFIG_FILE"


class _IdentitySettings(BaseModel):
    """The issuer, the first field of ``Settings`` (a base of it, never used alone)."""

    # --- identity -------------------------------------------------------------------
    issuer: str = Field(
        "",
        description="The issuer identifier (RFC 8414 §2): an https URL in production; "
        "default: http://HOST:PORT (loopback only).",
    )

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


# pydantic lists the fields of the bases furthest in the MRO first: the groups are named
# last to first so that ``model_fields`` (and the README's table) keeps the order of a
# reader going through the settings: identity, storage, tokens, HTTP, operations,
# recording, console, serving.
class Settings(
    RecordingSettings,
    ConsoleSettings,
    OperationsSettings,
    HttpSettings,
    TokenSettings,
    StorageSettings,
    _IdentitySettings,
    BaseSettings,
):
    """All of the authority's configuration, loaded once by ``create_app``."""

    model_config = SettingsConfigDict(
        env_prefix="AUTHORITY_",
        extra="forbid",
        frozen=True,
        validate_default=True,
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
    log_format: Literal["text", "json"] = Field(
        "text", description="Server log lines: text for a terminal, or one JSON object each."
    )
    otel_exporter: Literal["none", "otlp", "console"] | None = Field(
        None,
        description="Where OpenTelemetry traces go (otlp needs authority[otel]); default: "
        "as OTEL_TRACES_EXPORTER or OTEL_EXPORTER_OTLP_ENDPOINT say, else none.",
    )

    @property
    def traces_exporter(self) -> Literal["none", "otlp", "console"]:
        """``otel_exporter``, or what OpenTelemetry's own variables ask for."""
        if self.otel_exporter is not None:
            return self.otel_exporter
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return "none"
        named = {n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",")}
        if "otlp" in named:
            return "otlp"
        if "console" in named:
            return "console"
        if "none" not in named and (
            os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        ):
            return "otlp"
        return "none"

    shutdown_grace: int = Field(
        10,
        ge=0,
        le=300,
        description="Seconds a stopping worker waits for requests in flight after SIGTERM "
        "before it cancels them (feed streams end at once).",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_issuer(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("issuer"):
            host = data.get("host", "127.0.0.1")
            port = data.get("port", 8400)
            data = {**data, "issuer": f"http://{host}:{port}"}
        return data

    @model_validator(mode="after")
    def _lifetimes_fit(self) -> Settings:
        if self.access_token_lifetime > self.access_token_max_lifetime:
            raise ValueError("access_token_lifetime must not exceed access_token_max_lifetime")
        if self.page_size_default > self.page_size_max:
            raise ValueError("page_size_default must not exceed page_size_max")
        return self

    @model_validator(mode="after")
    def _console_fits_issuer(self) -> Settings:
        # Cookies without Secure travel in clear: only for a browser on this machine.
        loopback = ("http://localhost", "http://127.0.0.1", "http://[::1]")
        if not self.console_secure_cookies and not self.issuer.startswith(loopback):
            raise ValueError("console_secure_cookies may be false only for a loopback issuer")
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
        config_file = _config_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


def _config_file() -> Path:
    named = os.environ.get(CONFIG_FILE_VARIABLE)
    return Path(named) if named else DEFAULT_CONFIG_FILE


def _config_file_keys() -> set[str]:
    """The top-level keys of the config file, so that a bad one is reported under the
    file's name for it rather than as a variable nobody set.

    A file named by ``AUTHORITY_CONFIG_FILE`` must exist: a typo in the name would
    otherwise start the authority on its defaults.
    """
    path = _config_file()
    named = bool(os.environ.get(CONFIG_FILE_VARIABLE))
    if named and not path.exists():  # /dev/null exists: it names no settings
        raise ConfigError(f"{path}: no such file (named by {CONFIG_FILE_VARIABLE})")
    if not named and not path.is_file():
        return set()
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        # The parser names a position and the rule broken (at most one character of text).
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return set(data)


def load_settings(**overrides: object) -> Settings:
    """Load settings; raise ``ConfigError`` naming every bad setting where it was set.

    Messages are pydantic's (the rule broken: a range, the allowed values), never the
    value: a secret set in the wrong place must not end up in a terminal or a log.
    """
    from pydantic import ValidationError

    # A misspelt variable would otherwise be ignored silently and leave a default in force.
    known = {f"AUTHORITY_{name.upper()}" for name in Settings.model_fields} | {
        CONFIG_FILE_VARIABLE,
        # The command line's client of a running authority (authority.cli_api).
        "AUTHORITY_URL",
        "AUTHORITY_API_KEY",
    }
    # AUTHORITY_GATEWAY_* configure ``authority gateway`` (authority.gateway.config).
    unknown = sorted(
        k
        for k in os.environ
        if k.startswith("AUTHORITY_") and k not in known and not k.startswith("AUTHORITY_GATEWAY_")
    )
    if unknown:
        raise ConfigError("invalid configuration: unknown setting " + ", ".join(unknown))
    in_file = _config_file_keys()
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            if not err["loc"]:  # a rule across settings: its message names them
                problems.append(err["msg"])
                continue
            key, name = str(err["loc"][0]), ".".join(str(part) for part in err["loc"])
            variable = f"AUTHORITY_{name.upper()}"
            # Precedence as in settings_customise_sources: arguments, variables, file.
            if key in in_file and key not in overrides and variable not in os.environ:
                message = err["msg"]
                if err["type"] == "extra_forbidden":
                    message = "unknown setting"
                    if isinstance(err["input"], dict):
                        message += " (settings are top-level keys, without [tables])"
                problems.append(f"{_config_file()}: {name}: {message}")
            else:
                problems.append(f"{variable}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


class ConfigError(Exception):
    """Configuration that the authority refuses to start with."""
