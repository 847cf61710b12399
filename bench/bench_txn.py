"""Milliseconds per batch transaction of the worker's loops (``driftline.kafka.txn.Transactions``),
with one transactional producer against two taking turns, against a real broker.

Each batch is what the join does at ~5,000 labels/s: a few dozen input records
(``take_batch`` from a 6-partition topic), two records produced per input (an output
and a changelog record, to two 6-partition topics; 6 is ``Settings.data_partitions``),
the input offsets sent to the transaction, commit. One producer begins its next
transaction while the coordinator still writes the last one's markers, and librdkafka
retries the refused AddPartitionsToTxn after a fixed 20 ms; two producers taking turns
do not wait. The two configurations alternate, on fresh consumer groups, in one process.

Run: .venv/bin/python bench/bench_txn.py [--bootstrap HOST:PORT] [--batches N] [--rounds R]
(starts its own broker unless --bootstrap; not a test: timings vary by machine)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Consumer, Message

from bench.pipeline import env
from bench.pipeline.driver import quantile
from bench.pipeline.worker import proc_cpu_s
from driftline.kafka.clients import consumer_config
from driftline.kafka.helpers import take_batch
from driftline.kafka.txn import (
    Transactions,
    loop_consumer_settings,
)
from driftline.settings import Settings

BATCH = 40  # records per batch: ~5,000 labels/s at a cycle of ~8 ms
PAYLOAD = b"x" * 200


def setup(settings: Settings, inputs: int) -> tuple[str, str, str]:
    src, out, changelog = (env.create_topic(settings, t) for t in ("in", "out", "changelog"))
    env.produce_all(settings, src, [(f"k{i}".encode(), PAYLOAD) for i in range(inputs)])
    return src, out, changelog


def one_run(settings: Settings, topics: tuple[str, str, str], lanes: int, batches: int,
            ) -> tuple[list[float], float]:  # fmt: skip
    """ms per ``Transactions.run`` for ``batches`` batches on a fresh group, and the
    loop's wall time in s."""
    src, out, changelog = topics
    group = f"bench-txn-{lanes}-{uuid.uuid4().hex[:6]}"
    consumer = Consumer(consumer_config(settings, "bench-txn", group, **loop_consumer_settings(
        settings, **{"auto.offset.reset": "earliest"})))  # fmt: skip
    txn = Transactions.for_loop(settings, "bench-txn", group, consumer, lanes=lanes)
    txn.init()
    consumer.subscribe([src])
    took: list[float] = []
    start = time.perf_counter()
    while len(took) < batches:
        msgs = take_batch(consumer, BATCH, 0.05)
        if not msgs:
            continue

        def produce_batch(msgs: list[Message] = msgs) -> None:
            for msg in msgs:
                p = msg.partition() or 0
                txn.produce(out, PAYLOAD, msg.key(), [], partition=p)
                txn.produce(changelog, PAYLOAD, msg.key(), [], partition=p)

        t0 = time.perf_counter()
        assert txn.run(msgs, produce_batch), "a batch's transaction aborted"
        took.append((time.perf_counter() - t0) * 1000)
    wall = time.perf_counter() - start
    consumer.close()
    return took, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", help="use this broker instead of starting one")
    ap.add_argument("--batches", type=int, default=150, help="batches per run")
    ap.add_argument("--rounds", type=int, default=3, help="runs per configuration, alternating")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="driftline-txn-") as tmp, env.Broker(
        Path(tmp), args.bootstrap
    ) as broker:  # fmt: skip
        settings = Settings(bootstrap_servers=broker.bootstrap,
                            topic_prefix=f"benchtxn{uuid.uuid4().hex[:6]}.")  # fmt: skip
        # every run reads the input from the start: enough for the longest run, and more
        topics = setup(settings, BATCH * args.batches * 2)
        runs: dict[int, list[list[float]]] = {1: [], 2: []}
        broker_ms: dict[int, list[float]] = {1: [], 2: []}
        for r in range(args.rounds):
            for lanes in (1, 2) if r % 2 == 0 else (2, 1):
                cpu0 = None if broker.pid is None else proc_cpu_s(broker.pid)
                took, wall = one_run(settings, topics, lanes, args.batches)
                runs[lanes].append(took)
                note = ""
                if cpu0 is not None and broker.pid is not None:
                    ms = 1000 * (proc_cpu_s(broker.pid) - cpu0) / len(took)
                    broker_ms[lanes].append(ms)
                    cores = ms * len(took) / wall / 1000
                    note = f", broker {ms:.1f} ms CPU per batch ({cores:.2f} cores)"
                print(f"round {r + 1}, {lanes} lane(s): p50 "
                      f"{statistics.median(took):.1f} ms{note}", flush=True)  # fmt: skip
    print(f"\nms per batch transaction ({BATCH} records in, {2 * BATCH} out; "
          f"{args.batches} batches x {args.rounds} runs each)")  # fmt: skip
    print("| transactional producers | p50 | p90 | p99 | batches/s | broker CPU ms per batch |")
    print("|---|---|---|---|---|---|")
    for lanes, per_run in runs.items():
        every = sorted(t for run in per_run for t in run)
        cpu = f"{statistics.median(broker_ms[lanes]):.1f}" if broker_ms[lanes] else "-"
        rate = 1000 * len(every) / sum(every)
        p50, p90, p99 = (quantile(every, q) for q in (0.5, 0.9, 0.99))
        print(f"| {lanes} | {p50:.1f} | {p90:.1f} | {p99:.1f} | {rate:,.0f} | {cpu} |")


if __name__ == "__main__":
    main()
