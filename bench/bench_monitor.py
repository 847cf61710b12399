"""Thread-CPU µs per outcome of the monitor's rolling metrics
(``driftline.core.watch.performance.PerformanceTracker.update``: the whole model and each segment,
count window and time bucket), on the throughput bench's churn examples (segments
region and channel), binary (a positive class) and multiclass (none).

With ``--src DIR`` (e.g. ``git archive REV | tar -x -C DIR``) the same timing runs with
that tree's driftline too, as "before": each tree in its own child process, alternating,
``--rounds`` times; medians are printed side by side.

Run: .venv/bin/python bench/bench_monitor.py [--src DIR] [--outcomes N] [--rounds R]
(not a test: timings vary by machine)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, random, sys, time
from driftline.core.watch.performance import PerformanceTracker
n = int(sys.argv[1])
rng = random.Random(7)
regions, channels = ["eu", "us", "apac", "latam"], ["web", "ios", "android"]
outcomes = []
for i in range(n):
    p = rng.random()
    outcomes.append({
        "event_time_ms": 1_700_000_000_000 + 20 * i, "prediction": p >= 0.5,
        "label": rng.random() < p, "scores": {"True": p, "False": 1 - p},
        "segment": {"region": rng.choice(regions), "channel": rng.choice(channels)},
    })
out = {}
for name, positive in (("binary", True), ("multiclass", None)):
    tracker = PerformanceTracker("churn", "v1", "classification", positive=positive)
    t = time.thread_time()
    for o in outcomes:
        tracker.update(o)
    out[name] = (time.thread_time() - t) / n * 1e6
    out[name + " snapshot"] = tracker.snapshot(0)[0]["metrics"]
print(json.dumps(out))
"""


def child(src: Path, n: int) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(n)], env=env, check=True,
                         capture_output=True, text=True, cwd=src)  # fmt: skip
    result: dict[str, object] = json.loads(out.stdout)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, help="also time this tree's driftline, as 'before'")
    ap.add_argument("--outcomes", type=int, default=30_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    trees = {"this tree": ROOT, **({"before": args.src} if args.src else {})}
    runs: dict[str, list[dict[str, object]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, src in trees.items():
            runs[name].append(child(src, args.outcomes))
    print(f"PerformanceTracker.update, thread CPU µs per outcome (median of {args.rounds} "
          f"child processes per tree, {args.outcomes:,} outcomes each, 3 segments)")  # fmt: skip
    print("| tree | binary | multiclass |")
    print("|---|---|---|")
    for name, results in runs.items():
        cells = [statistics.median(float(r[k]) for r in results)  # type: ignore[arg-type]
                 for k in ("binary", "multiclass")]  # fmt: skip
        print(f"| {name} | {cells[0]:.1f} | {cells[1]:.1f} |")
    if args.src:  # the metrics themselves must not change
        same = all(runs["this tree"][0][k] == runs["before"][0][k]
                   for k in ("binary snapshot", "multiclass snapshot"))  # fmt: skip
        print(f"\nsnapshot metrics identical in both trees: {same}")


if __name__ == "__main__":
    main()
