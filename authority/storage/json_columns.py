"""JSON documents in text columns: one canonical text per document, on every backend.

The SQL tables and the memory ``Tables`` hold the same text, so whatever reads a row
(the introspection of an agent's keys, a registry port) reads it the same way.
"""

from __future__ import annotations

from typing import Any

import orjson


def dump_json(value: Any) -> str:
    """Canonical JSON text for a JSON column (sorted keys, no whitespace)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def load_json(text: str) -> Any:
    return orjson.loads(text)
