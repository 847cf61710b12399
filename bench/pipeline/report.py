"""The bench's tables (Markdown, so they paste into docs/benchmarks.md)."""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING

from bench.pipeline.driver import Latency
from bench.pipeline.loops import Run
from bench.pipeline.worker import Drain

if TYPE_CHECKING:
    from bench.pipeline.cli import FactoryResult
    from bench.pipeline.join import JoinResult

NAMES = {
    "a1": "(a1) ScorerLoop, in process",
    "a1 before": "(a1) before: re-encode, consume(n, t)",
    "a2": "(a2) driftline worker process",
    "a2 before": "(a2) before (--worker-src)",
    "a3": "(a3) roles as processes: score + join",
    "b": "(b) plain confluent-kafka loop",
    "b2": "(b2) plain loop + plain join (dict)",
    "b @ a2/2": "(b) at half of (a2)'s capacity",
    "a2 @ a2/2": "(a2) at half of its own capacity",
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def summary(r: Run | Drain | Latency) -> str:
    if isinstance(r, Latency):
        return (
            f"{r.received}/{r.sent} at {r.achieved:,.0f}/s: stamp p50 {r.stamp[0]:.0f} "
            f"p99 {r.stamp[1]:.0f} ms, read p50 {r.read[0]:.1f} p99 {r.read[1]:.1f} ms"
        )
    return f"{r.events} in {r.wall_s:.2f} s = {r.rate:,.0f}/s, {r.cpu_us:.1f} µs CPU each"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in rows]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _span(values: list[float]) -> str:
    return f" ({min(values):,.0f}-{max(values):,.0f})" if len(values) > 1 else ""


def _throughput(r: FactoryResult, events: int) -> str:
    b = r.runs["b"]
    b_rate = statistics.median(x.rate for x in b)
    b_cpu = statistics.median(x.cpu_us for x in b)
    b2 = r.runs.get("b2")
    b2_cpu = statistics.median(x.cpu_us for x in b2) if b2 else None
    rows = [["system", "events/s: median (range)", "a/b", "CPU µs/event", "b/a by CPU",
             "CPU ÷ b", "CPU ÷ b2"]]  # fmt: skip

    def ratios(cpu: float) -> list[str]:
        return [f"{b_cpu / cpu:.2f}", f"{cpu / b_cpu:.2f}",
                "" if b2_cpu is None else f"{cpu / b2_cpu:.2f}"]  # fmt: skip

    for name, runs in r.runs.items():
        rates, cpus = [x.rate for x in runs], [x.cpu_us for x in runs]
        rate, cpu = statistics.median(rates), statistics.median(cpus)
        rows.append([NAMES[name], f"{rate:,.0f}{_span(rates)}", f"{rate / b_rate:.2f}",
                     f"{cpu:.1f}{_span(cpus)}", *ratios(cpu)])  # fmt: skip
    for name, w in r.workers.items():
        drains = r.worker_runs.get(name) or [w]
        rates, cpus = [x.rate for x in drains], [x.cpu_us for x in drains]
        rows.append([NAMES[name], f"{w.rate:,.0f}{_span(rates)}", f"{w.rate / b_rate:.2f}",
                     f"{w.cpu_us:.1f}{_span(cpus)}", *ratios(w.cpu_us)])  # fmt: skip
    head = (
        f"Validate + score (+ hold each prediction in the join, monitor), {r.factory}, "
        f"{events:,} events per run; CPU summed over a system's processes"
    )
    return head + "\n" + table(rows)


def _latency(r: FactoryResult) -> str:
    rows = [["system", "offered/s", "achieved/s", "received", "stamp p50 / p99 ms",
             "read p50 / p99 ms"]]  # fmt: skip
    for name, x in r.latency.items():
        rows.append([NAMES[name], f"{x.rate:,.0f}", f"{x.achieved:,.0f}",
                     f"{x.received}/{x.sent}", f"{x.stamp[0]:.0f} / {x.stamp[1]:.0f}",
                     f"{x.read[0]:.1f} / {x.read[1]:.1f}"])  # fmt: skip
    return (f"End-to-end latency, {r.factory}, at half of (a1)'s median (and of (a2)'s "
            f"where named)\n" + table(rows))  # fmt: skip


def _latency_rows(what: str, x: Latency, target: str = "") -> list[list[str]]:
    """A latency run's rows: Kafka timestamps (stamp), then as a consumer read it, of the
    records sent after the settling period; then both over the whole run."""
    rows = [
        [f"{what} p50 / p99 at {x.rate:,.0f} labels/s (stamp)",
         f"{x.stamp[0]:,.0f} / {x.stamp[1]:,.0f} ms, {x.received}/{x.sent} "
         f"(offered at {x.achieved:,.0f}/s)", target],
        ["  same, read by a consumer", f"{x.read[0]:,.1f} / {x.read[1]:,.1f} ms", ""],
    ]  # fmt: skip
    if x.settle_s:
        rows.append([f"  whole run, first {x.settle_s:g} s at the rate included (stamp; read)",
                     f"{x.stamp_all[0]:,.0f} / {x.stamp_all[1]:,.0f} ms; "
                     f"{x.read_all[0]:,.1f} / {x.read_all[1]:,.1f} ms", ""])  # fmt: skip
    return rows


def _join(j: JoinResult, tag: str = "") -> str:
    t, s = j.throughput, j.size
    rows = [
        ["join", "value", "target"],
        ["label -> outcome throughput, " + ("one worker" if j.workers == 1 else
         f"{j.workers} workers"), f"{t.rate:,.0f} outcomes/s", ""],
        [("worker" if j.workers == 1 else "workers'") + " CPU per outcome",
         f"{t.cpu_us:,.0f} µs", ""],
        ["bytes per pending prediction (join entry as stored)",
         f"{s.entry:.0f} (header {s.header}); held whole it was {s.header + s.prediction:.0f}",
         "<= 300"],
        ["(names records, all partitions)", f"{s.names} bytes", ""],
        ["(event_id key, stored beside it)", f"{s.key:.0f}", ""],
    ]  # fmt: skip
    for x in j.latency.values():
        rows += _latency_rows("label -> outcome", x, "p99 <= 50 ms" if x.rate == 5_000 else "")
        cores = j.cores.get(f"{x.rate:.0f}", {})
        if cores:
            rows.append(
                [
                    "  cores used meanwhile (CPU s / wall s)",
                    ", ".join(f"{k} {v:.2f}" for k, v in sorted(cores.items())),
                    "",
                ]
            )
        ph = j.phases.get(f"{x.rate:.0f}")
        if ph is not None and ph.batches:
            rows.append([f"  its {ph.batches:,.0f} transactions, {ph.records:,.0f} records each: "
                         "ms per phase", ", ".join(f"{k} {v:.1f}" for k, v in ph.ms.items()),
                         ""])  # fmt: skip
    for how, x in j.plain.items():
        rows += _latency_rows(f"plain EOS loop, {how}", x)
    for i, x in enumerate(j.latency.values()):  # the join against the floor at its rate
        floor = next((f for f in j.plain.values() if round(f.rate) == round(x.rate)), None)
        if floor is not None and floor.stamp[1] > 0 and floor.read[1] > 0:
            ratio = f"{x.stamp[1] / floor.stamp[1]:.2f}; {x.read[1] / floor.read[1]:.2f}"
            rows.append([f"join p99 / floor p99 at {x.rate:,.0f} labels/s (stamp; read)",
                         ratio, "<= 1.5 at half" if i else ""])  # fmt: skip
    who = ("one worker owns all" if j.workers == 1
           else f"{j.workers} worker processes of one group share the")  # fmt: skip
    head = (f"Join{tag}: {t.events:,} predictions and their labels pre-filled; {who} "
            f"{j.partitions} partitions of each topic")  # fmt: skip
    return head + "\n" + table(rows)


def report(results: list[FactoryResult], joined: dict[str, JoinResult], events: int) -> str:
    out = []
    for r in results:
        out += [_throughput(r, events), ""]
        if r.latency:
            out += [_latency(r), ""]
    for tag, j in joined.items():
        out += [_join(j, tag), ""]
    return "\n".join(out)
