"""Real authority processes (uvicorn on loopback ports) over one PostgreSQL and one Redis.

Shared by the two-process integration tests and the kill-switch bench: each process gets
its settings from the environment, as a deployment sets them, and a data directory of
its own; nothing is migrated by them (the caller's services have done that and made the
signing keys).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from authority.settings import Settings
from tests.revocation_support import free_port

ROOT = Path(__file__).resolve().parents[1]


def environment(settings: Settings, data_dir: Path, **extra: str) -> dict[str, str]:
    """One instance's settings as ``AUTHORITY_*`` variables, plus ``extra`` ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHORITY_")}
    if settings.database_url is None or settings.redis_url is None:
        raise ValueError("several instances need PostgreSQL and Redis")
    env.update(
        AUTHORITY_CONFIG_FILE=os.devnull,
        AUTHORITY_ISSUER=settings.issuer,
        AUTHORITY_DATABASE_URL=settings.database_url,
        AUTHORITY_REDIS_URL=settings.redis_url,
        AUTHORITY_REDIS_PREFIX=settings.redis_prefix,
        AUTHORITY_SECRET_KEY=settings.secret_key or "",
        AUTHORITY_DATA_DIR=str(data_dir),
        AUTHORITY_AUTO_MIGRATE="false",
        AUTHORITY_LOG_LEVEL="warning",
        **extra,
    )
    return env


@contextlib.contextmanager
def authority_processes(
    settings: Settings, data_dir: Path, count: int, *, start_within: float = 60, **extra: str
) -> Iterator[list[str]]:
    """``count`` processes, each ready (``/healthz``) before this yields their URLs."""
    urls: list[str] = []
    running: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(count):
            port = free_port()
            own_dir = data_dir / f"instance-{i + 1}"
            own_dir.mkdir()
            command = [
                sys.executable,
                "-m",
                "uvicorn",
                "authority.asgi:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ]
            running.append(
                subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                    command, env=environment(settings, own_dir, **extra), cwd=ROOT
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, running, strict=True):
            _wait_ready(url, process, time.monotonic() + start_within)
        yield urls
    finally:
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    while True:
        if process.poll() is not None:
            raise RuntimeError("an authority process exited")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError("an authority process did not start")
        time.sleep(0.1)
