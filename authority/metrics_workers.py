"""Prometheus multiprocess mode, for ``authority serve --workers N``.

Each worker is a process of its own,
and a scrape reaches one of them, so the workers share their figures through
prometheus_client's multiprocess mode: ``authority serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory for each start (``workers_directory``),
every worker writes its values into memory-mapped files there, and the worker that
answers a scrape sums the counters and histograms of them all (``MultiProcessCollector``).
Gauges say how they combine: per worker with a ``pid`` label for the pools (``liveall``),
the largest value for the build info and the sequenced time (``max``). A worker that
stops marks itself dead (its pool gauges go; its counts stay in the totals), and a
scrape marks dead any worker whose process is gone (killed, crashed; uvicorn starts a
new one). The process collector cannot read other processes through a registry, so in
this mode the scraping worker reads ``/proc/<pid>`` of every live worker and labels the
series with ``pid``; a worker's pool gauges are written by that worker every
``metrics_sample_interval`` seconds and at each scrape it answers itself.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

from prometheus_client import CollectorRegistry, ProcessCollector, multiprocess
from prometheus_client.metrics_core import Metric

#: The environment variable prometheus_client itself reads (at import, in every worker).
MULTIPROC_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"


def shared_directory() -> Path | None:
    """The directory the workers share their figures in, or None for one process.

    Read from the variable prometheus_client itself switches on (at import, in every
    worker), not from a setting of ours: the two can then never disagree.
    """
    value = os.environ.get(MULTIPROC_VARIABLE)
    return Path(value) if value else None


@contextlib.contextmanager
def workers_directory(workers: int) -> Iterator[Path | None]:
    """For ``authority serve``: a fresh, empty directory for the workers of this start.

    The multiprocess files must not outlive the processes that wrote them (a restart
    would count the last run's requests again), so each start gets its own directory,
    inside ``PROMETHEUS_MULTIPROC_DIR`` when the operator set one (e.g. on a tmpfs),
    otherwise in the system's temporary directory; it is removed when the server stops.
    One worker needs none of this (its registry is the whole truth) unless the operator
    set the variable, which puts prometheus_client in this mode whatever we do.
    """
    parent = shared_directory()
    if workers <= 1 and parent is None:
        yield None
        return
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="authority-metrics-", dir=parent))
    previous = os.environ.get(MULTIPROC_VARIABLE)
    os.environ[MULTIPROC_VARIABLE] = str(path)  # inherited by the workers uvicorn spawns
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_VARIABLE, None)
        else:
            os.environ[MULTIPROC_VARIABLE] = previous
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _live_workers(path: Path) -> list[int]:
    """The workers with live gauges in ``path``; those whose process is gone are marked
    dead on the way (their live gauges removed; their counts stay in the totals)."""
    pids: set[int] = {os.getpid()}
    for name in glob.glob(str(path / "gauge_live*_*.db")):
        with contextlib.suppress(ValueError):
            pids.add(int(Path(name).stem.rsplit("_", 1)[1]))
    live = []
    for pid in sorted(pids):
        if _alive(pid):
            live.append(pid)
        else:
            mark_dead(pid, path)
    return live


def _process_families(pids: Iterable[int]) -> list[Metric]:
    """The process collector's series for each of ``pids``, labelled with its ``pid``."""
    merged: dict[str, Metric] = {}
    for pid in pids:
        collector = ProcessCollector(pid=lambda pid=pid: str(pid), registry=None)  # type: ignore[misc]
        for family in collector.collect():
            target = merged.setdefault(
                family.name, Metric(family.name, family.documentation, family.type)
            )
            for sample in family.samples:
                target.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
    return list(merged.values())


def mark_dead(pid: int, path: Path) -> None:
    """Remove the live gauges of a worker that has stopped (its counts stay)."""
    multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


def collect(path: Path) -> list[Metric]:
    """Every worker's series: the counters and histograms summed, the gauges as they say,
    and the process series of each live worker."""
    shared = CollectorRegistry(auto_describe=False)
    multiprocess.MultiProcessCollector(shared, path=str(path))  # type: ignore[no-untyped-call]
    return [*shared.collect(), *_process_families(_live_workers(path))]
