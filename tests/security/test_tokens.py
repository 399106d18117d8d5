"""Token configuration and matching, and Kafka security settings, as pure functions."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from streamrec.config import CoreSettings, confluent_security
from streamrec.errors import ConfigError
from streamrec.security import parse_tokens, scopes_of


def test_tokens_are_kept_as_digests_and_matched_with_their_scopes() -> None:
    tokens = parse_tokens(SecretStr('{"shop-token": ["recommend"], "worker-token": ["score", "admin"]}'))
    assert "shop-token" not in repr(tokens)
    assert scopes_of("Bearer shop-token", tokens) == {"recommend"}
    assert scopes_of("Bearer worker-token", tokens) == {"score", "admin"}
    assert scopes_of("Bearer nope", tokens) is None and scopes_of(None, tokens) is None
    assert scopes_of("shop-token", tokens) is None  # not a bearer header
    assert parse_tokens(None) == {} and parse_tokens(SecretStr("  ")) == {}


@pytest.mark.parametrize("spec", ['{"t": ["root"]}', '["t"]', "{not json", '{"": ["admin"]}'])
def test_bad_token_configuration_is_a_clear_error_without_the_secret(spec: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_tokens(SecretStr(spec))
    assert '"t"' not in str(info.value)


def test_kafka_sasl_settings_pass_through_and_stay_secret() -> None:
    core = CoreSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password=SecretStr("hunter2"),
    )
    config = confluent_security(core)
    assert config == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc",
        "sasl.password": "hunter2",
    }
    assert "hunter2" not in repr(core) and "hunter2" not in str(core.model_dump())
    assert confluent_security(CoreSettings()) == {"security.protocol": "PLAINTEXT"}


def test_the_redis_url_is_a_secret() -> None:
    core = CoreSettings(redis_url=SecretStr("redis://:s3cret@redis:6379/0"))
    assert "s3cret" not in repr(core) and core.redis_url.get_secret_value().endswith("@redis:6379/0")
