"""Broker security: SASL_SSL (SCRAM-SHA-512) over TLS with ACLs per principal.

The module starts its own secured broker (``infra/kafka/broker.sh up --security``:
certificates from certs.sh, users admin, scorer, trainer and app with generated
passwords), applies the topics and :mod:`driftline.kafka.acls` as admin, then
shows each allowed path working and each forbidden one refused, and runs a real
worker with the scorer's credentials end to end. Every client here is real and no test is skipped.
"""

from __future__ import annotations

import random
import shutil
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer

from driftline import broker
from driftline.core.lifecycle.training import bootstrap
from driftline.core.model.config import ModelsConfig
from driftline.core.wire.codec import default_codec
from driftline.kafka import acls, admin
from driftline.kafka.clients import consumer_config, producer_config
from driftline.kafka.helpers import Publisher
from driftline.kafka.registry_follower import read_registry
from driftline.settings import Settings
from tests.integration import churn, harness

USERS = ("admin", "scorer", "trainer", "app")


@dataclass
class Secured:
    """The module's secured broker and the settings of each principal."""

    directory: Path
    bootstrap: str
    prefix: str
    client_id: str
    up_output: str

    def password(self, user: str) -> str:
        return (self.directory / "secrets" / f"{user}.password").read_text().strip()

    def settings(self, user: str, password: str | None = None, **extra: Any) -> Settings:
        fields: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "topic_prefix": self.prefix,
            "client_id": self.client_id,
            "data_partitions": 3,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": user,
            "sasl_password": self.password(user) if password is None else password,
            "ssl_cafile": self.directory / "tls" / "ca.pem",
        }
        fields.update(extra)
        return Settings(**fields)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is missing: run infra/bootstrap.sh")
    directory = tmp_path_factory.mktemp("secured-broker")
    up = subprocess.run(
        ["bash", str(broker.script("broker.sh")), "up", "--security", "--port", "auto",
         "--dir", str(directory)],
        capture_output=True, text=True, check=False, timeout=240,
    )  # fmt: skip
    try:
        if up.returncode != 0:
            raise RuntimeError(f"broker.sh up --security failed:\n{up.stderr[-4000:]}")
        s = Secured(directory, up.stdout.strip().splitlines()[-1], f"s{uuid.uuid4().hex[:10]}.",
                    f"test-{uuid.uuid4().hex[:6]}", up.stdout + up.stderr)  # fmt: skip
        admin_settings = s.settings("admin")
        admin.apply(admin_settings)
        acls.apply(admin_settings)
        yield s
    finally:
        broker.down(directory, purge=True)


# -- helpers ------------------------------------------------------------------------


def produce_one(settings: Settings, topic: str) -> KafkaError | None:
    """Produce one record to ``topic``; the delivery error, or None when written."""
    reports: list[KafkaError | None] = []
    p = Producer(producer_config(settings, "test"))
    p.produce(settings.topic(topic), b"value", b"key", on_delivery=lambda e, _m: reports.append(e))
    assert p.flush(30) == 0
    assert len(reports) == 1
    return reports[0]


def read(settings: Settings, topic: str, group: str, timeout: float = 30) -> list[Message]:
    """Subscribe to ``topic`` in ``group``; the first records, or the first errors (a
    message whose ``error()`` is set) once the broker refuses."""
    c = Consumer(consumer_config(settings, "test", group, **{"enable.auto.commit": False}))
    c.subscribe([settings.topic(topic)])
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while not got and time.monotonic() < deadline:
            got = [m for m in c.consume(100, 0.5) if code_of(m) != KafkaError._PARTITION_EOF]
    finally:
        c.close()
    return got


def code_of(msg: Message) -> int | None:
    """The code of ``msg``'s error; None when it has none."""
    error = msg.error()
    return None if error is None else error.code()


def error_codes(msgs: list[Message]) -> set[int]:
    return {code for m in msgs if (code := code_of(m)) is not None}


def connect_errors(settings: Settings, timeout: float = 30) -> list[KafkaError]:
    """The client-level errors a producer reports while trying to connect."""
    errors: list[KafkaError] = []
    p = Producer(producer_config(settings, "test", error_cb=errors.append))
    deadline = time.monotonic() + timeout
    while not errors and time.monotonic() < deadline:
        p.poll(0.2)
    return errors


def event_ids(
    settings: Settings, topic: str, group: str, want: set[str], timeout: float = 90
) -> set[str]:
    """The event ids read from ``topic`` (from its beginning) until ``want`` are all in."""
    codec = default_codec()
    c = Consumer(consumer_config(settings, "test", group, **{"enable.auto.commit": False}))
    c.subscribe([settings.topic(topic)])
    got: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while not want <= got and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                error = m.error()
                assert error is None or error.code() == KafkaError._PARTITION_EOF, error
                if error is None:
                    got.add(codec.decode(harness.value_of(m)).value["event_id"])
    finally:
        c.close()
    return got


def group_of(s: Secured, user: str) -> str:
    """A consumer group the ACLs give ``user``."""
    tag = uuid.uuid4().hex[:8]
    return {
        "app": f"app-{tag}",
        "trainer": f"{s.settings('trainer').group('trainer')}-{tag}",
        "scorer": f"{acls.worker_prefix(s.settings('scorer'))}-{tag}",
    }[user]


# -- writes -------------------------------------------------------------------------

ALLOWED_WRITES = [
    ("app", "features"),
    ("app", "labels"),
    ("trainer", "registry"),
    ("trainer", "alerts"),
    ("scorer", "predictions"),
    ("scorer", "outcomes"),
    ("scorer", "retrain"),
]
FORBIDDEN_WRITES = [
    ("app", "predictions"),
    ("app", "registry"),
    ("trainer", "predictions"),
    ("scorer", "registry"),
]


@pytest.mark.parametrize(("user", "topic"), ALLOWED_WRITES)
def test_allowed_write(secured: Secured, user: str, topic: str) -> None:
    assert produce_one(secured.settings(user), topic) is None


@pytest.mark.parametrize(("user", "topic"), FORBIDDEN_WRITES)
def test_forbidden_write_is_refused(secured: Secured, user: str, topic: str) -> None:
    err = produce_one(secured.settings(user), topic)
    assert err is not None
    assert err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err


# -- reads --------------------------------------------------------------------------

ALLOWED_READS = [
    ("app", "predictions"),
    ("app", "alerts"),
    ("app", "retrain"),
    ("trainer", "outcomes"),
    ("trainer", "retrain"),
    ("trainer", "registry"),
    ("scorer", "features"),
    ("scorer", "registry"),
]
FORBIDDEN_READS = [
    ("app", "outcomes"),
    ("app", "registry"),
    ("app", "features"),
    ("trainer", "features"),
]


@pytest.mark.parametrize(("user", "topic"), ALLOWED_READS)
def test_allowed_read(secured: Secured, user: str, topic: str) -> None:
    assert produce_one(secured.settings("admin"), topic) is None
    got = read(secured.settings(user), topic, group_of(secured, user))
    assert got, f"{user} read nothing from {topic}"
    assert not error_codes(got), [m.error() for m in got]


@pytest.mark.parametrize(("user", "topic"), FORBIDDEN_READS)
def test_forbidden_read_is_refused(secured: Secured, user: str, topic: str) -> None:
    assert produce_one(secured.settings("admin"), topic) is None
    got = read(secured.settings(user), topic, group_of(secured, user))
    assert error_codes(got) == {KafkaError.TOPIC_AUTHORIZATION_FAILED}, got


def test_a_group_outside_the_principal_prefix_is_refused(secured: Secured) -> None:
    assert produce_one(secured.settings("admin"), "predictions") is None
    got = read(secured.settings("app"), "predictions", f"not-the-app-{uuid.uuid4().hex[:6]}")
    assert error_codes(got) == {KafkaError.GROUP_AUTHORIZATION_FAILED}, got


# -- authentication and TLS ---------------------------------------------------------


def test_a_wrong_password_is_refused(secured: Secured) -> None:
    errors = connect_errors(secured.settings("app", password="not-the-password"))
    assert errors and errors[0].code() == KafkaError._AUTHENTICATION, errors
    assert "invalid credentials" in errors[0].str()


def test_an_unknown_user_is_refused(secured: Secured) -> None:
    errors = connect_errors(secured.settings("mallory", password=secured.password("app")))
    assert errors and errors[0].code() == KafkaError._AUTHENTICATION, errors


def test_a_client_that_does_not_trust_the_ca_is_refused(secured: Secured) -> None:
    # Without ssl_cafile the client trusts only the system's CAs, not the broker's.
    errors = connect_errors(secured.settings("app", ssl_cafile=None))
    assert errors, "connected without trusting the broker's CA"
    assert any("certificate verify failed" in e.str() for e in errors), errors


# -- end to end: a real worker and trainer with their own credentials --------------


@pytest.mark.timeout(600)
def test_worker_and_trainer_run_with_their_credentials(secured: Secured, tmp_path: Path) -> None:
    """The app's features become predictions and outcomes through a `driftline worker`
    running as scorer; a retrain trigger is answered by a `driftline trainer` running
    as trainer. Neither log holds a password or an authorization failure."""
    models_file = tmp_path / "models.toml"
    models_file.write_text(churn.MODELS)
    # A topic prefix of its own, so the worker starts from empty topics.
    s = Secured(secured.directory, secured.bootstrap, f"e{uuid.uuid4().hex[:10]}.",
                secured.client_id, secured.up_output)  # fmt: skip
    extra: dict[str, Any] = {"models_file": models_file, "monitor_interval_s": 1.0,
             "artifact_dir": tmp_path / "artifacts", "metrics_port": 0,
             "data_dir": tmp_path / "worker-data"}  # fmt: skip
    scorer, trainer, app, root = (
        s.settings(u, **extra) for u in ("scorer", "trainer", "app", "admin")
    )
    admin.apply(root)
    cmd = [sys.executable, "-m", "driftline", "acls", "--apply"]  # as an operator would
    applied = subprocess.run(cmd, env=harness.env_for(root), capture_output=True, text=True,
                             check=False, timeout=120)  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    assert "created" in applied.stdout
    password = root.sasl_password_value()
    assert password is not None and password not in applied.stdout + applied.stderr

    # The trainer publishes the bootstrapped champion; the scorer may not.
    config = ModelsConfig.load(models_file)["churn"]
    rng = random.Random(11)
    _, records = bootstrap(
        [churn.example(rng, i) for i in range(600)], config,
        key=scorer.signing_key.get_secret_value().encode(), by="test", reason="security test",
        now_ms=int(time.time() * 1000),
    )  # fmt: skip
    assert produce_one(scorer, "registry") is not None
    harness.publish(trainer, "registry", "io.driftline.ModelVersion", records,
                    key=lambda r: f"{r['model']}/{r['version']}")  # fmt: skip

    procs = [harness.worker(scorer, tmp_path)]
    try:
        procs[0].start(timeout=240)
        events = [churn.example(rng, i) for i in range(1_000, 1_400)]
        churn.send(app, events)  # features and labels, as the app
        want = {e["event_id"] for e in events}
        # Each principal reads through a consumer group its ACLs allow.
        assert event_ids(app, "predictions", group_of(s, "app"), want) >= want
        assert event_ids(trainer, "outcomes", group_of(s, "trainer"), want) >= want
        assert procs[0].running(), procs[0].tail()

        procs.append(harness.Process(trainer, ["trainer"], tmp_path / "trainer.log",
                                     "trainer started on"))  # fmt: skip
        procs[1].start(timeout=240)
        trg = trigger_record("churn")
        pub = Publisher(scorer, "test")  # the worker's monitor writes triggers as scorer
        pub.send("retrain", "churn", "RetrainTrigger", trg)
        pub.close()
        deadline = time.monotonic() + 120
        answer = None
        while answer is None and time.monotonic() < deadline:
            answer = read_registry(root).answered(trg["idempotency_key"])
            time.sleep(0.5)
        assert answer is not None, procs[1].tail()
        assert answer["stage_changed_by"] == "trainer"
        assert answer["lineage"]["rows"] + answer["lineage"]["holdout_rows"] >= len(events)
    finally:
        codes = [p.stop() for p in reversed(procs)]
    assert codes == [0] * len(procs), [p.tail() for p in procs]

    for p in procs:
        log = p.log.read_text(errors="replace")
        for user in USERS:
            assert s.password(user) not in log, f"the {user} password is in {p.log.name}"
        # a connection torn down while the process stops can log "SASL authentication
        # error: ... Broker transport failure": not a refused login
        refused = [line for line in log.splitlines() if "SASL authentication" in line
                   and "Broker transport failure" not in line]  # fmt: skip
        assert refused == [], refused
        assert "authorization failed" not in log.lower(), p.tail()
    assert "driftline worker ready" in procs[0].log.read_text()


def trigger_record(model: str) -> dict[str, Any]:
    tid = f"trg-{uuid.uuid4().hex[:8]}"
    return {
        "trigger_id": tid, "model": model, "idempotency_key": f"key-{tid}",
        "reasons": ["manual"], "evidence": {}, "window_start_ms": None, "window_end_ms": None,
        "last_n": None, "champion_version": None, "requested_by": "test",
        "created_at_ms": int(time.time() * 1000),
    }  # fmt: skip


# -- secrets ------------------------------------------------------------------------


def test_secrets_stay_out_of_logs_and_are_private(secured: Secured) -> None:
    d = secured.directory
    texts = {
        "broker.sh up output": secured.up_output,
        "broker.log": (d / "broker.log").read_text(errors="replace"),
        "server.properties": (d / "server.properties").read_text(),
    }
    for user in USERS:
        pw = secured.password(user)
        assert len(pw) >= 32
        for name, text in texts.items():
            assert pw not in text, f"the {user} password is in {name}"
        assert stat.S_IMODE((d / "secrets" / f"{user}.password").stat().st_mode) == 0o600
    assert stat.S_IMODE((d / "secrets").stat().st_mode) == 0o700
    assert stat.S_IMODE((d / "secrets" / "admin.properties").stat().st_mode) == 0o600
    assert stat.S_IMODE((d / "tls" / "broker.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((d / "tls" / "ca.key").stat().st_mode) == 0o600
    assert not (d / "secrets" / "format.args").exists()


def test_broker_status_and_kafka_tools_with_the_admin_config(secured: Secured) -> None:
    d = secured.directory
    status = subprocess.run(["bash", str(broker.script("broker.sh")), "status", "--dir", str(d)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert status.returncode == 0, status.stdout + status.stderr
    assert "state: running" in status.stdout
    assert "SASL_SSL" in status.stdout
    listed = subprocess.run(
        ["bash", str(broker.script("kafka-tool.sh")), "acls", "--bootstrap-server",
         secured.bootstrap, "--command-config", str(d / "secrets" / "admin.properties"),
         "--list", "--principal", "User:app"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert f"name={secured.prefix}features, patternType=LITERAL" in listed.stdout
    assert "operation=WRITE" in listed.stdout


def test_driftline_kafka_takes_the_security_settings(secured: Secured, tmp_path: Path) -> None:
    """`driftline kafka` connects with the DRIFTLINE_* security settings, the worker's
    (a client config file made for the run and removed after it); a wrong password is
    refused the same way."""
    from driftline.procs import env_for

    def kafka(s: Settings, *args: str) -> subprocess.CompletedProcess[str]:
        env = env_for(s.model_copy(update={"broker_dir": tmp_path / "none"}),
                      TMPDIR=str(tmp_path))  # fmt: skip
        return subprocess.run([sys.executable, "-m", "driftline", "kafka", *args], env=env,
                              capture_output=True, text=True, timeout=180, check=False)  # fmt: skip

    listed = kafka(secured.settings("admin"), "topics", "--list")
    assert listed.returncode == 0, listed.stderr
    assert f"{secured.prefix}features" in listed.stdout.split()
    acls = kafka(secured.settings("admin"), "acls", "--list", "--principal", "User:app")
    assert acls.returncode == 0, acls.stderr
    assert f"name={secured.prefix}features, patternType=LITERAL" in acls.stdout
    refused = kafka(secured.settings("admin", password="wrong"), "topics", "--list")
    assert refused.returncode != 0
    assert "Authentication failed" in refused.stdout + refused.stderr
    assert list(tmp_path.glob("driftline-kafka-*")) == []  # the config file is gone
