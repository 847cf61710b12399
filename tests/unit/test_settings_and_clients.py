"""Settings and the Kafka client configurations derived from them (no broker)."""

from __future__ import annotations

import logging

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


def test_librdkafka_lines_go_to_logging_and_fresh_broker_retries_to_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The chatter of a fresh broker (seen from `driftline models bootstrap` and the
    worker): one INFO line, then DEBUG; any other line keeps its level."""
    sink = clients.LibrdkafkaLog(logging.getLogger("test.librdkafka"))
    assert clients.producer_config(Settings(), "x")["logger"] is clients.LIBRDKAFKA_LOG
    getpid = (
        "GETPID [driftline-cli#producer-3] [thrd:main]: Failed to acquire idempotence PID "
        "from broker 127.0.0.1:40883/1: Broker: Coordinator load in progress: retrying"
    )
    with caplog.at_level(logging.DEBUG, logger="test.librdkafka"):
        for _ in range(3):
            sink.log(logging.WARNING, "%s", getpid)
        sink.log(logging.ERROR, "%s [%s] %s", "FAIL", "p#producer-1", "Connect failed")
    got = [(r.levelname, r.getMessage()[:40]) for r in caplog.records]
    assert got == [
        ("INFO", "the broker's coordinator is still loadin"),
        ("DEBUG", getpid[:40]),
        ("DEBUG", getpid[:40]),
        ("DEBUG", getpid[:40]),
        ("ERROR", "FAIL [p#producer-1] Connect failed"),
    ]
