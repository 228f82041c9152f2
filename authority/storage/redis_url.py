"""Redis URLs: one server, a Sentinel-managed master, or a Redis Cluster.

Pure parsing, no client: ``authority.settings`` refuses a bad URL at start-up with it, and
``storage.redis_clients`` builds the clients from what it returns.

* ``redis://``, ``rediss://``, ``unix://``: one server, as redis-py reads them.
* ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]``: the
  master Sentinel names ``service`` (port 26379 by default). The user and password are
  the data nodes'; ``?sentinel_username=...&sentinel_password=...`` are the Sentinels'
  own, when they require authentication. ``rediss+sentinel://`` uses TLS for both.
* ``redis+cluster://[[user]:password@]host[:port][,host[:port]...]``: any reachable nodes
  of a Redis Cluster (port 6379 by default); the client learns the others from them. A
  cluster has database 0 only. ``rediss+cluster://`` uses TLS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote

SINGLE = ("redis://", "rediss://", "unix://")
SENTINEL = ("redis+sentinel://", "rediss+sentinel://")
CLUSTER = ("redis+cluster://", "rediss+cluster://")
#: What a sentinel URL's query may carry (the Sentinels' own credentials).
_SENTINEL_OPTIONS = frozenset({"sentinel_username", "sentinel_password"})


class BadRedisURL(ValueError):
    """The URL names no Redis deployment this authority can use (the message says why)."""


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where Redis is, and how to authenticate; ``url`` is the original, for one server."""

    kind: Literal["single", "sentinel", "cluster"]
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    tls: bool = False


def parse(url: str) -> RedisTarget:
    """The deployment ``url`` names; ``BadRedisURL`` (never echoing a password) if none."""
    if url.startswith(SINGLE):
        return RedisTarget("single", url)
    if url.startswith(SENTINEL):
        return _sentinel(url)
    if url.startswith(CLUSTER):
        return _cluster(url)
    raise BadRedisURL(
        "use a redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// URL"
    )


def _split(url: str) -> tuple[str, str | None, str | None, str, str, str]:
    """(scheme, username, password, host list, path, query) of a multi-host URL."""
    scheme, rest = url.split("://", 1)
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    return scheme, username, password, hosts, path if slash else "", query


def _nodes(hosts: str, default_port: int) -> tuple[tuple[str, int], ...]:
    nodes = []
    for item in hosts.split(","):
        if item.startswith("["):  # an IPv6 address: [::1]:26379
            host, _, port = item[1:].partition("]")
            port = port.removeprefix(":")
        else:
            host, _, port = item.partition(":")
        if not host:
            raise BadRedisURL("every host of a Redis URL needs a name or an address")
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise BadRedisURL("a Redis URL's port must be a number from 1 to 65535")
        nodes.append((host, int(port) if port else default_port))
    return tuple(nodes)


def _sentinel(url: str) -> RedisTarget:
    scheme, username, password, hosts, path, query = _split(url)
    service, _, db = path.strip("/").partition("/")
    if not service:
        raise BadRedisURL("a redis+sentinel:// URL names its service: .../service[/db]")
    if db and not db.isdigit():
        raise BadRedisURL("a redis+sentinel:// URL's database is a number: .../service/db")
    options = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    if set(options) - _SENTINEL_OPTIONS:
        raise BadRedisURL("a redis+sentinel:// URL takes sentinel_username, sentinel_password")
    return RedisTarget(
        "sentinel",
        url,
        nodes=_nodes(hosts, 26379),
        service=service,
        db=int(db or 0),
        username=username,
        password=password,
        sentinel_username=options.get("sentinel_username") or None,
        sentinel_password=options.get("sentinel_password") or None,
        tls=scheme.startswith("rediss"),
    )


def _cluster(url: str) -> RedisTarget:
    scheme, username, password, hosts, path, query = _split(url)
    if path.strip("/") not in ("", "0"):
        raise BadRedisURL("a Redis Cluster has database 0 only")
    if query:
        raise BadRedisURL("a redis+cluster:// URL takes no options")
    return RedisTarget(
        "cluster",
        url,
        nodes=_nodes(hosts, 6379),
        username=username,
        password=password,
        tls=scheme.startswith("rediss"),
    )
