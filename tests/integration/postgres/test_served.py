"""``authority serve`` as an operator runs it: metrics summed over its workers, and a stop
on SIGTERM that ends the revocation feed's streams with a ``retry:`` hint and exits
within the grace.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client import multiprocess

from authority.clock import FrozenClock
from authority.context import Services
from authority.settings import Settings
from tests.processes import ROOT, environment
from tests.revocation_support import FEED, free_port
from tests.support import World

pytestmark = pytest.mark.slow

TOKEN = "s" * 40
GRACE = 10  # the default shutdown_grace


@contextlib.contextmanager
def serve(
    settings: Settings, data_dir: Path, *, workers: int, **extra: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``python -m authority.cli serve --workers N``, ready before it yields (asked on
    ``/readyz``, so that ``/healthz`` counts only the test's own requests)."""
    port = free_port()
    env = environment(settings, data_dir, AUTHORITY_METRICS_TOKEN=TOKEN, **extra)
    command = [sys.executable, "-m", "authority.cli", "serve", "--port", str(port)]
    command += ["--host", "127.0.0.1", "--workers", str(workers)]
    process = subprocess.Popen(command, env=env, cwd=ROOT)  # noqa: S603 (our own module)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError("authority serve exited")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("authority serve did not start")
            time.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(GRACE + 5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def healthz_on_a_new_connection(url: str) -> None:
    # A client of its own per request: a new connection, which any worker may accept.
    with httpx.Client(timeout=10) as client:
        assert client.get(url + "/healthz").status_code == 200


def series(text: str, prefix: str) -> list[tuple[str, float]]:
    return [
        (line.rsplit(" ", 1)[0], float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith(prefix)
    ]


def healthz_per_worker(shared: Path) -> dict[str, float]:
    """What each worker's own counter file says it served of /healthz."""
    served: dict[str, float] = {}
    for path in shared.rglob("counter_*.db"):
        pid = path.stem.rsplit("_", 1)[1]
        for family in multiprocess.MultiProcessCollector.merge([str(path)]):  # type: ignore[no-untyped-call]
            for sample in family.samples:
                if sample.name == "authority_http_requests_total" and (
                    sample.labels.get("route") == "/healthz"
                ):
                    served[pid] = served.get(pid, 0.0) + sample.value
    return served


def test_metrics_count_the_requests_of_every_worker(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    shared = tmp_path / "prometheus"
    with serve(settings, tmp_path, workers=2, PROMETHEUS_MULTIPROC_DIR=str(shared)) as (
        url,
        _process,
    ):
        made = 0
        with ThreadPoolExecutor(8) as pool:
            # New connections until both workers have served some (the kernel picks).
            while made < 2000:
                list(pool.map(lambda _: healthz_on_a_new_connection(url), range(100)))
                made += 100
                served = healthz_per_worker(shared)
                if len([pid for pid, n in served.items() if n > 0]) >= 2:
                    break
        scrape = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert scrape.status_code == 200
        text = scrape.text
        served = healthz_per_worker(shared)
        # The directory is this start's own, under the operator's PROMETHEUS_MULTIPROC_DIR.
        assert [p.name.startswith("authority-metrics-") for p in shared.iterdir()] == [True]
    assert not any(shared.iterdir())  # removed when the server stopped

    # Both workers served, and /metrics (answered by one of them) counts every request.
    assert len([pid for pid, n in served.items() if n > 0]) == 2
    counted = series(text, 'authority_http_requests_total{method="GET",route="/healthz"')
    assert sum(value for _, value in counted) == made
    # One series per label set, summed over the workers (no pid label on counters).
    assert all("pid=" not in name for name, _ in counted)

    # Process and pool series per live worker; build info once.
    pids = {name.split('pid="')[1].split('"')[0] for name, _ in series(text, "process_cpu_")}
    assert pids == set(served)
    pool_pids = {
        name.split('pid="')[1].split('"')[0]
        for name, _ in series(text, 'authority_db_pool_size{pid="')
    }
    assert pool_pids == set(served)
    build = series(text, "authority_build_info{")
    assert len(build) == 1 and build[0][1] == 1.0


# One worker: uvicorn imports the application before it installs its signal handlers;
# several: after. The drain must begin either way.
@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_ends_feed_streams_with_a_retry_hint_and_exits_within_the_grace(
    settings: Settings, services: Services, clock: FrozenClock, tmp_path: Path, workers: int
) -> None:
    clock.advance(time.time() - clock.now())
    with serve(settings, tmp_path, workers=workers) as (url, process):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            world = await World(client, services, clock).setup()
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            lines: list[str] = []
            async with client.stream(
                "GET", FEED, auth=(world.server_id, world.server_secret)
            ) as stream:
                assert stream.status_code == 200
                reader = stream.aiter_lines()
                async for line in reader:
                    lines.append(line)
                    if line == "event: ready":
                        break
                sent = time.monotonic()
                os.kill(process.pid, signal.SIGTERM)
                async for line in reader:  # ends when the server ends the stream
                    lines.append(line)
            ended = time.monotonic() - sent
        code = process.wait(GRACE)
    # The stream ended by itself, with a retry hint and the position to resume from,
    # well before the grace would have cancelled it.
    tail = [line for line in lines if line][-2:]
    assert tail[0].startswith("retry: ")
    assert 500 <= int(tail[0].split(": ")[1]) <= 1500
    assert tail[1].startswith("id: ")
    assert ended < GRACE
    # SIGTERM ends the process (uvicorn raises it again once it has stopped).
    assert code in (0, -signal.SIGTERM)
