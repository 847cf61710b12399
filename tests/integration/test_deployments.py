"""Two deployments (topic prefixes) on one broker, each with a worker and a trainer, and
the same client id (the default one, which nobody changes): they share no consumer group
and no transactional id, and both are exact (every event's prediction and outcome once,
in each deployment). Before groups derived from the prefix, both trainers joined
``<client_id>-trainer`` and rebalanced each other."""

from __future__ import annotations

import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from driftline.kafka.clients import admin_config
from driftline.procs import env_for
from driftline.settings import Settings
from tests.integration import harness
from tests.integration.churn import example, send, start_pipeline
from tests.integration.loop_helpers import publish_trigger, trigger

EVENTS = 600


def groups_of(settings: Settings) -> dict[str, int]:
    """Every consumer group on the broker whose name starts with ``settings``' group
    stem, with its number of members."""
    admin = AdminClient(admin_config(settings))
    stem = settings.group("")
    names = [g.group_id for g in admin.list_consumer_groups(request_timeout=15).result().valid
             if g.group_id.startswith(stem)]  # fmt: skip
    if not names:
        return {}
    described = admin.describe_consumer_groups(names, request_timeout=15)
    return {name: len(f.result().members) for name, f in described.items()}


def transactional_ids(settings: Settings) -> list[str]:
    """The transactional ids the broker knows (Kafka's own tool, through driftline kafka)."""
    done = subprocess.run(
        [sys.executable, "-m", "driftline", "kafka", "transactions", "list"],
        env=env_for(settings), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    return [line.split()[0] for line in lines[1:] if line.strip()]


def exactly_once(s: Settings, topic: str, ids: set[str]) -> Counter[str]:
    got = harness.collect(s, topic, lambda g: {r["event_id"] for r in g} >= ids, timeout=120)
    time.sleep(2)  # a duplicate would show up now
    got = harness.collect(s, topic, lambda g: len(g) > len(ids), timeout=5)
    return Counter(r["event_id"] for r in got)


def test_two_prefixes_share_a_broker_without_sharing_a_group(
    settings: Settings, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    deployments: dict[str, tuple[Settings, str, harness.Process, harness.Process]] = {}
    try:
        for name in ("staging", "prod"):
            base = settings.model_copy(update={
                "topic_prefix": f"{name}{tag}.", "client_id": "driftline",
                "artifact_dir": tmp_path / name / "artifacts", "instance_id": "0",
            })  # fmt: skip
            (tmp_path / name).mkdir()
            s, champion, worker = start_pipeline(base, tmp_path / name)
            log = tmp_path / name / "trainer.log"
            trainer = harness.Process(s, ["trainer", "--metrics-port", "0"], log, "trainer started")
            deployments[name] = (s, champion, worker, trainer.start())

        sent: dict[str, set[str]] = {}
        for k, (name, (s, _, _, _)) in enumerate(deployments.items()):
            events = [example(random.Random(k), i) for i in range(EVENTS)]
            send(s, events)
            sent[name] = {e["event_id"] for e in events}
            publish_trigger(s, trigger(last_n=300))  # each trainer answers its own

        for name, (s, champion, worker, trainer) in deployments.items():
            for topic in ("predictions", "outcomes"):
                seen = exactly_once(s, topic, sent[name])
                assert set(seen) == sent[name], (name, topic, worker.tail())
                assert max(seen.values()) == 1, (name, topic, seen.most_common(3))

            def answered(got: list[Any], first: str = champion) -> bool:
                return any(v["version"] != first for v in got)

            versions = harness.collect(s, "registry", answered, timeout=90)
            assert answered(versions), (name, trainer.tail())

        staging, prod = (deployments[n][0] for n in ("staging", "prod"))
        groups = {n: groups_of(s) for n, s in (("staging", staging), ("prod", prod))}
        for name, s in (("staging", staging), ("prod", prod)):
            mine = groups[name]
            # the worker's scorer and join, Faust's own group, and the trainer: one member each
            for role in ("worker-scorer", "worker-join", "trainer"):
                assert mine.get(s.group(role)) == 1, (name, role, mine)
        assert not set(groups["staging"]) & set(groups["prod"])

        txn = transactional_ids(staging)
        for name, s in (("staging", staging), ("prod", prod)):
            for role in ("worker-scorer", "worker-join"):
                assert f"{s.group(role)}-0" in txn, (name, role, txn)
        assert not {t for t in txn if t.startswith(staging.group(""))} & {
            t for t in txn if t.startswith(prod.group(""))
        }
    finally:
        for _, _, worker, trainer in deployments.values():
            trainer.stop()
            worker.stop()
