"""The one Redis URL parser: every form of database, credentials and TLS means one thing to every client."""

from __future__ import annotations

import ssl

import pytest

from streamrec.errors import ConfigError
from streamrec.features.config import redis_connection_string
from streamrec.redis import RedisTarget, redact_url


@pytest.mark.parametrize(
    ("url", "db"),
    [
        ("redis://h:7000", 0),
        ("redis://h:7000/", 0),
        ("redis://h:7000/2", 2),
        ("redis://h:7000?db=2", 2),
        ("redis://h:7000/?db=2", 2),
        ("redis://h:7000/2?db=2", 2),
        ("redis://:pw@h:7000?db=5", 5),
    ],
)
def test_every_form_of_the_database_means_the_same_to_every_client(url: str, db: int) -> None:
    target = RedisTarget.from_url(url)
    assert (target.host, target.port, target.db) == ("h", 7000, db)
    assert target.redis_py_options()["db"] == db
    assert f"db={db}" in target.feast_connection_string().split(",")
    assert (("SELECT", db) in target.setup_commands()) == (db != 0)
    assert RedisTarget.from_url(target.url()) == target  # the URL form round-trips


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("http://h:6379", "scheme"),
        ("redis://:6379", "without a host"),
        ("redis://h:6379/two", "must be a number"),
        ("redis://h:6379/1?db=2", "two databases"),
        ("redis://h:6379?dbb=2", "unknown Redis URL options"),
        ("redis://h:6379?ssl_ca_certs=/ca.pem", "need a rediss://"),
        ("redis://h:port", "not a Redis URL"),
    ],
)
def test_urls_that_cannot_work_are_configuration_errors(url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RedisTarget.from_url(url)


def test_credentials_are_percent_decoded_sent_as_auth_and_never_printed() -> None:
    target = RedisTarget.from_url("redis://app%40shop:p%3Ass%2Fw@h:6379/1")
    assert (target.username, target.password) == ("app@shop", "p:ss/w")
    assert target.setup_commands() == [("AUTH", "app@shop", "p:ss/w"), ("SELECT", 1)]
    assert "p:ss/w" not in repr(target) and "p%3Ass" not in target.redacted()
    assert RedisTarget.from_url(target.url()) == target
    assert RedisTarget.from_url("redis://:only@h").setup_commands() == [("AUTH", "only")]
    with pytest.raises(ConfigError) as caught:
        RedisTarget.from_url("redis://u:secret@h:6379/x")
    assert "secret" not in str(caught.value)
    assert redact_url("redis://u:secret@h:1/0") == "redis://u:***@h:1/0"


def test_tls_options_reach_the_context_redis_py_and_feast() -> None:
    target = RedisTarget.from_url("rediss://h:6380/0?ssl_cert_reqs=none")
    context = target.ssl_context()
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_NONE
    assert target.redis_py_options()["ssl"] is True and target.redis_py_options()["ssl_cert_reqs"] == "none"
    assert "ssl=true" in target.feast_connection_string() and "ssl_cert_reqs=none" in target.feast_connection_string()
    assert RedisTarget.from_url("redis://h").ssl_context() is None


def test_feast_cannot_take_what_it_would_split_on() -> None:
    with pytest.raises(ConfigError, match="IPv6"):
        redis_connection_string("redis://[::1]:6379/0")
    with pytest.raises(ConfigError, match="','"):
        redis_connection_string("redis://:a%2Cb@h:6379/0")
    assert redis_connection_string("rediss://u:pw@h:1/3") == "h:1,db=3,username=u,password=pw,ssl=true"
