"""Redis deployments of the tests' own on loopback ports: a Sentinel-watched master with a
replica, and a three-node Redis Cluster, from the machine's ``redis-server`` (Debian's;
``make services`` installs it). Each runs in a temporary directory and is stopped at the
end of the scope that asked for it.

``redis-server --sentinel`` is Sentinel: the same binary, so no other package is needed.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.revocation_support import free_port

SERVICE = "authority-test"


def _binary(name: str = "redis-server") -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run 'make services' (as root) first")
    return found


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            if condition():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.05)


@dataclass
class Servers:
    """``redis-server`` processes of one deployment, stopped together."""

    root: Path
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    commands: dict[int, list[str]] = field(default_factory=dict)

    def start(self, port: int, *args: str, config: str | None = None) -> None:
        home = self.root / str(port)
        home.mkdir()
        command = [_binary()]
        if config is not None:  # Sentinel rewrites its configuration file: give it one
            (home / "redis.conf").write_text(config)
            command.append(str(home / "redis.conf"))
        command += ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(home)]
        command += ["--save", "", "--appendonly", "no", "--logfile", str(home / "log")]
        self.commands[port] = [*command, *args]
        self.restart(port)

    def restart(self, port: int) -> None:
        """Start the server on ``port`` again, as it was first started."""
        self.processes[port] = subprocess.Popen(self.commands[port])  # noqa: S603 (our own)
        wait_for(lambda: bool(ask(port, "PING")), f"port {port}")

    def stop(self, port: int) -> None:
        process = self.processes.pop(port)
        process.terminate()
        process.wait(10)

    def stop_all(self) -> None:
        for port in list(self.processes):
            self.stop(port)


def ask(port: int, *command: str | int) -> Any:
    """One command to the server on ``port``, on a connection closed right after."""
    with redis.Redis(port=port, socket_timeout=2, decode_responses=True) as connection:
        return connection.execute_command(*command)


def info(port: int, section: str) -> dict[str, Any]:
    with redis.Redis(port=port, socket_timeout=2, decode_responses=True) as connection:
        return dict(connection.info(section))


def role(port: int) -> str:
    return str(ask(port, "ROLE")[0])


@dataclass
class SentinelDeployment:
    """A master and its replica, watched by one Sentinel (quorum 1)."""

    servers: Servers
    sentinel: int
    master: int
    replica: int

    def url(self) -> str:
        # A Sentinel that is down is listed first: the client must skip it.
        return f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{self.sentinel}/{SERVICE}/0"

    def master_port(self) -> int:
        _, port = ask(self.sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return int(port)

    def fail_over(self) -> int:
        """``SENTINEL FAILOVER``: the replica becomes the master; its port."""
        old = self.master_port()
        ask(self.sentinel, "SENTINEL", "FAILOVER", SERVICE)
        wait_for(lambda: self.master_port() != old, "the Sentinel to name a new master")
        new = self.master_port()
        wait_for(lambda: role(new) == "master", "the new master")
        # The failover ends when the old master has been made a replica of the new one:
        # until then it still takes writes from the connections it has.
        wait_for(lambda: role(old) == "slave", "the old master to become a replica")
        return new


@contextlib.contextmanager
def sentinel_deployment(root: Path) -> Iterator[SentinelDeployment]:
    servers = Servers(root)
    master, replica, sentinel = free_port(), free_port(), free_port()
    try:
        servers.start(master)
        servers.start(replica, "--replicaof", "127.0.0.1", str(master))
        wait_for(
            lambda: info(replica, "replication").get("master_link_status") == "up",
            "the replica to sync",
        )
        servers.start(
            sentinel,
            "--sentinel",
            config=(
                f"sentinel monitor {SERVICE} 127.0.0.1 {master} 1\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 3000\n"
            ),
        )
        wait_for(
            lambda: _replica_seen(sentinel, replica),
            "the Sentinel to see the replica",
        )
        yield SentinelDeployment(servers, sentinel, master, replica)
    finally:
        servers.stop_all()


@dataclass
class ClusterDeployment:
    """Three masters (no replicas), each owning a third of the slots."""

    servers: Servers
    ports: tuple[int, ...]

    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:2])

    def owner(self, slot: int) -> int:
        for start, end, (_, port, *_rest), *_ in ask(self.ports[0], "CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(port)
        raise LookupError(slot)

    def move(self, slot: int, to_port: int) -> None:
        """Give an empty ``slot`` to ``to_port``'s node, on every node (CLUSTER SETSLOT)."""
        target = ask(to_port, "CLUSTER", "MYID")
        for port in self.ports:
            ask(port, "CLUSTER", "SETSLOT", slot, "NODE", target)
        wait_for(lambda: all(self._owner_seen(p, slot) == to_port for p in self.ports), "the move")

    def _owner_seen(self, port: int, slot: int) -> int | None:
        for start, end, (_, owner, *_rest), *_ in ask(port, "CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return int(owner)
        return None


@contextlib.contextmanager
def cluster_deployment(root: Path) -> Iterator[ClusterDeployment]:
    servers = Servers(root)
    ports = tuple(free_port() for _ in range(3))
    try:
        for port in ports:
            servers.start(
                port,
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                str(free_port()),
                "--cluster-config-file",
                str(root / f"nodes-{port}.conf"),
                "--cluster-node-timeout",
                "2000",
            )
        nodes = [f"127.0.0.1:{p}" for p in ports]
        subprocess.run(  # noqa: S603 (the machine's redis-cli, on our own ports)
            [_binary("redis-cli"), "--cluster", "create", *nodes, "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_for(
            lambda: (
                all(info(p, "cluster").get("cluster_enabled") == 1 for p in ports)
                and all(cluster_ok(p) for p in ports)
            ),
            "the cluster to be ready",
        )
        yield ClusterDeployment(servers, ports)
    finally:
        servers.stop_all()


def _replica_seen(sentinel: int, replica: int) -> bool:
    """The Sentinel is connected to the replica and has its INFO: it can promote it."""
    with redis.Redis(port=sentinel, socket_timeout=2, decode_responses=True) as connection:
        return any(
            r["port"] == replica
            and not r["is_disconnected"]
            and not r["is_sdown"]
            and r["master-link-status"] == "ok"
            for r in connection.sentinel_slaves(SERVICE)
        )


def cluster_ok(port: int) -> bool:
    with redis.Redis(port=port, socket_timeout=2, decode_responses=True) as connection:
        return bool(connection.cluster("info")["cluster_state"] == "ok")


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelDeployment]:
    """One Sentinel deployment for the session's tests that do not fail it over."""
    with sentinel_deployment(tmp_path_factory.mktemp("sentinel")) as deployment:
        yield deployment


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterDeployment]:
    with cluster_deployment(tmp_path_factory.mktemp("cluster")) as deployment:
        yield deployment
