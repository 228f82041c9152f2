"""The README's walk from ``make run`` to a first token, run as written; then the same
ledger verified, and the server's commands refused, on the SDK install alone.

The shell blocks of the README's "From `make run` to a first token" are run in order,
in one shell, against ``authority serve`` started on a temporary directory (its
``var/`` there, as ``make run`` makes it), with ``.venv/bin/authority`` this checkout's
command. The one change made to them is the port: the server listens on a free one
instead of 8400. Each block's output is checked against what the README says it prints.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SECTION = "### From `make run` to a first token"
MARK = "@@block@@"

pytestmark = pytest.mark.slow


@dataclass
class Block:
    kind: str  # "sh" or "text"
    text: str


def readme_blocks() -> list[Block]:
    """The fenced blocks of the quickstart section, in order."""
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.index("This walk is a test", start)
    found = re.findall(r"^```(\w+)\n(.*?)^```$", text[start:end], flags=re.M | re.S)
    return [Block(kind, body) for kind, body in found]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _environment(home: Path) -> dict[str, str]:
    """This process's environment without any AUTHORITY_* setting, with this checkout
    importable from anywhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHORITY_")}
    env["PYTHONPATH"] = str(ROOT)
    env["HOME"] = str(home)
    return env


@dataclass
class Walk:
    directory: Path
    port: int
    env: dict[str, str]


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    directory = tmp_path_factory.mktemp("quickstart")
    bin_dir = directory / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    command = bin_dir / "authority"
    command.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m authority.cli "$@"\n')
    command.chmod(0o755)
    env = _environment(directory)
    port = _free_port()
    server = subprocess.Popen(  # noqa: S603 (this checkout's own command)
        [str(command), "serve"],
        cwd=directory,
        # The CIBA poll interval down from 5 s, for the --wait test's sake only.
        env={**env, "AUTHORITY_PORT": str(port), "AUTHORITY_APPROVAL_POLL_INTERVAL": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        yield Walk(directory, port, env)
    finally:
        server.terminate()
        server.wait(timeout=30)


@dataclass
class Ran:
    stdout: list[str]  # per block
    stderr: list[str]


@pytest.fixture(scope="module")
def ran(walk: Walk) -> Ran:
    blocks = [b for b in readme_blocks() if b.kind == "sh"]
    script = ["set -e"]
    for block in blocks:
        script.append(block.text.replace("127.0.0.1:8400", f"127.0.0.1:{walk.port}"))
        script.append(f"echo {MARK}; echo {MARK} >&2")
    result = subprocess.run(  # noqa: S603 (the README's own blocks)
        ["/bin/sh", "-c", "\n".join(script)],
        cwd=walk.directory,
        env=walk.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    stdout = result.stdout.split(MARK + "\n")
    stderr = result.stderr.split(MARK + "\n")
    assert len(stdout) == len(blocks) + 1 == len(stderr)
    return Ran(stdout[:-1], stderr[:-1])


def _shown(block: Block) -> list[str]:
    """The lines a text block shows, each up to an ellipsis (the part the README elides)."""
    return [line.split("…")[0] for line in block.text.splitlines() if line.split("…")[0]]


def test_the_readme_walk_has_the_steps_it_promises() -> None:
    blocks = readme_blocks()
    kinds = [b.kind for b in blocks]
    assert kinds == ["sh", "sh", "text", "sh", "text", "sh"]
    setup = blocks[0].text
    # Key generation from the command line, never a hand-written request body.
    assert "--generate-key" in setup
    assert "curl" not in "".join(b.text for b in blocks)
    assert "-d '" not in setup


def test_every_readme_shell_variable_is_set_by_the_walk_or_its_block() -> None:
    """A block elsewhere in the README (schemathesis' ``$ADMIN``) may use what the walk
    sets; nothing the walk never sets."""
    assign = re.compile(r"^(?:export )?([A-Za-z_]\w*)=", flags=re.M)
    walk = {name for b in readme_blocks() if b.kind == "sh" for name in assign.findall(b.text)}
    text = README.read_text(encoding="utf-8")
    for body in re.findall(r"^```(?:sh|bash)\n(.*?)^```$", text, flags=re.M | re.S):
        used = set(re.findall(r"\$\{?([A-Za-z_]\w*)", body))
        assert used <= walk | set(assign.findall(body)), (used, body[:80])


def test_the_setup_makes_every_object_and_hands_over_key_and_credential(
    walk: Walk, ran: Ran
) -> None:
    # The setup block prints the ids of what it does not capture: the tool, the delegation.
    lines = ran.stdout[0].split()
    assert [line.split("_")[0] for line in lines] == ["tool", "dlg"]
    key_file = walk.directory / "agent.jwk"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    jwk = json.loads(key_file.read_text())
    assert jwk["kty"] == "OKP"
    assert jwk["d"]
    assert jwk["kid"]
    assert "created agent" in ran.stderr[0]
    assert "at autonomy level 0" in ran.stderr[0]
    assert (walk.directory / "delegation.jwt").read_text().count(".") == 2


def test_a_new_agent_waits_for_approval_as_the_readme_says(ran: Ran) -> None:
    shown = _shown(readme_blocks()[2])
    assert shown[0] in ran.stderr[1]
    assert ran.stdout[1].strip() == shown[1] == "exit status 4"


def test_after_raising_the_level_the_agent_gets_its_token(ran: Ran) -> None:
    blocks = readme_blocks()
    heading, token_prefix = _shown(blocks[4])
    assert heading in ran.stderr[2]
    lines = ran.stdout[2].splitlines()
    assert lines[0].split("\t")[-1] == "1"  # the agent, at level 1
    token = lines[-1]
    assert token.startswith(token_prefix[:10])
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    [detail] = claims["authorization_details"]
    assert (detail["tool"], detail["resource"], detail["action"]) == (
        "github.issues.create",
        "acme/web",
        "create",
    )
    assert claims["aud"] == "https://api.example"
    assert claims["exp"] - claims["iat"] == 5


def test_the_auditor_verifies_the_export(ran: Ran) -> None:
    assert "exported" in ran.stderr[3]
    assert ran.stdout[3].startswith("ok: ")


def authority(walk: Walk, *argv: str, key: str | None = None) -> str:
    """One command in the walk's directory, as the README's ``$A``; its stdout."""
    env = {**walk.env, "AUTHORITY_URL": f"http://127.0.0.1:{walk.port}"}
    if key is not None:
        env["AUTHORITY_API_KEY"] = key
    result = subprocess.run(  # noqa: S603 (this checkout's own command)
        [str(walk.directory / ".venv" / "bin" / "authority"), *argv],
        cwd=walk.directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_at_level_0_the_token_waits_for_the_owners_approval(walk: Walk, ran: Ran) -> None:
    admin = authority(walk, "admin", "bootstrap", "--force-new").strip()
    [owner] = json.loads(authority(walk, "owners", "list", "--json", key=admin))
    owner_key = authority(walk, "owners", "keys", "create", owner["id"], key=admin).strip()
    [agent] = json.loads(authority(walk, "agents", "list", "--json", key=owner_key))
    authority(walk, "agents", "autonomy", agent["id"], "0", key=owner_key)
    before = {
        a["id"] for a in json.loads(authority(walk, "approvals", "list", "--json", key=owner_key))
    }
    call = ["--tool", "github.issues.create", "--resource", "acme/web", "--action", "create"]
    waiting = subprocess.Popen(  # noqa: S603 (this checkout's own command)
        [
            str(walk.directory / ".venv" / "bin" / "authority"),
            "token",
            "--url",
            f"http://127.0.0.1:{walk.port}",
            "--agent",
            agent["id"],
            "--key",
            "agent.jwk",
            "--delegation",
            "delegation.jwt",
            *call,
            "--audience",
            "https://api.example",
            "--wait",
        ],
        cwd=walk.directory,
        env=walk.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(600):
            pending = json.loads(authority(walk, "approvals", "list", "--json", key=owner_key))
            new = [a for a in pending if a["id"] not in before]
            if new:
                break
            time.sleep(0.1)
        [approval] = new
        assert (approval["agent_id"], approval["tool"]) == (agent["id"], "github.issues.create")
        authority(walk, "approvals", "approve", approval["id"], key=owner_key)
        out, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    assert waiting.returncode == 0, err
    assert "waiting for the owner's approval" in err
    assert out.strip().count(".") == 2


def test_a_pending_call_is_resumed_by_its_auth_req_id_not_asked_again(walk: Walk, ran: Ran) -> None:
    admin = authority(walk, "admin", "bootstrap", "--force-new").strip()
    [owner] = json.loads(authority(walk, "owners", "list", "--json", key=admin))
    owner_key = authority(walk, "owners", "keys", "create", owner["id"], key=admin).strip()
    [agent] = json.loads(authority(walk, "agents", "list", "--json", key=owner_key))
    authority(walk, "agents", "autonomy", agent["id"], "0", key=owner_key)

    def pending() -> list[str]:
        listed = json.loads(authority(walk, "approvals", "list", "--json", key=owner_key))
        return [a["id"] for a in listed]

    before = set(pending())
    token = [
        str(walk.directory / ".venv" / "bin" / "authority"),
        "token",
        "--url",
        f"http://127.0.0.1:{walk.port}",
        "--agent",
        agent["id"],
        "--key",
        "agent.jwk",
        "--delegation",
        "delegation.jwt",
        "--tool",
        "github.issues.create",
        "--resource",
        "acme/web",
        "--action",
        "create",
        "--audience",
        "https://api.example",
    ]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 (this checkout's own command)
            [*token, *extra],
            cwd=walk.directory,
            env=walk.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    asked = run("--json")
    assert asked.returncode == 4, asked.stderr
    answer = json.loads(asked.stdout)
    assert set(answer) == {"auth_req_id", "expires_in", "interval"}
    # The whole id, to resume with; never "run this again", which would ask again.
    assert f"--auth-req-id {answer['auth_req_id']} " in asked.stderr
    assert "run this again" not in asked.stderr
    [approval] = [a for a in pending() if a not in before]
    authority(walk, "approvals", "approve", approval, key=owner_key)

    resumed = run("--auth-req-id", answer["auth_req_id"])
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip().count(".") == 2
    assert "token for github.issues.create on acme/web (create)" in resumed.stderr
    assert set(pending()) == before  # resuming asked the owner nothing new


# --- the SDK install: pip install authority, no [server] -------------------------------------
def sdk_install(walk: Walk, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "tests.sdk_install", *argv],
        cwd=walk.directory,
        env=walk.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_ledger_verify_needs_no_server_packages(walk: Walk, ran: Ran) -> None:
    files = ("--export", "ledger.jsonl", "--checkpoints", "checkpoints.jsonl")
    result = sdk_install(walk, "ledger", "verify", *files, "--keys", "ledger-keys.json")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ran.stdout[3]
    # Tampering is still caught there: one changed byte in one entry.
    export = walk.directory / "ledger.jsonl"
    lines = export.read_text().splitlines()
    lines[1] = lines[1].replace('"kind', '"KIND', 1)
    (walk.directory / "tampered.jsonl").write_text("\n".join(lines) + "\n")
    result = sdk_install(
        walk,
        "ledger",
        "verify",
        "--export",
        "tampered.jsonl",
        *files[2:],
        "--keys",
        "ledger-keys.json",
    )
    assert result.returncode == 1
    assert "FAILED at index 1" in result.stderr


@pytest.mark.parametrize(
    "argv",
    [["serve"], ["migrate"], ["admin", "bootstrap"], ["keys", "list"], ["demo"], ["gateway"]],
)
def test_server_commands_say_what_to_install(walk: Walk, argv: list[str]) -> None:
    result = sdk_install(walk, *argv)
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "authority[server]" in line
    assert "Traceback" not in result.stderr


def test_api_commands_work_on_the_sdk_install(walk: Walk, ran: Ran) -> None:
    assert sdk_install(walk, "--help").returncode == 0
    url = f"http://127.0.0.1:{walk.port}"
    result = sdk_install(walk, "owners", "list", "--url", url, "--api-key", "ak_wrong")
    assert result.returncode == 1
    assert "HTTP 401" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_middleware_needs_only_its_extra() -> None:
    def python(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 (our own interpreter and module)
            [sys.executable, "-m", "tests.sdk_install", *argv],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    # The agent SDK on the base install; the middleware with authority[middleware].
    assert python("-c", "import authority.sdk, authority.sdk.verifier").returncode == 0
    with_extra = python("--allow", "starlette", "-c", "import authority.sdk.middleware")
    assert with_extra.returncode == 0, with_extra.stderr
    without = python("-c", "import authority.sdk.middleware")
    assert "pip install 'authority[middleware]'" in without.stderr
