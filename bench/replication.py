"""What replication costs the scorer: replication factor 1 on one broker against
replication factor 3 (min.insync.replicas 2) on a cluster of three nodes, in the same run
on the same machine (issue 26).

    python bench/replication.py [--quick] [--events N] [--rounds R] [--rate R]

Starts a single broker (infra/kafka/broker.sh) and a three-node cluster
(infra/kafka/cluster.sh), both in temp dirs, and keeps both running, so that every round
measures each in turn under the same load. Per round and system, on fresh topics (a
10-feature churn model, ``bench/pipeline``):

- (a1) throughput: ``ScorerLoop`` in process drains a backlog of ``--events`` features,
  one Kafka transaction per batch with its input offsets: events/s, CPU µs per event of
  this process and of the brokers' JVMs (all nodes), and ms per batch in each phase of
  its transaction (``driftline_transaction_seconds``: work, deliver, offsets, commit);
- latency: features produced at ``--rate``/s (default: half of the slower system's
  throughput) with their CreateTime, predictions read back (p50/p99 of read time -
  CreateTime).

Every producer is Driftline's (``acks=all``, idempotent; the scorer's transactional),
so with replication factor 3 a batch commits only once two replicas hold it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pipeline import env, loops
from bench.pipeline.driver import Latency, Paced
from bench.pipeline.report import log, summary, table

ROOT = Path(__file__).resolve().parents[1]
FACTORY = "logistic_regression"


@dataclass
class System:
    name: str
    bootstrap: str
    replication: int
    pids: list[int]
    runs: list[loops.Run] = field(default_factory=list)
    latency: list[Latency] = field(default_factory=list)
    broker_us: list[float] = field(default_factory=list)  # brokers' CPU µs per event
    phases: list[dict[str, float]] = field(default_factory=list)  # ms per batch


def jvm_cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (/proc/PID/stat)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


PHASES = ("work", "deliver", "offsets", "commit")


def phase_totals() -> dict[str, tuple[float, float]]:
    """(seconds, batches) of every phase of the scorer's transactions in this process."""
    from prometheus_client import REGISTRY

    out = {}
    for p in PHASES:
        labels = {"loop": "scorer", "phase": p}
        total = REGISTRY.get_sample_value("driftline_transaction_seconds_sum", labels) or 0.0
        count = REGISTRY.get_sample_value("driftline_transaction_seconds_count", labels) or 0.0
        out[p] = (total, count)
    return out


def pids_of(d: Path) -> list[int]:
    files = (
        [d / "broker.pid"] if (d / "broker.pid").exists() else sorted(d.glob("node*/broker.pid"))
    )
    return [int(f.read_text().strip()) for f in files]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def start(script: str, d: Path, *args: str) -> str:
    cmd = ["bash", str(ROOT / "infra/kafka" / script), "up", "--dir", str(d), *args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    return out.stdout.strip().splitlines()[-1]


def stop(script: str, d: Path) -> None:
    subprocess.run(["bash", str(ROOT / "infra/kafka" / script), "down", "--purge", "--dir",
                    str(d)], check=False, capture_output=True, timeout=120)  # fmt: skip


def throughput(sys_: System, work: Path, events: int, k: int) -> loops.Run:
    d = env.deploy(sys_.bootstrap, f"r{sys_.replication}t{k}", work, FACTORY, 3_000,
                   replication_factor=sys_.replication)  # fmt: skip
    recs = env.encode_all(
        "io.driftline.FeatureEvent", map(env.feature_event, env.examples(events, seed=5))
    )
    env.produce_all(d.settings, d.settings.topic("features"), recs)
    cpu0, phases0 = jvm_cpu_s(sys_.pids), phase_totals()
    run = loops.run_scorer(d.settings, d.champion, events)
    cpu1, phases1 = jvm_cpu_s(sys_.pids), phase_totals()
    # the brokers' CPU over the scorer's whole run (its window is most of it)
    sys_.broker_us.append((cpu1 - cpu0) / events * 1e6)
    sys_.phases.append({
        p: 1000 * (phases1[p][0] - phases0[p][0]) / max(1.0, phases1[p][1] - phases0[p][1])
        for p in PHASES
    })  # fmt: skip
    return run


def latency(sys_: System, work: Path, rate: float, seconds: float, k: int) -> Latency:
    d = env.deploy(sys_.bootstrap, f"r{sys_.replication}l{k}", work, FACTORY, 3_000,
                   replication_factor=sys_.replication)  # fmt: skip
    warmup = 200
    recs = env.encode_all(
        "io.driftline.FeatureEvent",
        map(env.feature_event, env.examples(warmup + int(rate * seconds), seed=9)),
    )
    done = threading.Event()
    loops.run_scorer_until(d.settings, d.champion, done)
    try:
        s = d.settings
        return Paced(s, s.topic("features"), s.topic("predictions"), recs, warmup, rate,
                     settle_s=1.0).result()  # fmt: skip
    finally:
        done.set()


def median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (one round)")
    ap.add_argument("--events", type=int, help="features per throughput run (50,000)")
    ap.add_argument("--rounds", type=int, help="turns of RF 1 and RF 3 (3)")
    ap.add_argument("--rate", type=float, help="features/s of the latency runs (half of RF 1's)")
    ap.add_argument("--seconds", type=float, default=10.0, help="latency runs' length")
    a = ap.parse_args(argv)
    events = a.events or (5_000 if a.quick else 50_000)
    rounds = a.rounds or (1 if a.quick else 3)
    t0 = time.monotonic()
    log(f"{date.today()}, {os.cpu_count()} cores, load {load()}; {events} events, "
        f"{rounds} rounds")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="driftline-replication-"))
    systems: list[System] = []
    try:
        one = start("broker.sh", work / "one", "--port", "auto")
        systems.append(System("RF 1, one broker", one, 1, pids_of(work / "one")))
        three = start("cluster.sh", work / "three")
        systems.append(System("RF 3, three nodes", three, 3, pids_of(work / "three")))
        log("brokers up: " + "; ".join(f"{s.name} {s.bootstrap}" for s in systems))
        for k in range(rounds):
            for s in systems:
                s.runs.append(throughput(s, work, events, k))
                log(f"round {k + 1} {s.name}: {summary(s.runs[-1])}  load {load()}")
        rate = a.rate or min(median([r.rate for r in s.runs]) for s in systems) / 2
        seconds = 3.0 if a.quick else a.seconds
        for k in range(rounds):
            for s in systems:
                s.latency.append(latency(s, work, rate, seconds, k))
                log(f"round {k + 1} {s.name} latency: {summary(s.latency[-1])}  load {load()}")
    finally:
        stop("broker.sh", work / "one")
        stop("cluster.sh", work / "three")
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(report(systems, rate))
    print(f"\n{time.monotonic() - t0:.0f} s; load {load()} at the end")


def report(systems: list[System], rate: float) -> str:
    rows = [["system", "scorer events/s (median, runs)", "CPU µs/event: scorer / brokers",
             "ms per batch: work / deliver / offsets / commit",
             f"read p50 / p99 ms at {rate:,.0f}/s (median of runs)"]]  # fmt: skip
    for s in systems:
        rates = [r.rate for r in s.runs]
        phases = " / ".join(f"{median([ph[p] for ph in s.phases]):.1f}" for p in PHASES)
        rows.append([
            s.name, f"{median(rates):,.0f} ({', '.join(f'{x:,.0f}' for x in rates)})",
            f"{median([r.cpu_us for r in s.runs]):.1f} / {median(s.broker_us):.1f}",
            phases,
            f"{median([x.read[0] for x in s.latency]):.0f} / "
            f"{median([x.read[1] for x in s.latency]):.0f}",
        ])  # fmt: skip
    one, three = (median([r.rate for r in s.runs]) for s in systems)
    return table(rows) + f"\n\nthroughput RF 3 / RF 1: {three / one:.2f} (target: at least 0.7)"


if __name__ == "__main__":
    main()
