"""Thread-CPU µs per join step, on the throughput bench's 10-feature churn predictions
and their labels (each with the four headers Driftline's scorer and client library write:
content type, schema, event time, trace id), in one process:

1. ``Joiner.on_message``, predictions held whole against held lean
   (driftline/core/join/leanentry.py);
2. the whole ``JoinLoop.process`` (batches of 500, in-memory store, the unit tests'
   fake consumer and producer: no broker), with Python's default garbage-collection
   thresholds against the worker's (``driftline.streams.app.tune_gc``), each in a fresh
   child process.

With ``--challengers K`` every prediction carries K challengers' predictions (Prediction
v2), which the join copies into the outcome.

Run: .venv/bin/python bench/bench_join_step.py [N] [--challengers K]  (not a test: timings
vary by machine)
"""

from __future__ import annotations

import gc
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pipeline import env
from driftline.core.join.joiner import Joiner
from driftline.core.join.keys import ENTRY_PREFIX
from driftline.core.wire.codec import default_codec
from driftline.core.wire.deadletter import Origin
from driftline.core.wire.headers import build as record_headers
from driftline.core.wire.headers import new_trace_id

T0 = 1_700_000_000_000

Message = tuple[bytes, bytes, list[tuple[str, bytes]]]
"""key, value, headers"""


def messages(n: int, challengers: int = 0) -> tuple[list[Message], list[Message]]:
    codec = default_codec()
    others = [{"version": f"v{9 - k:04d}-challenger", "prediction": bool(k % 2),
               "scores": {"True": 0.6, "False": 0.4}} for k in range(challengers)]  # fmt: skip
    preds: list[Message] = []
    labels: list[Message] = []
    for e in env.examples(n, seed=1):
        event = env.feature_event(e)
        p = {**{k: event[k] for k in ("event_id", "model", "event_time_ms", "features")},
             "segment": event.get("segment", {}), "version": "v0001-0a1b2c",
             "predicted_at_ms": event["event_time_ms"] + 5, "prediction": True,
             "scores": {"True": 0.7, "False": 0.3}, "latency_us": 40,
             "served_by": "driftline", "challengers": others or None}  # fmt: skip
        key = event["event_id"].encode()
        trace = new_trace_id()
        lab = env.label_record(e)
        p_hdrs = record_headers("io.driftline.Prediction", p["event_time_ms"], trace)
        l_hdrs = record_headers("io.driftline.Label", lab["label_time_ms"], trace)
        preds.append((key, codec.encode("Prediction", p), p_hdrs))
        labels.append((key, codec.encode("Label", lab), l_hdrs))
    return preds, labels


def one_run(lean: bool, preds: list[Message], labels: list[Message]
            ) -> tuple[float, float, float]:  # fmt: skip
    """µs per prediction, µs per label, mean bytes of a pending entry."""
    joiner = Joiner(default_codec(), lambda m: "classification", lambda m: 600_000, "p", "l",
                    lean=lean)  # fmt: skip
    store: dict[bytes, bytes | None] = {}

    def feed(msgs: list[Message]) -> float:
        t = time.thread_time()
        for offset, (key, value, hdrs) in enumerate(msgs):
            origin = Origin("p", 0, 1_000_000 + offset, key, T0, list(hdrs))
            step = joiner.on_message(origin, value, T0, store.get)
            store.update(step.extra)
            if not step.keep and step.key is not None and step.entry is not None:
                store[step.key] = step.entry
        return (time.thread_time() - t) / len(msgs) * 1e6

    per_prediction = feed(preds)
    held = [v for k, v in store.items() if k.startswith(ENTRY_PREFIX) and v is not None]
    size = statistics.fmean(len(v) for v in held)
    return per_prediction, feed(labels), size


def loop_run(tuned: bool, n: int, challengers: int = 0) -> None:
    """One child's run of part 2: prints µs per prediction and per label."""
    from driftline.streams.app import tune_gc
    from driftline.streams.joinstore import MemoryStore
    from tests.unit.streams.fakemsg import Msg
    from tests.unit.streams.test_join_loop import Rig

    preds, labels = messages(n, challengers)
    if tuned:
        tune_gc()
    rig = Rig(MemoryStore())
    rig.loop.joiner.ttl_of = lambda m: 600_000
    rig.loop.joiner.task_of = lambda m: "classification"

    def feed(items: list[Message], topic: str) -> float:
        msgs = [Msg(topic, 2, 1_000_000 + i, k, v, hs) for i, (k, v, hs) in enumerate(items)]
        t = time.thread_time()
        for i in range(0, len(msgs), 500):
            rig.loop.process(msgs[i : i + 500], rig.now)  # type: ignore[arg-type]  # a fake Message
        return (time.thread_time() - t) / len(msgs) * 1e6

    print(feed(preds, "t.predictions"), feed(labels, "t.labels"), gc.get_threshold()[0])


def main() -> None:
    args = sys.argv[1:]
    challengers = 0
    if "--challengers" in args:
        at = args.index("--challengers")
        challengers = int(args[at + 1])
        del args[at : at + 2]
    if len(args) > 1 and args[0] == "--loop-child":
        mode, count = args[1], int(args[2])
        del sys.argv[1:]  # Faust, imported by the worker's modules, reads the command line
        loop_run(mode == "tuned", count, challengers)
        return
    n = int(args[0]) if args else 5_000
    preds, labels = messages(n, challengers)
    if challengers:
        print(f"every prediction carries {challengers} challengers' predictions")
    rows: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    for _ in range(5):  # alternate, so that both see the same machine
        for lean in (False, True):
            rows[lean].append(one_run(lean, preds, labels))
    print(f"Joiner.on_message, {n:,} predictions then their labels, thread CPU, "
          "median of 5 alternating runs")  # fmt: skip
    print("| held | µs per prediction | µs per label | bytes per pending entry |")
    print("|---|---|---|---|")
    for lean, runs in rows.items():
        p, lab, size = (statistics.median(x) for x in zip(*runs, strict=True))
        print(f"| {'lean' if lean else 'whole'} | {p:.1f} | {lab:.1f} | {size:.0f} |")
    loops: dict[str, list[tuple[float, float]]] = {"default": [], "tuned": []}
    for _ in range(5):
        for mode, pairs in loops.items():
            child = [sys.executable, __file__, "--loop-child", mode, str(4 * n),
                     "--challengers", str(challengers)]  # fmt: skip
            out = subprocess.run(child, capture_output=True, text=True, check=True).stdout
            p, lab, _ = out.split()
            pairs.append((float(p), float(lab)))
    print(f"\nJoinLoop.process, {4 * n:,} predictions then their labels (lean), fake clients, "
          "thread CPU, median of 5 alternating child processes")  # fmt: skip
    print("| garbage collection | µs per prediction | µs per label |")
    print("|---|---|---|")
    for mode, pairs in loops.items():
        p, lab = (statistics.median(x) for x in zip(*pairs, strict=True))
        what = "tune_gc (50,000, 20, 100)" if mode == "tuned" else "Python's (700, 10, 10)"
        print(f"| {what} | {p:.1f} | {lab:.1f} |")


if __name__ == "__main__":
    main()
