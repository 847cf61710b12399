"""Latency at a fixed rate: a child process produces records at ``rate``/s, each with an
explicit Kafka CreateTime, and reads the pipeline's output records by key.

Two latencies per record, in ms:
- ``stamp``: output record's Kafka timestamp - input record's timestamp (the CreateTime
  the pipeline's producer gave it: the moment it called ``produce``/``send``);
- ``read``: when this process read the output - input timestamp (delivered end to end).

A warm-up of ``warmup`` records goes through first and is waited for, so group joins
and assignment are over before the paced phase starts. Then, with ``settle_s``, the
first ``settle_s`` seconds of the paced phase run at the rate but are counted only in
the whole run's figures: when a quiet pipeline is suddenly fed at the full rate, its first second or
so is slower (librdkafka and broker buffers, batches growing to the rate), and in a run
of a few seconds that start-up alone would set p99. The steady figures are those of
the records sent after it; a run's whole distribution is in ``stamp_all``/``read_all``.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from driftline.kafka.clients import confluent_common, producer_config
from driftline.settings import Settings


@dataclass
class Latency:
    """Latency percentiles (ms) of one paced run."""

    rate: float
    """Offered rate (records/s)."""
    achieved: float
    sent: int
    received: int
    stamp: tuple[float, float, float]
    """p50, p99, max of output timestamp - input timestamp."""
    read: tuple[float, float, float]
    """p50, p99, max of read time - input timestamp."""
    settle_s: float = 0.0
    """Records sent in the first ``settle_s`` seconds of the paced phase are not in
    ``stamp``/``read`` (only in the ``_all`` figures)."""
    stamp_all: tuple[float, float, float] = (float("nan"),) * 3
    """``stamp`` over every paced record, the settling ones included."""
    read_all: tuple[float, float, float] = (float("nan"),) * 3
    """``read`` over every paced record, the settling ones included."""


IDLE_S = 60.0
"""After the paced phase, stop waiting once no output has arrived for this long (a
stalled pipeline is reported as ``received < sent`` instead of holding the run for the
whole ``drain_s``)."""


def quantile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted, non-empty ``ordered`` (the value at rank ``q * n``)."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def percentiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max of ``values`` (NaN for none)."""
    if not values:
        return (float("nan"),) * 3
    s = sorted(values)
    return quantile(s, 0.5), quantile(s, 0.99), s[-1]


def _child(conf: dict[str, Any], q: Any) -> None:
    q.put(_paced(**conf))


def _paced(
    bootstrap: str, prefix: str, in_topic: str, out_topic: str, records: list[tuple[bytes, bytes]],
    warmup: int, rate: float, drain_s: float, settle_s: float = 0.0,
) -> Latency:  # fmt: skip
    settings = Settings(bootstrap_servers=bootstrap, topic_prefix=prefix, client_id="bench-drv")
    conf = confluent_common(settings, "bench-driver")
    conf.update({"group.id": "bench-driver-unused", "enable.auto.commit": False,
                 "fetch.wait.max.ms": 5, "fetch.min.bytes": 1})  # fmt: skip
    consumer = Consumer(conf)
    md = consumer.list_topics(out_topic, timeout=30)
    tps = []
    for p in md.topics[out_topic].partitions:
        high = consumer.get_watermark_offsets(TopicPartition(out_topic, p), timeout=10)[1]
        tps.append(TopicPartition(out_topic, p, high))
    consumer.assign(tps)
    producer = Producer(producer_config(settings, "bench-driver", **{"linger.ms": 1}))
    sent: dict[bytes, tuple[int, float, bool]] = {}
    """key -> CreateTime (ms), send time (ms), sent after the settling period"""
    stamp: list[float] = []
    read: list[float] = []
    settled: list[bool] = []
    got_warm = 0
    warm_keys = {k for k, _ in records[:warmup]}
    stop = threading.Event()

    def reader() -> None:
        nonlocal got_warm
        while not stop.is_set():
            for msg in consumer.consume(1000, 0.02):
                now = time.time() * 1000
                if msg.error() is not None:
                    continue
                key = msg.key()
                if key in warm_keys:
                    got_warm += 1
                    continue
                t = sent.get(key or b"")
                if t is not None:
                    stamp.append(float(msg.timestamp()[1] - t[0]))
                    read.append(now - t[1])
                    settled.append(t[2])

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    for key, value in records[:warmup]:
        producer.produce(in_topic, value, key)
    producer.flush(30)
    deadline = time.monotonic() + 120
    while got_warm < warmup and time.monotonic() < deadline:
        time.sleep(0.05)
    paced = records[warmup:]
    settle_n = int(settle_s * rate)
    t0 = time.perf_counter()
    i = 0
    while i < len(paced):
        due = min(len(paced), int((time.perf_counter() - t0) * rate) + 1)
        while i < due:
            key, value = paced[i]
            now = time.time()
            ms = int(now * 1000)
            sent[key] = (ms, now * 1000, i >= settle_n)
            producer.produce(in_topic, value, key, timestamp=ms)
            i += 1
        producer.poll(0)
        time.sleep(0.0005)
    elapsed = time.perf_counter() - t0
    producer.flush(30)
    deadline = time.monotonic() + drain_s
    seen, idle_until = len(stamp), time.monotonic() + IDLE_S
    while len(stamp) < len(paced) and time.monotonic() < min(deadline, idle_until):
        time.sleep(0.05)
        if len(stamp) > seen:  # still arriving: keep waiting, up to drain_s in all
            seen, idle_until = len(stamp), time.monotonic() + IDLE_S
    stop.set()
    th.join(5)
    consumer.close()
    steady = [i for i, ok in enumerate(settled) if ok]
    return Latency(
        rate, len(paced) / elapsed if elapsed else 0.0, len(paced), len(stamp),
        percentiles([stamp[i] for i in steady]), percentiles([read[i] for i in steady]),
        settle_s, percentiles(stamp), percentiles(read),
    )  # fmt: skip


class Paced:
    """Start the paced producer/reader in a child process; ``result()`` waits for it."""

    def __init__(
        self, settings: Settings, in_topic: str, out_topic: str,
        records: list[tuple[bytes, bytes]], warmup: int, rate: float, drain_s: float = 30,
        settle_s: float = 0.0,
    ) -> None:  # fmt: skip
        ctx = mp.get_context("spawn")
        self.q = ctx.Queue()
        conf = dict(
            bootstrap=settings.bootstrap_servers, prefix=settings.topic_prefix,
            in_topic=in_topic, out_topic=out_topic, records=records, warmup=warmup,
            rate=rate, drain_s=drain_s, settle_s=settle_s,
        )  # fmt: skip
        self.proc = ctx.Process(target=_child, args=(conf, self.q), daemon=True)
        self.proc.start()

    def result(self, timeout: float = 600, before_exit: Callable[[], None] | None = None
               ) -> Latency:  # fmt: skip
        """The run's latencies; ``before_exit`` is called once they arrive, while the
        driver process is not reaped yet (its CPU time is still readable)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                out: Latency = self.q.get(timeout=1)
                break
            except queue.Empty:
                if not self.proc.is_alive():
                    raise RuntimeError(f"latency driver died (exit {self.proc.exitcode})") from None
                if time.monotonic() > deadline:
                    self.proc.kill()
                    raise TimeoutError(f"latency driver gave no result in {timeout} s") from None
        if before_exit is not None:
            before_exit()
        self.proc.join(10)
        return out
