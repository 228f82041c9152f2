"""The sample configuration file (``config/authority.toml``), written from ``Settings``.

Generated rather than kept by hand so that it cannot drift from the fields: every setting
with its description and default, commented out, grouped as the settings modules group
them. ``python -m authority.config_sample > config/authority.toml`` writes it again; a
test compares the file with this output.
"""

from __future__ import annotations

import inspect
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from authority.settings import Settings

#: Values shown for settings whose default is unset (or computed), as an operator would
#: write them. A new setting without a default needs one here (or ``examples=`` on its
#: field), or the sample cannot be written.
EXAMPLES: dict[str, object] = {
    "issuer": "https://authority.example.com",
    "database_url": "postgresql://authority@db.example.com:5432/authority",
    "redis_url": "redis://redis.example.com:6379/0",
    "auto_migrate": False,
    "secret_key": "REPLACE: 32+ random characters",
    "key_rotation_grace": 2592005,
    "service_documentation": "https://authority.example.com/docs",
    "metrics_token": "REPLACE: 32+ random characters",
    "otel_exporter": "otlp",
    "policy_file": "config/policy.cedar",
    "console_rp_id": "authority.example.com",
}

#: Settings whose example is a placeholder too short to be accepted: a sample copied
#: with them uncommented refuses to start instead of running on a published secret.
SECRETS = frozenset({"secret_key", "metrics_token"})

HEADER = """\
# The authority's configuration: every setting, with its default, commented out.
#
# Read from config/authority.toml (relative to the working directory) when it exists, or
# from the file named by AUTHORITY_CONFIG_FILE, which must then exist. Uncomment a line to
# change a setting; an AUTHORITY_<NAME> variable overrides the file. Settings are
# top-level keys (no [tables]); an unknown key or an invalid value stops start-up with the
# file's name and the key. Secrets (secret_key, metrics_token, a password in database_url
# or redis_url) are better given as variables from a secret store than written here:
# their examples below are placeholders the authority refuses.
#
# Written from the settings (authority/settings*.py) by
#   python -m authority.config_sample > config/authority.toml
"""

#: Headings of the groups declared in ``authority.settings`` itself; the other groups
#: are headed by the first line of their module's docstring.
HEADINGS = {
    "_IdentitySettings": "Identity: the issuer, the URL clients reach the authority at.",
    "Settings": "Serving: what `authority serve` binds and runs.",
}

WIDTH = 90


def _group(name: str) -> type:
    for cls in Settings.__mro__:
        if name in inspect.get_annotations(cls):
            return cls
    raise LookupError(name)  # pragma: no cover - every field is declared somewhere


def _heading(cls: type) -> str:
    if cls.__name__ in HEADINGS:
        return HEADINGS[cls.__name__]
    doc = sys.modules[cls.__module__].__doc__ or cls.__name__
    return doc.strip().splitlines()[0]


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # a TOML basic string: JSON's escapes are TOML's
    raise TypeError(f"no TOML form for {type(value).__name__}")


def example(name: str) -> object:
    """The value the sample shows for a setting: its default, else its example."""
    field = Settings.model_fields[name]
    if name in EXAMPLES:
        return EXAMPLES[name]
    if field.default is not None:
        return field.default
    if field.examples:
        return field.examples[0]
    raise LookupError(
        f"setting {name} has no default: give it an example in authority/config_sample.py"
    )


def render() -> str:
    """The sample file's text."""
    lines = [HEADER]
    group: Any = None
    for name, field in Settings.model_fields.items():
        cls = _group(name)
        if cls is not group:
            group = cls
            lines += [f"# --- {_heading(cls)}", ""]
        description = field.description or name
        if field.default is None and "default" not in description:
            description += " Unset by default."
        if name in SECRETS:
            description += f" Better from AUTHORITY_{name.upper()}."
        lines += textwrap.wrap(description, WIDTH - 2, initial_indent="# ", subsequent_indent="# ")
        lines += [f"# {name} = {_toml(example(name))}", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
