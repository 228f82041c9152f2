"""docs/cli.md's table of commands against the parser: every option of a command is in
its rows, and an option the command requires is shown there unbracketed at least once."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from authority.cli import build_parser

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
#: Taken by every command that talks to an authority (the doc's "Where, and as whom").
COMMON = {"--url", "--api-key", "--api-key-file", "--json", "--help", "--data-dir"}


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[Any]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found = []
            for name, child in action.choices.items():
                found.extend(_leaves(child, (*path, name)))
            return found
    return [(path, parser)]


def _rows(group: str) -> str:
    """The first cells of the table's rows that name commands of ``group``."""
    cells = [
        line.split(" | ")[0]
        for line in DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("| `")
    ]
    return "\n".join(cell for cell in cells if re.search(rf"`{re.escape(group)}\b", cell))


def test_every_option_is_in_its_commands_rows() -> None:
    missing = []
    for path, parser in _leaves(build_parser()):
        rows = _rows(path[0])
        for action in parser._actions:
            for option in action.option_strings:
                if not option.startswith("--") or option in COMMON:
                    continue
                shown = re.findall(rf"(\[?){re.escape(option)}(?![\w-])", rows)
                if not shown:
                    missing.append((path, option))
                elif action.required and all(bracket for bracket in shown):
                    missing.append((path, f"{option} (required, shown as optional)"))
    assert missing == []
