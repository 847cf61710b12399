"""The join, measured through a ``driftline worker``: label-to-outcome throughput, label
-> outcome latency at a fixed label rate, and bytes per pending prediction."""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka import KafkaError as CKafkaError

from bench.pipeline import env, plain_eos
from bench.pipeline.driver import Latency, Paced
from bench.pipeline.loops import scoring_for
from bench.pipeline.worker import Drain, Watermarks, WorkerProc, drain, proc_cpu_s
from driftline.core.join.leanentry import is_names_key
from driftline.core.join.rules import JoinEntry, JoinState
from driftline.core.model.estimators import ServedModel
from driftline.kafka.clients import confluent_common
from driftline.kafka.txn import PHASES
from driftline.settings import Settings


def predictions(champion: ServedModel, events: list[dict[str, Any]]) -> env.Encoded:
    """The Prediction bytes the scorer makes for ``events`` (scored here, offline)."""
    scoring = scoring_for(champion)
    now = int(time.time() * 1000)
    out = []
    for key, value in env.encode_all("io.driftline.FeatureEvent", map(env.feature_event, events)):
        out.append((key, scoring.score(value, key, now).prediction))
    return out


def labels(events: list[dict[str, Any]]) -> env.Encoded:
    return env.encode_all("io.driftline.Label", (env.label_record(e) for e in events))


@dataclass
class EntrySize:
    """Bytes of a pending prediction's join entry as the join stores it, and its parts."""

    entry: float
    """The entry as the worker's join wrote it to its changelog."""
    names: int
    """Bytes (keys and values) of the names records those entries share, all partitions."""
    header: int
    prediction: float
    """The Prediction's own bytes, which the entry held whole before the lean form."""
    key: float


def stored_size(settings: Settings, changelog: str, preds: env.Encoded) -> EntrySize:
    """What the worker's join stored for pending predictions, read back from its
    changelog: every entry that holds a prediction waiting for its label (its first
    write per key), and the names records, whatever tree the worker ran from."""
    sizes: list[int] = []
    names = 0
    c = Consumer(
        confluent_common(settings, "bench-size")
        | {"group.id": f"bench-size-{time.time_ns()}", "enable.auto.commit": False,
           "isolation.level": "read_committed", "enable.partition.eof": True}
    )  # fmt: skip
    try:
        parts = c.list_topics(changelog, timeout=10).topics[changelog].partitions
        c.assign([TopicPartition(changelog, p, OFFSET_BEGINNING) for p in parts])
        left = set(parts)
        deadline = time.monotonic() + 120
        while left and time.monotonic() < deadline:
            for msg in c.consume(1000, 1.0):
                if (err := msg.error()) is not None:
                    if err.code() == CKafkaError._PARTITION_EOF:
                        left.discard(msg.partition())
                    continue
                key, value = msg.key() or b"", msg.value()
                if value is None:
                    continue
                if is_names_key(key):
                    names += len(key) + len(value)
                elif JoinEntry.from_bytes(value).state is JoinState.WAITING_FOR_LABEL:
                    sizes.append(len(value))
        if left:
            raise TimeoutError(f"{changelog}: partitions {sorted(left)} not read to the end")
    finally:
        c.close()
    if not sizes:
        raise RuntimeError(f"{changelog}: no pending prediction entries")
    return EntrySize(
        statistics.fmean(sizes),
        names,
        JoinEntry.HEADER_BYTES,
        statistics.fmean(len(v) for _, v in preds),
        statistics.fmean(len(k) for k, _ in preds),
    )


@dataclass
class JoinResult:
    throughput: Drain
    latency: dict[str, Latency]
    size: EntrySize
    cores: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per latency run: CPU time / wall time of the worker, the broker (when the bench
    started it) and the paced driver, from the driver's start to its result."""
    phases: dict[str, Phases] = field(default_factory=dict)
    """Per latency run: the join's transactions meanwhile, from the worker's metrics."""
    partitions: int = 0
    """Partitions of predictions, labels, outcomes and the changelog (all the worker's)."""
    plain: dict[str, Latency] = field(default_factory=dict)
    """The same paced labels through a plain confluent-kafka EOS loop (plain_eos.py):
    with one transactional producer, and with one per partition."""
    workers: int = 1
    """Worker processes sharing the partitions."""


@dataclass
class Phases:
    """The join's batch transactions during a latency run: how many, how many records
    each, and the mean ms of each phase (``driftline_transaction_seconds``)."""

    batches: float
    records: float
    ms: dict[str, float]

    @classmethod
    def between(cls, before: dict[str, float], after: dict[str, float]) -> Phases:
        n = after["count"] - before["count"]
        if n <= 0:
            return cls(0, 0, {})
        ms = {ph: 1e3 * (after[ph] - before[ph]) / n for ph in PHASES}
        return cls(n, (after["records"] - before["records"]) / n, ms)


def phase_totals(procs: list[WorkerProc]) -> dict[str, float]:
    """The workers' join transaction totals: seconds per phase, batches, records read."""
    got: defaultdict[str, float] = defaultdict(float)
    labels = 'loop="join",phase="{}"'
    for proc in procs:
        page = proc.scrape()
        for ph in PHASES:
            got[ph] += proc.metric("driftline_transaction_seconds_sum", labels.format(ph), page)
        got["count"] += proc.metric(
            "driftline_transaction_seconds_count", labels.format("commit"), page
        )
        got["records"] += proc.metric("driftline_events_in_total", 'stage="join"', page)
    return got


def run(
    bootstrap: str, workdir: Path, n: int, rate: float, seconds: float, half_rate: bool,
    warmup: int = 200, src: Path | None = None, name: str = "join",
    broker_pid: int | None = None, settle_s: float = 0.0, workers: int = 1,
) -> JoinResult:  # fmt: skip
    """Pre-fill ``n`` predictions and their labels, time a worker to ``n`` outcomes; then
    hold ``rate * seconds`` more predictions and send their labels at ``rate``/s (and,
    with ``half_rate``, again at half the measured outcome rate), after ``settle_s`` s at
    that rate which are reported apart (:mod:`bench.pipeline.driver`). ``src``: run the
    worker from that tree (an older commit's, for a before/after in one run).
    ``workers``: that many worker processes in one group share the partitions."""
    d = env.deploy(bootstrap, name, workdir, "logistic_regression", 3_000)
    s = d.settings
    events = env.examples(n, seed=21)
    preds = predictions(d.champion, events)
    env.produce_all(s, s.topic("predictions"), preds)
    env.produce_all(s, s.topic("labels"), labels(events))
    watch = Watermarks(s, s.topic("outcomes"))
    procs = [WorkerProc(s, workdir, name, src, instance=i) for i in range(workers)]

    def cpu_s() -> float:
        return sum(p.cpu_s() for p in procs)

    t0 = time.perf_counter()
    for proc in procs:  # all at once, so that one does not drain the backlog alone
        proc.launch()
    latency: dict[str, Latency] = {}
    cores: dict[str, dict[str, float]] = {}
    phases: dict[str, Phases] = {}
    try:
        # watched from the launch: the loops start before the ready line
        # (streams/worker.py), so waiting for it first would miss part of the backlog
        thr = drain(watch, n, cpu_s, t0)
        for proc in procs:
            proc.wait_ready()
        read = 2 * n
        rates = [] if seconds <= 0 else [rate] + ([thr.rate / 2] if half_rate else [])
        for i, r in enumerate(rates):
            held = env.examples(warmup + int(r * (settle_s + seconds)), seed=22 + i)
            env.produce_all(s, s.topic("predictions"), predictions(d.champion, held))
            read += len(held)
            _wait_joined(procs, read)
            paced = Paced(s, s.topic("labels"), s.topic("outcomes"), labels(held), warmup, r,
                          drain_s=300, settle_s=settle_s)  # fmt: skip
            assert paced.proc.pid is not None  # started by Paced
            pids = {"driver": paced.proc.pid} | {
                "worker" + (str(i) if workers > 1 else ""): p.pid for i, p in enumerate(procs)
            }
            if broker_pid is not None:
                pids["broker"] = broker_pid
            before = phase_totals(procs)
            latency[f"{r:.0f}"], cores[f"{r:.0f}"] = _with_cores(paced, pids)
            phases[f"{r:.0f}"] = Phases.between(before, phase_totals(procs))
            read += len(held)
    finally:
        for proc in procs:
            proc.stop()
        watch.close()
    plain: dict[str, Latency] = {}
    if rates and src is None:  # the floor, once per bench run, at the first rate
        floor = labels(env.examples(warmup + int(rate * (settle_s + seconds)), seed=30))
        plain["one producer"] = plain_eos.run(s, floor, warmup, rate, settle_s)
        if s.data_partitions > 1:
            plain["a producer per partition"] = plain_eos.run(
                s, floor, warmup, rate, settle_s, per_partition=True
            )
        for i, r in enumerate(rates[1:]):  # and at the join's other rates (half its capacity)
            floor = labels(env.examples(warmup + int(r * (settle_s + seconds)), seed=31 + i))
            plain[f"one producer, at {r:,.0f}/s"] = plain_eos.run(s, floor, warmup, r, settle_s)
    changelog = f"{s.topic_prefix}{name}-join-changelog".replace(".", "-")
    size = stored_size(s, changelog, preds)
    return JoinResult(thr, latency, size, cores, phases, s.data_partitions, plain, workers)


def _with_cores(paced: Paced, pids: dict[str, int]) -> tuple[Latency, dict[str, float]]:
    """``paced``'s result, and the cores each of ``pids`` used meanwhile (CPU s / wall s)."""
    t0, start = time.monotonic(), {k: proc_cpu_s(p) for k, p in pids.items()}
    end: dict[str, float] = {}
    result = paced.result(
        before_exit=lambda: end.update({k: proc_cpu_s(p) for k, p in pids.items()})
    )
    wall = time.monotonic() - t0
    return result, {k: (end[k] - start[k]) / wall for k in end}


def _wait_joined(procs: list[WorkerProc], count: int, timeout: float = 300) -> None:
    """Until the join agents have read ``count`` records (their events_in counters)."""
    deadline = time.monotonic() + timeout
    seen = 0.0
    while time.monotonic() < deadline:
        seen = sum(p.metric("driftline_events_in_total", 'stage="join"') for p in procs)
        if seen >= count:
            return
        time.sleep(0.2)
    raise TimeoutError(f"join read {seen:.0f} of {count} records in {timeout} s")
