"""Topics as code against the real broker, cross-checked with Kafka's own tools."""

from __future__ import annotations

import subprocess
import time

from click.testing import CliRunner
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from driftline import broker
from driftline.cli import cli
from driftline.kafka import admin
from driftline.kafka.clients import admin_config
from driftline.settings import Settings


def test_apply_creates_every_declared_topic_then_is_idempotent(settings: Settings) -> None:
    first = admin.apply(settings)
    assert {r.action for r in first} == {"created"}
    assert {r.name for r in first} == {s.name for s in admin.declared(settings)}

    second = admin.apply(settings)
    assert {r.action for r in second} == {"unchanged"}
    assert all(d.in_sync for d in admin.describe(settings))


def test_apply_restores_a_config_changed_out_of_band(settings: Settings) -> None:
    admin.apply(settings)
    client = AdminClient(admin_config(settings))
    name = settings.topic("outcomes")
    res = ConfigResource(
        ResourceType.TOPIC,
        name,
        incremental_configs=[
            ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    for fut in client.incremental_alter_configs([res]).values():
        fut.result(timeout=30)
    deadline = time.monotonic() + 30
    while True:  # the broker applies config changes asynchronously
        drifted = {d.spec.name: d for d in admin.describe(settings)}[name]
        if "retention.ms" in drifted.config_changes or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert drifted.config_changes["retention.ms"][0] == "1000"

    results = {r.name: r for r in admin.apply(settings)}
    assert results[name].action == "altered"
    assert "retention.ms" in results[name].detail
    assert all(d.in_sync for d in admin.describe(settings))


def kafka_topics(settings: Settings, *args: str) -> str:
    """The output of Kafka's own ``kafka-topics`` against the test's broker."""
    cmd = ["bash", str(broker.script("kafka-tool.sh")), "topics"]
    cmd += ["--bootstrap-server", settings.bootstrap_servers, *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout


def test_kafka_topics_tool_shows_the_declared_configs(settings: Settings) -> None:
    admin.apply(settings)
    registry = settings.topic("registry")
    out = kafka_topics(settings, "--describe", "--topic", registry)
    assert "cleanup.policy=compact" in out
    assert "PartitionCount: 1" in out
    listed = kafka_topics(settings, "--list").split()
    assert {s.name for s in admin.declared(settings)} <= set(listed)


def test_cli_apply_and_describe(settings: Settings, monkeypatch) -> None:
    monkeypatch.setenv("DRIFTLINE_BOOTSTRAP_SERVERS", settings.bootstrap_servers)
    monkeypatch.setenv("DRIFTLINE_TOPIC_PREFIX", settings.topic_prefix)
    monkeypatch.setenv("DRIFTLINE_DATA_PARTITIONS", "3")
    runner = CliRunner()
    before = runner.invoke(cli, ["topics", "describe"])
    assert before.exit_code == 0, before.output
    assert before.output.count("missing") == len(admin.declared(settings))

    applied = runner.invoke(cli, ["topics", "apply"])
    assert applied.exit_code == 0, applied.output
    assert applied.output.count("created") == len(admin.declared(settings))

    after = runner.invoke(cli, ["topics", "describe"])
    assert after.exit_code == 0, after.output
    assert after.output.count("in sync") == len(admin.declared(settings))
    assert settings.topic("registry") in after.output
