"""``python -m bench.gate_trial [--quick] [--seeds 1,2,3,4,5] [--json PATH]``: the trial
of issue 23 in one process, under the gate and policy before and after the change.

The trial: a linear regression with a date among its features (a monotonic feature that
always drifts) was retrained on a feature-drift trigger after 148 outcomes, gated on 35
held-out rows ("mae 3.39 vs champion 7.56"), promoted, and served an MAE of 30.7 against
7.0 before. Here, per stream, the same first champion (a ``linear_regression`` trained
on the first 500 rows and published as the trial published it, without a gate) serves
the rest of the stream; each label arrives with its event. A date's PSI against any
earlier profile is always over the threshold, so every 50 outcomes the monitor's
feature-drift signal reaches the real :class:`RetrainPolicy` (cooldown 100 events, one
event a second), and each trigger is answered by the trainer's own
:func:`~driftline.core.lifecycle.answer.answer_trigger`; a new champion serves from the
next event. Rules, same streams, same process:

* **before**: the old rule: a feature drift fired whatever ``min_rows`` said (here
  ``min_rows = 1``) and the gate compared point estimates on any number of held-out
  rows (``GateConfig(improvement_alpha=None, min_holdout_rows=1)``);
* **after, min_rows N**: the project's default gate (``GateConfig()``: a 95% bound,
  100 held-out rows at least), with the team's ``min_rows = 148`` (what fired in the
  trial), 500, and the default 2,000.

Streams: river's bundled TrumpApproval (1,001 rows; ``ordinal_date`` monotonic; no
download) and a synthetic one per seed (3,000 rows: ``y = 3 x1 - 2 x2 + N(0, 1)`` with
``x1, x2 ~ N(0, 1)`` and a ``day`` feature counting up, which ``y`` ignores).

A promotion is **worse** when the new champion's MAE over the events it served is higher
than the MAE of the champion it replaced on the same events (both are scored on every
event), and **significantly worse** when the one-sided paired t bound (95%) of the
replaced champion's gain over the new one on those events is above 0.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from river import datasets

from driftline.core.lifecycle.answer import answer_trigger
from driftline.core.lifecycle.improvement import improvement_bound
from driftline.core.lifecycle.registry import Registry
from driftline.core.lifecycle.training import stage_records, train
from driftline.core.model.config import GateConfig, ModelConfig, ModelsConfig
from driftline.core.model.estimators import ServedModel, load_version
from driftline.core.watch.concept_drift import DriftEvent
from driftline.core.watch.retrain_policy import MIN_ROWS, RetrainPolicy

KEY = b"bench-gate-trial"
MODEL = "approval"
WARM = 500
SIGNAL_EVERY = 50
COOLDOWN_EVENTS = 100
OLD_GATE = GateConfig(improvement_alpha=None, min_holdout_rows=1)
RULES: dict[str, tuple[GateConfig, int]] = {
    "before": (OLD_GATE, 1),
    "after, min_rows 148": (GateConfig(), 148),
    "after, min_rows 500": (GateConfig(), 500),
    f"after, min_rows {MIN_ROWS:,} (default)": (GateConfig(), MIN_ROWS),
}

Row = dict[str, Any]


def trump() -> list[Row]:
    data = datasets.TrumpApproval()  # type: ignore[no-untyped-call]
    return [_row(i, x, y) for i, (x, y) in enumerate(data)]


def synthetic(seed: int, n: int = 3_000) -> list[Row]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x1, x2 = rng.gauss(0, 1), rng.gauss(0, 1)
        out.append(_row(i, {"day": 736_000 + i, "x1": x1, "x2": x2},
                        3 * x1 - 2 * x2 + rng.gauss(0, 1)))  # fmt: skip
    return out


def _row(i: int, features: dict[str, Any], label: float) -> Row:
    return {"event_id": f"e{i}", "event_time_ms": i * 1_000, "features": features,
            "label": float(label), "segment": {}}  # fmt: skip


@dataclass
class Result:
    stream: str
    rule: str
    triggers: int = 0
    stages: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    """Failed checks of the candidates not promoted."""
    promotions: list[dict[str, Any]] = field(default_factory=list)
    served_mae: float = 0.0
    frozen_mae: float = 0.0

    @property
    def worse(self) -> int:
        return sum(p["new_mae"] > p["old_mae"] for p in self.promotions)

    @property
    def significantly_worse(self) -> int:
        return sum(p["significant"] for p in self.promotions)


def first_champion(rows: list[Row], config: ModelConfig) -> tuple[list[dict[str, Any]], str]:
    """The trial's first champion, published without a gate; and the verdict the new gate
    gives it against the mean of its training labels."""
    run = train(rows, config, key=KEY, now_ms=WARM * 1_000, code="bench", host="bench")
    later = stage_records(run.record, "champion", current=[], by="bench",
                          reason="the trial's champion", now_ms=WARM * 1_000)  # fmt: skip
    records = [run.record, *later]
    return records, run.verdict["summary"]


def run(stream: str, rows: list[Row], rule: str) -> Result:
    gate, min_rows = RULES[rule]
    config = ModelConfig(MODEL, task="regression", factory="linear_regression", gate=gate,
                         retrain={"min_rows": min_rows})  # fmt: skip
    records, _ = first_champion(rows[:WARM], config)
    registry = Registry.from_records(records)
    models = ModelsConfig({MODEL: config})
    policy = RetrainPolicy(MODEL, min_rows=min_rows, cooldown_ms=COOLDOWN_EVENTS * 1_000,
                           drift_reasons=["feature_drift"])  # fmt: skip
    served = frozen = _champion(registry)
    policy.on_version(served.version, "champion", 0, 0)
    res = Result(stream, rule)
    outcomes: list[Row] = []
    served_err, frozen_err = [], []
    since: list[tuple[int, ServedModel, ServedModel]] = []  # (from event, old, new)
    for i, row in enumerate(rows[WARM:], start=WARM):
        now = i * 1_000
        served_err.append(_err(served, row))
        frozen_err.append(_err(frozen, row))
        outcomes.append(row)
        policy.observe_outcomes(1, now)
        if len(outcomes) % SIGNAL_EVERY == 0:
            event = DriftEvent("feature_drift", MODEL, served.version, "psi", now,
                               n=len(outcomes), feature=_date(row), statistic=5.0,
                               threshold=0.2, p_value=1e-12)  # fmt: skip
            trigger = policy.observe_drift(event, now)
        else:
            trigger = policy.tick(now)
        if trigger is None:
            continue
        res.triggers += 1
        answer = answer_trigger(
            trigger, outcomes, registry, models, key=KEY,
            clock_ms=functools.partial(int, now), code="bench", host="bench",
        )  # fmt: skip
        res.stages[answer.stage] += 1
        if answer.verdict is not None and answer.stage != "champion":
            res.reasons.update(c for c, ok in answer.verdict["checks"].items() if not ok)
        for record in answer.records:
            registry.apply(record)
            lineage = record.get("lineage") or {}
            policy.on_version(record["version"], record["stage"], record["created_at_ms"], now,
                              trigger_id=lineage.get("trigger_id"))  # fmt: skip
        if answer.stage == "champion":
            new = _champion(registry)
            since.append((i + 1, served, new))
            served = new
    for k, (start, old, new) in enumerate(since):
        end = since[k + 1][0] if k + 1 < len(since) else len(rows)
        window = rows[start:end]
        if window:
            old_err = [_err(old, r) for r in window]
            new_err = [_err(new, r) for r in window]
            old_better = improvement_bound(new_err, old_err, "regression", 0.05)
            res.promotions.append({
                "at": start, "old": old.version, "new": new.version, "events": len(window),
                "old_mae": statistics.fmean(old_err), "new_mae": statistics.fmean(new_err),
                "significant": old_better.bound > 0,
            })  # fmt: skip
    res.served_mae = statistics.fmean(served_err)
    res.frozen_mae = statistics.fmean(frozen_err)
    return res


def _champion(registry: Registry) -> ServedModel:
    record = registry.champion(MODEL)
    assert record is not None
    return load_version(record, KEY)


def _err(model: ServedModel, row: Row) -> float:
    value, _ = model.predict_one(row["features"])
    return abs(float(value) - float(row["label"]))


def _date(row: Row) -> str:
    return "ordinal_date" if "ordinal_date" in row["features"] else "day"


def report(results: list[Result], bootstraps: dict[str, str]) -> str:
    lines = [
        "| stream | rule | triggers | promoted | worse (significantly) | kept as challenger |"
        " rejected (failed checks) | served MAE | frozen MAE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        why = ", ".join(f"{c} {n}" for c, n in sorted(r.reasons.items())) or "-"
        lines.append(
            f"| {r.stream} | {r.rule} | {r.triggers} | {r.stages['champion']} | "
            f"**{r.worse}** ({r.significantly_worse}) | {r.stages['challenger']} | "
            f"{r.stages['rejected']} ({why}) | "
            f"{r.served_mae:.3f} | {r.frozen_mae:.3f} |"
        )
    lines.append("")
    lines.append("Worse promotions (new champion's MAE over the events it served, against the")
    lines.append("champion it replaced on the same events):")
    for r in results:
        for p in r.promotions:
            if p["new_mae"] > p["old_mae"]:
                lines.append(f"- {r.stream}, {r.rule}: event {p['at']}: {p['old']} -> {p['new']},"
                             f" {p['events']} events, MAE {p['old_mae']:.3f} -> {p['new_mae']:.3f}"
                             + (" (significant)" if p["significant"] else ""))  # fmt: skip
    lines.append("")
    lines.append("The first champion under the new gate (against the mean of its training labels):")
    for stream, summary in bootstraps.items():
        lines.append(f"- {stream}: {summary.split('; p95')[0]}")
    totals: dict[str, list[int]] = {}
    for r in results:
        t = totals.setdefault(r.rule, [0, 0, 0])
        t[0] += r.stages["champion"]
        t[1] += r.worse
        t[2] += r.significantly_worse
    lines.append("")
    for rule, (promoted, worse, significant) in totals.items():
        lines.append(f"- {rule}: {promoted} promotions, {worse} worse, {significant} significantly")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.gate_trial", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--quick", action="store_true", help="TrumpApproval and one synthetic seed")
    p.add_argument("--seeds", default="1,2,3,4,5", help="synthetic stream seeds")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    seeds = [1] if args.quick else [int(s) for s in args.seeds.split(",") if s]
    streams = {"trump": trump(), **{f"synthetic-{s}": synthetic(s) for s in seeds}}
    bootstraps = {}
    for name, rows in streams.items():
        cfg = ModelConfig(MODEL, task="regression", factory="linear_regression")
        bootstraps[name] = first_champion(rows[:WARM], cfg)[1]
    results = [run(name, rows, rule) for name, rows in streams.items() for rule in RULES]
    print(report(results, bootstraps))
    print(f"\n{len(results)} runs in {time.perf_counter() - t0:.0f} s", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        out = [r.__dict__ | {"worse": r.worse, "significantly_worse": r.significantly_worse}
               for r in results]  # fmt: skip
        args.json.write_text(json.dumps(out, indent=1, default=dict))
    for label, mine in (("before", True), ("after", False)):
        some = [r for r in results if (r.rule == "before") is mine]
        print(f"{label}: {sum(r.worse for r in some)} worse promotions "
              f"({sum(r.significantly_worse for r in some)} significantly)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
