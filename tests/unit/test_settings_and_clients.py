"""Settings and the Kafka client configurations derived from them (no broker)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from driftline.kafka import clients
from driftline.settings import Settings


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_BOOTSTRAP_SERVERS", "a:1,b:2")
    monkeypatch.setenv("DRIFTLINE_TOPIC_PREFIX", "prod.")
    monkeypatch.setenv("DRIFTLINE_SASL_PASSWORD", "s3cret")
    s = Settings()
    assert s.bootstrap_servers == "a:1,b:2"
    assert s.topic("labels") == "prod.labels"
    assert s.sasl_password_value() == "s3cret"
    assert "s3cret" not in repr(s) and "s3cret" not in str(s.model_dump())


@pytest.mark.parametrize("prefix", ["bad prefix", "a/b", "ü."])
def test_illegal_topic_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValidationError, match="topic prefix"):
        Settings(topic_prefix=prefix)


def test_every_producer_uses_the_java_compatible_partitioner() -> None:
    conf = clients.producer_config(Settings(), "scorer")
    assert conf["partitioner"] == "murmur2_random"
    assert conf["enable.idempotence"] is True
    assert conf["acks"] == "all"


@pytest.mark.parametrize(
    ("protocol", "expected"),
    [
        ("PLAINTEXT", {}),
        (
            "SASL_SSL",
            {
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": "scorer",
                "sasl.password": "pw",
                "ssl.ca.location": "/ca.pem",
                "ssl.endpoint.identification.algorithm": "https",
            },
        ),
        (
            "SASL_PLAINTEXT",
            {"sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "scorer", "sasl.password": "pw"},
        ),
    ],
)
def test_security_reaches_librdkafka(protocol: str, expected: dict[str, str]) -> None:
    s = Settings(
        security_protocol=protocol,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="scorer",
        sasl_password="pw",
        ssl_cafile="/ca.pem",
    )
    conf = clients.consumer_config(s, "trainer", "g1")
    assert conf["security.protocol"] == protocol
    for key, value in expected.items():
        assert conf[key] == value
    if protocol == "PLAINTEXT":
        assert not any(k.startswith(("sasl.", "ssl.")) for k in conf)


def test_sasl_without_username_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="DRIFTLINE_SASL_USERNAME"):
        clients.confluent_common(Settings(security_protocol="SASL_SSL"), "x")


def test_faust_gets_the_same_servers_and_credentials() -> None:
    import faust

    s = Settings(
        bootstrap_servers="h1:9092,h2:9093",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="u",
        sasl_password="pw",
    )
    assert clients.faust_broker_url(s) == "kafka://h1:9092;kafka://h2:9093"
    creds = clients.faust_credentials(s)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.username == "u"
    assert clients.faust_credentials(Settings()) is None
