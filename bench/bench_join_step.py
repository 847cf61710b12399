"""Thread-CPU µs per join step (``Joiner.on_message``), predictions held whole against
held lean (driftline/core/leanentry.py), in one process, on the throughput bench's
10-feature churn predictions and their labels.

Run: .venv/bin/python bench/bench_join_step.py [N]  (not a test: timings vary by machine)
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pipeline import env
from driftline.core.codec import default_codec
from driftline.core.deadletter import Origin
from driftline.core.joiner import Joiner

T0 = 1_700_000_000_000


def messages(n: int) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    codec = default_codec()
    preds, labels = [], []
    for e in env.examples(n, seed=1):
        event = env.feature_event(e)
        p = {**{k: event[k] for k in ("event_id", "model", "event_time_ms", "features")},
             "segment": event.get("segment", {}), "version": "v0001-0a1b2c",
             "predicted_at_ms": event["event_time_ms"] + 5, "prediction": True,
             "scores": {"True": 0.7, "False": 0.3}, "latency_us": 40,
             "served_by": "driftline"}  # fmt: skip
        key = event["event_id"].encode()
        preds.append((key, codec.encode("Prediction", p)))
        labels.append((key, codec.encode("Label", env.label_record(e))))
    return preds, labels


def one_run(lean: bool, preds: list[tuple[bytes, bytes]], labels: list[tuple[bytes, bytes]]
            ) -> tuple[float, float, float]:  # fmt: skip
    """µs per prediction, µs per label, mean bytes of a pending entry."""
    joiner = Joiner(default_codec(), lambda m: "classification", lambda m: 600_000, "p")
    store: dict[bytes, bytes] = {}
    lookup = store.get if lean else None

    def feed(msgs: list[tuple[bytes, bytes]]) -> float:
        t = time.thread_time()
        for key, value in msgs:
            step = joiner.on_message(Origin("p", 0, 0, key, None, []), value, store.get(key),
                                     T0, lookup)  # fmt: skip
            store.update(step.extra)
            if not step.keep and step.entry is not None:
                store[key] = step.entry
        return (time.thread_time() - t) / len(msgs) * 1e6

    per_prediction = feed(preds)
    size = statistics.fmean(len(store[k]) for k, _ in preds)
    return per_prediction, feed(labels), size


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000
    preds, labels = messages(n)
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


if __name__ == "__main__":
    main()
