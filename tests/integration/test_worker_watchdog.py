"""A worker whose scorer thread dies must not linger looking alive: it exits non-zero so
an orchestrator restarts it."""

from __future__ import annotations

import random
import time

from confluent_kafka.admin import AdminClient

from driftline.kafka.clients import admin_config
from driftline.streams.app import THREAD_DIED
from tests.integration import churn, harness


def test_the_worker_exits_when_its_scorer_thread_dies(pipeline) -> None:
    s, _, proc = pipeline
    assert proc.proc is not None
    # one scored event first, so the scorer owns its partitions before the topic goes
    events = [churn.example(random.Random(7), 0)]
    churn.send(s, events, labels=False)
    got = harness.collect(s, "predictions", lambda r: len(r) >= 1, timeout=60)
    assert [p["event_id"] for p in got] == [events[0]["event_id"]]
    # deleting the topic the scorer consumes makes its consumer fail for good
    admin = AdminClient(admin_config(s))
    for fut in admin.delete_topics([s.topic("features")], operation_timeout=30).values():
        fut.result(timeout=30)
    deadline = time.monotonic() + 90
    while proc.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert proc.proc.returncode == THREAD_DIED, proc.tail()
    assert "died; exiting" in proc.tail()
