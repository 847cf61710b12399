"""A worker whose scorer thread dies must not linger looking alive: it exits non-zero so
an orchestrator restarts it."""

from __future__ import annotations

import time

from confluent_kafka.admin import AdminClient

from driftline.kafka.clients import admin_config
from driftline.streams.app import THREAD_DIED


def test_the_worker_exits_when_its_scorer_thread_dies(pipeline) -> None:
    s, _, proc = pipeline
    assert proc.proc is not None
    # deleting the topic the scorer consumes makes its consumer fail for good
    admin = AdminClient(admin_config(s))
    for fut in admin.delete_topics([s.topic("features")], operation_timeout=30).values():
        fut.result(timeout=30)
    deadline = time.monotonic() + 90
    while proc.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert proc.proc.returncode == THREAD_DIED, proc.tail()
    assert "died; exiting" in proc.tail()
