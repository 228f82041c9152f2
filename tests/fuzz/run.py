"""Run one fuzz target under atheris (libFuzzer): ``python -m tests.fuzz.run TARGET [args]``.

The seed corpus ``tests/fuzz/corpus/TARGET`` is read but never written: new inputs go to
a scratch directory (``FUZZ_WORK``, default a temporary one). A crash writes its input
as ``crash-*`` in the current directory; add it to the seed corpus once it is fixed.
Extra arguments go to libFuzzer (``-max_total_time=600``, ``-runs=N``, ``-timeout=5``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

CORPUS = Path(__file__).parent / "corpus"


def main() -> None:
    name, *extra = sys.argv[1:]
    from tests.fuzz import targets

    target = targets.TARGETS[name]
    if os.environ.get("FUZZ_INSTRUMENT", "1") == "1":
        # Coverage guidance; instrumenting every loaded module takes a while at start.
        atheris.instrument_all()
    work = os.environ.get("FUZZ_WORK") or tempfile.mkdtemp(prefix=f"fuzz-{name}-")
    seeds = CORPUS / name
    args = [sys.argv[0], *extra, work, *([str(seeds)] if seeds.is_dir() else [])]
    atheris.Setup(args, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
