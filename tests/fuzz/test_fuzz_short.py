"""The fuzz targets in CI: the whole seed corpus through every target, then a short
coverage-guided run of each (``FUZZ_SHORT_RUNS`` executions, in a subprocess) so a
regression of any parser fails the suite. ``make fuzz`` runs them for long."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.run import CORPUS
from tests.fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
SHORT_RUNS = int(os.environ.get("FUZZ_SHORT_RUNS", "2000"))


def _corpus() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*") if p.is_file())


def test_every_target_has_seeds() -> None:
    assert sorted(p.name for p in CORPUS.iterdir() if p.is_dir()) == sorted(TARGETS)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_the_whole_corpus_is_refused_cleanly_by(name: str) -> None:
    # Every seed of every target through this one: an input found for one parser
    # often reaches another.
    for seed in _corpus():
        TARGETS[name](seed.read_bytes())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_a_short_fuzzing_run_finds_nothing_in(name: str, tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    # Uninstrumented here (instrumenting takes longer than the run): mutation only.
    env = {**os.environ, "FUZZ_WORK": str(tmp_path), "FUZZ_INSTRUMENT": "0"}
    result = subprocess.run(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "tests.fuzz.run", name, f"-runs={SHORT_RUNS}", "-timeout=10"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]
