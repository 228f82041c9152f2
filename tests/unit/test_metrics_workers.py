"""Prometheus multiprocess mode for ``authority serve --workers N``: a fresh directory per
start, dead workers marked, every worker's counts summed, one worker's process series per pid."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from authority import metrics_workers
from authority.metrics_workers import MULTIPROC_VARIABLE, workers_directory


def test_one_worker_shares_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_VARIABLE, raising=False)
    with workers_directory(1) as path:
        assert path is None
        assert MULTIPROC_VARIABLE not in os.environ


def test_each_start_gets_a_fresh_directory_removed_at_the_end(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(MULTIPROC_VARIABLE, str(tmp_path))
    (tmp_path / "counter_1.db").write_bytes(b"left over by another run")
    with workers_directory(2) as first:
        assert first is not None and first.parent == tmp_path
        assert os.environ[MULTIPROC_VARIABLE] == str(first)  # what the workers inherit
        assert list(first.iterdir()) == []
    with workers_directory(2) as second:
        assert second != first
    assert first is not None and not first.exists()
    assert os.environ[MULTIPROC_VARIABLE] == str(tmp_path)


def test_a_scrape_marks_dead_workers_and_reads_the_live_ones(tmp_path: Path) -> None:
    dead = 2**22 + 12345  # above any pid_max default: no such process
    (tmp_path / f"gauge_liveall_{dead}.db").write_bytes(b"")
    (tmp_path / f"gauge_liveall_{os.getpid()}.db").write_bytes(b"")
    assert metrics_workers._live_workers(tmp_path) == [os.getpid()]
    assert not (tmp_path / f"gauge_liveall_{dead}.db").exists()
    assert (tmp_path / f"gauge_liveall_{os.getpid()}.db").exists()


def test_process_series_carry_the_pid_of_their_worker() -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("the process collector reads /proc")
    families = metrics_workers._process_families([os.getpid()])
    names = {family.name for family in families}
    assert "process_resident_memory_bytes" in names
    for family in families:
        for sample in family.samples:
            assert sample.labels["pid"] == str(os.getpid())
