"""The join's latency floor: a plain confluent-kafka exactly-once loop written here,
with no Driftline code, that reads labels and, per label, writes one record to an
outputs topic and one to a changelog topic, batch by batch in a Kafka transaction
with the batch's input offsets (the shape of the join's transaction, without its
decoding, state, lanes or monitor). It runs in a process of its own and is measured by
the same paced driver as the worker, so the difference is what the join adds. With
``per_partition`` it gives each input partition a transactional producer of its own,
the way around librdkafka's one produce request per partition (docs/benchmarks-history.md)."""

from __future__ import annotations

import multiprocessing as mp
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from bench.pipeline import env
from bench.pipeline.driver import Latency, Paced
from driftline.kafka.clients import confluent_common
from driftline.settings import Settings

OUTPUT_PAD = b"\0" * 120
"""Added to each label's bytes for its output: about an Outcome's size."""


def _loop(bootstrap: str, labels: str, outputs: str, changelog: str, group: str,
          per_partition: bool, stop: Any, ready: Any) -> None:  # fmt: skip
    """Consume ``labels``; per batch: begin, produce, deliver, send offsets, commit. With
    ``per_partition``, each input partition's records go through a transactional
    producer of its own (so each transaction writes 2 partitions instead of 2 per input
    partition), and their deliver, offsets and commit run at once, on a thread each."""
    common = confluent_common(Settings(bootstrap_servers=bootstrap), "bench-plain-eos")
    consumer = Consumer(common | {
        "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "isolation.level": "read_committed", "fetch.wait.max.ms": 50,
    })  # fmt: skip
    producers: dict[int, Producer] = {}

    def producer_for(p: int) -> Producer:
        if p not in producers:
            tid = f"{group}-txn" + (f"-{p}" if per_partition else "")
            producers[p] = Producer(common | {"transactional.id": tid, "linger.ms": 5,
                                              "partitioner": "murmur2_random"})  # fmt: skip
            producers[p].init_transactions(30)
        return producers[p]

    def finish(p: int, offsets: list[TopicPartition]) -> None:
        producer = producers[p]
        producer.flush(30)
        producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)

    producer_for(0)
    pool = ThreadPoolExecutor(8)
    consumer.subscribe([labels])
    ready.set()
    while not stop.is_set():
        msgs = consumer.consume(2_000, 0)  # what it holds; else wait for one record
        if not msgs:
            first = consumer.poll(0.05)
            msgs = [first, *consumer.consume(1_999, 0)] if first is not None else []
        by: dict[int, list[Message]] = {}  # producer -> its records
        for m in msgs:
            if m.error() is None:
                by.setdefault(m.partition() or 0 if per_partition else 0, []).append(m)
        for p, batch in by.items():
            producer = producer_for(p)
            producer.begin_transaction()
            for m in batch:
                key, value, part = m.key(), m.value() or b"", m.partition() or 0
                if per_partition:
                    producer.produce(outputs, value + OUTPUT_PAD, key, partition=part)
                else:
                    producer.produce(outputs, value + OUTPUT_PAD, key)
                producer.produce(changelog, value[:25], key, partition=part)
        ends = {p: {m.partition() or 0: (m.offset() or 0) + 1 for m in batch}
                for p, batch in by.items()}  # fmt: skip
        jobs = [pool.submit(finish, p, [TopicPartition(labels, q, end) for q, end in e.items()])
                for p, e in ends.items()]  # fmt: skip
        for job in jobs:
            job.result()
    pool.shutdown()
    consumer.close()


def run(
    settings: Settings, records: env.Encoded, warmup: int, rate: float, settle_s: float = 0.0,
    per_partition: bool = False,
) -> Latency:  # fmt: skip
    """``records`` (labels) sent at ``rate``/s through a plain EOS loop in its own
    process; the same latencies as the worker's join runs."""
    labels = env.create_topic(settings, f"plain-labels-{time.time_ns()}")
    outputs = env.create_topic(settings, f"plain-outputs-{time.time_ns()}")
    changelog = env.create_topic(settings, f"plain-changelog-{time.time_ns()}")
    ctx = mp.get_context("spawn")
    stop, ready = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_loop, daemon=True, args=(
        settings.bootstrap_servers, labels, outputs, changelog,
        f"{settings.topic_prefix}plain-eos-{time.time_ns()}", per_partition, stop, ready,
    ))  # fmt: skip
    proc.start()
    try:
        if not ready.wait(60):
            raise TimeoutError("the plain EOS loop did not start in 60 s")
        return Paced(
            settings, labels, outputs, records, warmup, rate, drain_s=300, settle_s=settle_s
        ).result()
    finally:
        stop.set()
        proc.join(30)
        if proc.is_alive():
            proc.kill()
