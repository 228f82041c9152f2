"""Run the ``authority`` command as on ``pip install authority``: the SDK alone.

    python -m tests.sdk_install [--allow PACKAGE ...] ARGS...

Before anything of ``authority`` is imported, every top-level package of the ``server``
and ``mcp`` extras (read from pyproject.toml) that the base dependencies do not also
bring is made unimportable, by a finder first on ``sys.meta_path``: importing one raises
``ModuleNotFoundError`` exactly as on a machine where it was never installed. ``--allow``
lets one through (``starlette`` for the ``middleware`` extra). With ``-c CODE`` the code
runs instead of the command.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import re
import sys
import tomllib
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from types import ModuleType

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _names(requirements: Sequence[str]) -> set[str]:
    """Distribution names, normalised (PEP 503), without versions, extras or markers."""
    return {
        re.sub(r"[-_.]+", "-", re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0]).lower()
        for r in requirements
    }


def _closure(names: set[str]) -> set[str]:
    """``names`` and everything they require when installed without extras."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo.extend(_names([r for r in requirements if "extra ==" not in r]))
    return seen


def server_only_packages() -> set[str]:
    """Top-level import names of the server's (and MCP's) distributions that the SDK's
    own dependencies, and theirs, do not bring."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    extras = project["optional-dependencies"]
    base = _closure(_names(project["dependencies"]))
    server = (_names(extras["server"]) | _names(extras["mcp"])) - base
    blocked = set()
    for module, distributions in metadata.packages_distributions().items():
        if _names(distributions) & server:
            blocked.add(module)
    return {m for m in blocked if m.isidentifier()}


class Uninstalled(importlib.abc.MetaPathFinder):
    def __init__(self, packages: set[str]) -> None:
        self.packages = packages

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] in self.packages:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def main(argv: list[str]) -> int:
    allowed = set()
    while argv[:1] == ["--allow"]:
        allowed.add(argv[1])
        argv = argv[2:]
    blocked = server_only_packages() - allowed
    assert {"starlette", "sqlalchemy", "pydantic_settings", "uvicorn"} <= blocked | allowed
    sys.meta_path.insert(0, Uninstalled(blocked))
    if argv[:1] == ["-c"]:
        exec(compile(argv[1], "<sdk-install>", "exec"), {"__name__": "__main__"})  # noqa: S102
        return 0
    from authority.cli import main as authority

    return authority(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
