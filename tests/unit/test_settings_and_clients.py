"""Settings and the Kafka client configurations derived from them (no broker)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from driftline import broker
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


GROUPS = [
    # (topic prefix, client id, role, group): the default prefix keeps the names used
    # before groups followed the prefix, whatever the client id
    ("driftline.", "driftline", "trainer", "driftline-trainer"),
    ("driftline.", "driftline", "worker", "driftline-worker"),
    ("driftline.", "driftline", "registry", "driftline-registry"),
    ("driftline.", "other-client", "trainer", "driftline-trainer"),
    ("staging.", "driftline", "trainer", "staging-trainer"),
    ("prod.eu.", "driftline", "worker", "prod-eu-worker"),
    ("t_1-", "driftline", "trainer", "t_1-trainer"),
]


@pytest.mark.parametrize(("prefix", "client_id", "role", "group"), GROUPS)
def test_groups_derive_from_the_topic_prefix(
    prefix: str, client_id: str, role: str, group: str
) -> None:
    assert Settings(topic_prefix=prefix, client_id=client_id).group(role) == group


def test_two_prefixes_share_no_group() -> None:
    roles = ["worker", "worker-scorer", "worker-join", "trainer", "registry", "outcomes"]
    a, b = Settings(topic_prefix="staging."), Settings(topic_prefix="prod.")
    assert not {a.group(r) for r in roles} & {b.group(r) for r in roles}


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
    txn = (  # the worker's join producer on the same fresh broker
        "GETPID [driftline-join#producer-7] [thrd:main]: Failed to acquire transactional PID "
        "from broker TxnCoordinator/1: Broker: Not coordinator: retrying"
    )
    with caplog.at_level(logging.DEBUG, logger="test.librdkafka"):
        for _ in range(3):
            sink.log(logging.WARNING, "%s", getpid)
        sink.log(logging.WARNING, "%s", txn)
        sink.log(logging.ERROR, "%s [%s] %s", "FAIL", "p#producer-1", "Connect failed")
    got = [(r.levelname, r.getMessage()[:40]) for r in caplog.records]
    assert got == [
        ("INFO", "the broker's coordinator is still loadin"),
        ("DEBUG", getpid[:40]),
        ("DEBUG", getpid[:40]),
        ("DEBUG", getpid[:40]),
        ("DEBUG", txn[:40]),
        ("ERROR", "FAIL [p#producer-1] Connect failed"),
    ]


def test_one_rule_for_the_broker_every_command_uses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """DRIFTLINE_BOOTSTRAP_SERVERS when set; else a local broker running in the broker
    directory; else the default. The directory is outside the checkout by default."""
    monkeypatch.delenv("DRIFTLINE_BROKER_DIR", raising=False)
    monkeypatch.delenv("DRIFTLINE_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert broker.directory(Settings()) == tmp_path / "xdg" / "driftline" / "broker"
    local = tmp_path / "local"
    monkeypatch.setenv("DRIFTLINE_BROKER_DIR", str(local))
    assert broker.directory(Settings()) == local
    s, why = broker.resolve(Settings())
    assert (s.bootstrap_servers, why.startswith("the default")) == ("127.0.0.1:9092", True)

    local.mkdir()
    (local / "broker.port").write_text("49999\n")
    (local / "broker.pid").write_text(f"{os.getpid()}\n")  # alive, but not a Kafka broker
    assert broker.running(local) is None
    looks_like_one = [sys.executable, "-c", "import time; time.sleep(30)", "kafka.Kafka"]
    java = subprocess.Popen(looks_like_one)
    try:
        (local / "broker.pid").write_text(f"{java.pid}\n")
        cmdline = Path(f"/proc/{java.pid}/cmdline")
        for _ in range(500):  # until the child runs
            if b"kafka.Kafka" in cmdline.read_bytes():
                break
            time.sleep(0.01)
        assert broker.running(local) == "127.0.0.1:49999"
        s, why = broker.resolve(Settings())
        assert (s.bootstrap_servers, why) == ("127.0.0.1:49999", f"the local broker in {local}")
        monkeypatch.setenv("DRIFTLINE_BOOTSTRAP_SERVERS", "kafka-1:9092")
        s, why = broker.resolve(Settings())
        assert (s.bootstrap_servers, why) == ("kafka-1:9092", "DRIFTLINE_BOOTSTRAP_SERVERS")
    finally:
        java.kill()
        java.wait()
    monkeypatch.delenv("DRIFTLINE_BOOTSTRAP_SERVERS")
    assert broker.resolve(Settings())[0].bootstrap_servers == "127.0.0.1:9092"  # it stopped


def test_java_properties_carry_the_same_security(tmp_path: Path) -> None:
    assert clients.java_properties(Settings()) == {}
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\nBBB\n-----END PRIVATE KEY-----\n")
    s = Settings(security_protocol="SSL", ssl_cafile=tmp_path / "ca.pem", ssl_certfile=cert,
                 ssl_keyfile=key, ssl_key_password="kp", ssl_check_hostname=False)  # fmt: skip
    props = clients.java_properties(s)
    assert props == {
        "security.protocol": "SSL",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(tmp_path / "ca.pem"),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.certificate.chain": cert.read_text(),
        "ssl.keystore.key": key.read_text(),
        "ssl.key.password": "kp",
        "ssl.endpoint.identification.algorithm": "",
    }
    plain = clients.java_properties(Settings(security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN", sasl_username='a"b', sasl_password="c\\d"))  # fmt: skip
    assert plain["sasl.jaas.config"] == (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="a\\"b" password="c\\\\d";'
    )
    text = clients.properties_text(props)
    assert "ssl.keystore.key=-----BEGIN PRIVATE KEY-----\\nBBB\\n" in text
    assert len(text.splitlines()) == len(props)  # one line per property
