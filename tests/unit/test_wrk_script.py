"""scripts/wrk.sh: `make bench` gets its load generator from Debian, or says how to.

Run with a PATH of stand-ins (``id``, ``apt-get``, ``wrk``), so that nothing is installed
and the user the script sees is chosen by the test.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "wrk.sh"
BASH = shutil.which("bash") or "/bin/bash"


def _stand_in(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def _run(folder: Path, *, uid: int) -> subprocess.CompletedProcess[str]:
    _stand_in(folder, "id", f"echo {uid}\n")
    head = shutil.which("head")
    assert head is not None
    (folder / "head").symlink_to(head)
    return subprocess.run(  # noqa: S603 (the project's own script)
        [BASH, str(SCRIPT)],
        env={"PATH": str(folder)},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    chmod = shutil.which("chmod")
    assert chmod is not None
    # apt-get records what it was asked; "install" puts a wrk in place.
    _stand_in(
        folder,
        "apt-get",
        f'echo "$@" >> {tmp_path}/apt.log\n'
        f'case "$*" in *install*) printf \'#!/bin/sh\\necho "wrk 4.1.0"\\nexit 1\\n\' '
        f"> {folder}/wrk; {chmod} 755 {folder}/wrk;; esac\n",
    )
    return folder


def test_without_wrk_and_not_root_it_says_what_to_run(bin_dir: Path) -> None:
    done = _run(bin_dir, uid=1000)
    assert done.returncode == 1
    assert done.stderr == "wrk is missing: run 'apt-get install -y wrk' as root\n"
    assert not (bin_dir.parent / "apt.log").exists()


def test_without_wrk_as_root_it_installs_debians_package(bin_dir: Path) -> None:
    done = _run(bin_dir, uid=0)
    assert done.returncode == 0, done.stderr
    calls = (bin_dir.parent / "apt.log").read_text().splitlines()
    assert calls == ["update -qq", "install -y -qq --no-install-recommends wrk"]
    assert done.stderr == "installing wrk\nwrk 4.1.0\n"


def test_with_wrk_it_installs_nothing(bin_dir: Path) -> None:
    _stand_in(bin_dir, "wrk", 'echo "wrk 4.1.0"\nexit 1\n')
    done = _run(bin_dir, uid=1000)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "wrk 4.1.0\n"
    assert not (bin_dir.parent / "apt.log").exists()
