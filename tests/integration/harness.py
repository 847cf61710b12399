"""Helpers for tests that run Driftline processes against the real broker."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from driftline.core.wire.codec import default_codec
from driftline.core.wire.headers import build as build_headers
from driftline.core.wire.headers import for_confluent
from driftline.kafka.clients import consumer_config, producer_config
from driftline.procs import Process as Process  # re-exported for the tests
from driftline.procs import env_for as env_for
from driftline.procs import free_port as free_port
from driftline.procs import worker as worker
from driftline.settings import Settings


def produce(
    settings: Settings, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]
) -> int:
    """Produce raw (key, value) pairs; returns how many, all delivered."""
    p = Producer(producer_config(settings, "test"))
    n = 0
    for key, value in records:
        p.produce(settings.topic(topic), value, key)
        n += 1
        if n % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    return n


def encoded(record_name: str, records: Iterable[dict[str, Any]], key_field: str = "event_id"):
    codec = default_codec()
    for r in records:
        yield str(r[key_field]).encode(), codec.encode(record_name, r)


def publish(settings: Settings, topic: str, name: str, records: list[dict[str, Any]],
            key: Callable[[dict[str, Any]], str]) -> None:  # fmt: skip
    codec = default_codec()
    p = Producer(producer_config(settings, "test"))
    for r in records:
        p.produce(settings.topic(topic), codec.encode(name, r), key(r).encode(),
                  headers=for_confluent(build_headers(name, None, None)))  # fmt: skip
    assert p.flush(30) == 0


def value_of(msg: Message) -> bytes:
    """The value of ``msg``, which the reader knows is no tombstone."""
    value = msg.value()
    assert value is not None, f"a tombstone at {msg.topic()}[{msg.partition()}]@{msg.offset()}"
    return value


def collect(
    settings: Settings, topic: str, until: Callable[[list[Any]], bool], timeout: float = 60,
    decode: bool = True,
) -> list[Any]:  # fmt: skip
    """Read ``topic`` from the beginning until ``until(records)`` or ``timeout``."""
    codec = default_codec()
    c = Consumer(consumer_config(settings, "test", f"collect-{uuid.uuid4().hex[:8]}",
                                 **{"enable.auto.commit": False}))  # fmt: skip
    c.subscribe([settings.topic(topic)])
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(got):
            for msg in c.consume(1000, 0.5):
                if msg.error() is None:
                    got.append(codec.decode(value_of(msg)).value if decode else msg)
    finally:
        c.close()
    return got


def offsets(settings: Settings, topic: str, group: str | None = None) -> dict[int, int]:
    """Per partition of ``topic`` (a full name): its end offset, or with ``group`` that
    group's committed offset (-1001 when it has none)."""
    c = Consumer(consumer_config(settings, "test", group or f"offsets-{uuid.uuid4().hex[:8]}"))
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if group is not None:
            return {tp.partition: tp.offset for tp in c.committed(tps, timeout=10)}
        return {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
    finally:
        c.close()


def consumed_all(settings: Settings, topic: str, group: str, timeout: float = 10) -> bool:
    """True when ``group`` has committed past every record of ``topic`` a read_committed
    reader can see. (Comparing committed offsets with end offsets does not work for a
    topic written in transactions: each commit marker takes an offset after the last
    record, which a consumer that commits what it processed does not pass; Driftline's
    join does, once idle: docs/architecture.md, "Lag at rest".)"""
    c = Consumer(consumer_config(settings, "test", f"probe-{uuid.uuid4().hex[:8]}",
                                 **{"enable.partition.eof": True}))  # fmt: skip
    try:
        committed = dict(offsets(settings, topic, group))
        c.assign([TopicPartition(topic, p, max(o, 0)) for p, o in committed.items()])
        left = set(committed)
        deadline = time.monotonic() + timeout
        while left and time.monotonic() < deadline:
            for msg in c.consume(100, 0.5):
                if msg.error() is None:
                    return False
                left.discard(msg.partition())
        return not left
    finally:
        c.close()


def refused_models_file(settings: Settings, proc: Process) -> list[dict[str, Any]]:
    """SIGHUP ``proc`` (a broken models file written): the alerts topic once it holds a
    ``config_rejected`` alert (30 s at most; the caller asserts it is there)."""
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGHUP)
    return collect(settings, "alerts", _config_rejected, timeout=30)


def _config_rejected(got: list[Any]) -> bool:
    return any(a["kind"] == "config_rejected" for a in got)


def reloaded_models_file(proc: Process, timeout: float = 30) -> None:
    """SIGHUP ``proc`` (a good models file written); returns once it logs the reload."""
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while "reloaded models file" not in proc.tail():
        assert time.monotonic() < deadline, proc.tail()
        time.sleep(0.2)


class Background:
    """Run a callable on a thread until stopped (for in-process consumers)."""

    def __init__(self, target: Callable[[threading.Event], None]) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=target, args=(self.stop,), daemon=True)

    def __enter__(self) -> Background:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
