"""README's configuration table is the settings' own: every field, its default, its text."""

from __future__ import annotations

import re
from pathlib import Path

from authority.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `AUTHORITY_(\w+)` \| (.*?) \| (.*) \|$")
# Defaults computed at start-up, shown as what they resolve to.
COMPUTED = {"issuer": "`http://HOST:PORT`"}


def _rows() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in README.read_text().splitlines():
        match = ROW.match(line)
        if match:
            rows[match.group(1).lower()] = (match.group(2), match.group(3))
    return rows


def test_every_setting_is_documented_with_its_default_and_description() -> None:
    rows = _rows()
    fields = Settings.model_fields
    assert sorted(rows) == sorted(fields)
    for name, field in fields.items():
        default, description = rows[name]
        shown = COMPUTED.get(name, "—" if field.default is None else f"`{field.default}`")
        assert default == shown, name
        assert description == field.description, name
