"""How many events earlier the estimate-based alert fires than the label-based one when
labels come late, and how often either fires when nothing went wrong.

    .venv/bin/python -m bench.estimate_lead [--events 30000] [--change 10000] [--json]

One model, trained and gated as the trainer does
(:func:`driftline.core.lifecycle.training.bootstrap`: a logistic regression on 5,000
events of ``P(y) = sigmoid(4 * x0)``, x1 unused; calibrated on its held-out rows,
isotonic); then each stream goes through the monitor's own code
(:class:`~driftline.core.watch.monitor.ModelMonitor`, window 1,000, a tick every 100
events, event time = 1 s per event), its labels held back by ``delay`` events
(and for the ``10%`` setting, only one label in ten ever produced). Streams, the change
at event ``--change``:

* ``stationary``: nothing changes (any alert is false).
* ``virtual``: x1 (unused) moves from N(0, 1) to N(3, 1) (any performance alert is false).
* ``abrupt``: x0's spread falls from 1 to 0.25: inputs crowd the boundary, accuracy falls
  from ~0.88 to ~0.62, and the scores show it.
* ``gradual``: the same fall, over the 10,000 events after the change.
* ``concept``: the concept flips (``sigmoid(-4 * x0)``): accuracy collapses and the scores
  do not show it; CBPE is expected to miss it (reported, not hidden).

For each stream and label setting: the first event at which the incident of
``estimated_performance_degradation`` (from predictions alone) and of
``performance_degradation`` (realized, on labels) fires, the lead of the first over the
second in events, and the count of such incidents opened before the change (false
alarms; on ``stationary`` and ``virtual`` every one is false). Parameters fixed before the
first run (2026-12-07): 30,000 events, change at 10,000, delays 2,000 and 10,000, seed 1.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Callable
from typing import Any

from driftline.core.lifecycle.training import bootstrap
from driftline.core.model.config import ModelConfig
from driftline.core.model.estimators import load_version
from driftline.core.watch.monitor import ModelMonitor

KEY = b"bench-estimate-lead-key-32-bytes"
T0 = 1_700_000_000_000
STEP_MS = 1_000
TICK = 100
EST, REAL = "estimated_performance_degradation", "performance_degradation"
Draw = Callable[[random.Random, int], tuple[dict[str, float], bool]]


def _stream(change: int, events: int, kind: str) -> Draw:
    def draw(rng: random.Random, i: int) -> tuple[dict[str, float], bool]:
        after = i >= change
        spread, shift, sign = 1.0, 0.0, 1.0
        if after and kind == "abrupt":
            spread = 0.25
        elif after and kind == "gradual":
            spread = 1.0 - 0.75 * min(1.0, (i - change) / 10_000)
        elif after and kind == "virtual":
            shift = 3.0
        elif after and kind == "concept":
            sign = -1.0
        x0 = rng.gauss(0, spread)
        y = rng.random() < 1 / (1 + math.exp(-sign * 4 * x0))
        return {"x0": x0, "x1": rng.gauss(shift, 1)}, y

    return draw


STREAMS = ("stationary", "virtual", "abrupt", "gradual", "concept")
SETTINGS = ((2_000, 1.0), (10_000, 1.0), (2_000, 0.1))
"""(label delay in events, share of events ever labelled)."""


def champion(seed: int = 1) -> tuple[ModelConfig, dict[str, Any]]:
    rng = random.Random(seed)
    draw = _stream(10**9, 0, "stationary")
    rows = []
    for i in range(5_000):
        x, y = draw(rng, i)
        rows.append({"event_id": f"r{i}", "features": x, "label": y, "segment": {},
                     "event_time_ms": T0 - 10**8 + i})  # fmt: skip
    config = ModelConfig("m", factory="logistic_regression", positive_class="True")
    _, records = bootstrap(rows, config, key=KEY, by="bench", reason="bench", now_ms=T0)
    return config, records[-1]


def run(
    config: ModelConfig, record: dict[str, Any], stream: str, delay: int, share: float,
    events: int, change: int, seed: int = 1,
) -> dict[str, Any]:  # fmt: skip
    served = load_version(record, KEY)
    mon = ModelMonitor(config)
    mon.on_version(record, T0)
    draw = _stream(change, events, stream)
    rng = random.Random(seed * 1_000 + STREAMS.index(stream))
    held: list[tuple[dict[str, Any], bool]] = []
    first: dict[str, int] = {}
    false: dict[str, set[str]] = {EST: set(), REAL: set()}
    harmless = stream in ("stationary", "virtual")  # every performance alert is false
    version = str(record["version"])
    t_cpu = time.process_time()
    for i in range(events + delay):
        now = T0 + i * STEP_MS
        if i < events:
            x, y = draw(rng, i)
            yp, scores = served.predict_one(x)
            p = {
                "event_id": f"e{i}", "model": "m", "version": version, "event_time_ms": now,
                "predicted_at_ms": now, "prediction": yp, "scores": scores, "features": x,
                "segment": {}, "latency_us": 0, "served_by": "bench", "challengers": None,
            }  # fmt: skip
            mon.observe_prediction(p, now)
            held.append((p, y))
        emits = []
        j = i - delay  # the label of event j arrives now
        if j >= 0 and (share >= 1 or rng.random() < share):
            p, y = held[j]
            o = {**p, "label": y, "label_time_ms": now}
            emits += mon.observe_outcome(o, now, (version, p["event_time_ms"]))
        if i % TICK == TICK - 1:
            emits += mon.tick(now)
        for e in emits:
            v = e.value
            if e.topic != "alerts" or v.get("state") != "firing" or v["kind"] not in false:
                continue
            first.setdefault(v["kind"], i)
            if harmless or i < change:
                false[v["kind"]].add(v["incident_id"])
    cpu = time.process_time() - t_cpu
    est, real = first.get(EST), first.get(REAL)
    return {
        "stream": stream,
        "delay": delay,
        "labelled": share,
        "estimated_fires_at": est,
        "realized_fires_at": real,
        "lead": None if est is None or real is None else real - est,
        "false_estimated": len(false[EST]),
        "false_realized": len(false[REAL]),
        "cpu_s": cpu,
    }


def _at(v: int | None, change: int) -> str:
    return "never" if v is None else f"{v - change:+,}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=30_000)
    ap.add_argument("--change", type=int, default=10_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    config, record = champion()
    results = [run(config, record, s, d, q, args.events, args.change)
               for s in STREAMS for d, q in SETTINGS]  # fmt: skip
    if args.json:
        print(json.dumps(results, indent=2))
        return
    cal = record["calibration"]
    acc = record["metrics"]["accuracy"]
    print(f"champion {record['version']}: held-out accuracy {acc:.3f}, calibration "
          f"{cal['method']}; change at event {args.change:,} of {args.events:,}")  # fmt: skip
    print(f"{'stream':<11} {'delay':>6} {'labelled':>8} {'estimate fires':>14} {'labels fire':>11}"
          f" {'lead':>7} {'false est.':>10} {'false real.':>11} {'cpu s':>6}")  # fmt: skip
    for r in results:
        lead = "-" if r["lead"] is None else f"{r['lead']:,}"
        print(f"{r['stream']:<11} {r['delay']:>6,} {r['labelled']:>8.0%} "
              f"{_at(r['estimated_fires_at'], args.change):>14} "
              f"{_at(r['realized_fires_at'], args.change):>11} {lead:>7} "
              f"{r['false_estimated']:>10} {r['false_realized']:>11} "
              f"{r['cpu_s']:>6.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
