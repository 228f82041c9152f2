"""Redis URLs (``storage.redis_url``) and how the settings refuse a bad one."""

from __future__ import annotations

import pytest

from authority.settings_storage import StorageSettings
from authority.storage.hot import one_slot
from authority.storage.redis_url import BadRedisURL, RedisTarget, parse


def test_one_server_urls_are_left_to_redis_py() -> None:
    for url in ("redis://h:6379/0", "rediss://u:p@h/1", "unix:///run/redis.sock"):
        assert parse(url) == RedisTarget("single", url)


def test_a_sentinel_url_lists_sentinels_names_its_service_and_database() -> None:
    url = (
        "rediss+sentinel://app:s%40cret@s1,s2:26380,[::1]:26381/main/2"
        "?sentinel_username=watch&sentinel_password=w"
    )
    target = parse(url)
    assert target.kind == "sentinel" and target.tls
    assert target.nodes == (("s1", 26379), ("s2", 26380), ("::1", 26381))
    assert (target.service, target.db) == ("main", 2)
    assert (target.username, target.password) == ("app", "s@cret")
    assert (target.sentinel_username, target.sentinel_password) == ("watch", "w")


def test_a_cluster_url_lists_startup_nodes() -> None:
    target = parse("redis+cluster://:pw@n1:7000,n2")
    assert target.kind == "cluster" and not target.tls
    assert target.nodes == (("n1", 7000), ("n2", 6379))
    assert (target.username, target.password) == (None, "pw")


@pytest.mark.parametrize(
    "url",
    [
        "http://h",
        "redis+sentinel://s1:26379",  # no service
        "redis+sentinel://s1/main/x",  # database not a number
        "redis+sentinel://s1/main?master=other",  # unknown option
        "redis+cluster://n1/3",  # a cluster has database 0 only
        "redis+cluster://n1:99999",
        "redis+cluster://,n2",
    ],
)
def test_bad_urls_are_refused_without_their_text(url: str) -> None:
    with pytest.raises(BadRedisURL) as refused:
        parse(url)
    assert url not in str(refused.value)


def test_the_settings_refuse_a_bad_redis_url_and_never_echo_its_password() -> None:
    with pytest.raises(ValueError, match="names its service") as refused:
        StorageSettings(redis_url="redis+sentinel://u:hunter2@s1:26379")
    # What ``settings.load_settings`` reports of a bad setting: its message only.
    messages = [error["msg"] for error in refused.value.errors()]  # type: ignore[attr-defined]
    assert messages and not any("hunter2" in message for message in messages)
    assert StorageSettings(redis_url="redis+cluster://n1:7000").redis_url


def test_keys_of_one_call_must_share_a_slot() -> None:
    one_slot(["authority:contain:{agt_1}:10", "authority:contain:{agt_1}:9"])
    with pytest.raises(ValueError, match="hash tag"):
        one_slot(["authority:rate:a", "authority:rate:b"])
