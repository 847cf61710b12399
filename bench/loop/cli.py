"""``python -m bench.loop [--quick] [--workers 2] [--json PATH]``: Driftline's closed loop
against the frozen model, periodic retraining and HoeffdingAdaptiveTree on river's drifting
Agrawal and SEA streams, with labels delayed by 0 and 500 events; plus stationary streams
for false triggers. Prints side-by-side tables and the issue's targets.

``python -m bench.loop --data history.csv|.parquet --label COL [--time COL] [--segment COL]
[--model-config models.toml [--model NAME]] [--delays 0,500]``: the same loop and
baselines on a user's own rows, in order (bench/loop/data.py; docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.loop.data import Source
from bench.loop.runs import Task, run_task

FULL = {"events": 40_000, "drift_every": 10_000, "seeds": 5, "stationary": 200_000}
QUICK = {"events": 12_000, "drift_every": 4_000, "seeds": 1, "stationary": 20_000}
GRID = (1_000, 2_000, 4_000, 8_000)
KINDS = ("agrawal", "sea")
DELAYS = (0, 500)
STATIONARY = {"agrawal": (2, 5), "sea": (1,)}
"""The concepts of the stationary streams, one stream each: the second of each cycle
(Agrawal function 0 is learnt perfectly, which would leave the detectors nothing to
false-alarm on), and Agrawal function 5, the hardest to learn, since the tree learning
its window five times learns function 2 perfectly too."""
TARGETS = {"agrawal": 0.874, "sea": 0.95}
"""Served accuracy the issue asks for with labels delayed by 500 events."""


def data_tasks(args: argparse.Namespace) -> list[Task]:
    """The user's file once per label delay (and seed: the models' seed)."""
    source = Source(
        str(args.data), args.label, args.time, tuple(args.segment), args.id_column,
        tuple(args.drop), None if args.model_config is None else str(args.model_config),
        args.model,
    )  # fmt: skip
    options = {"warmup": args.warmup, "grid": GRID, "tick_every": args.tick_every,
               "serve_lag": args.serve_lag, "retrain": args.retrain}  # fmt: skip
    return [
        Task(source.name, seed, delay, 0, 0, source=source, **options)
        for delay in args.delays
        for seed in args.seeds or [1]
    ]


def tasks(args: argparse.Namespace) -> list[Task]:
    if args.data is not None:
        return data_tasks(args)
    size = QUICK if args.quick else FULL
    seeds = args.seeds or list(range(1, size["seeds"] + 1))
    out = [
        Task(
            kind,
            seed,
            delay,
            size["events"],
            size["drift_every"],
            grid=GRID,
            tick_every=args.tick_every,
            serve_lag=args.serve_lag,
            retrain=args.retrain,
        )
        for kind in args.streams
        for delay in args.delays
        for seed in seeds
    ]
    out += [
        Task(
            kind,
            1,
            500,
            size["stationary"],
            size["stationary"],
            tick_every=args.tick_every,
            serve_lag=args.serve_lag,
            concepts=(concept,),
            retrain=args.retrain,
        )
        for kind in args.streams
        for concept in STATIONARY[kind]
        if not args.no_stationary
    ]
    # the long ones first, so two workers finish together
    return sorted(out, key=lambda t: (t.events if t.stationary else 0, t.kind == "agrawal"),
                  reverse=True)  # fmt: skip


def _run(pool_size: int, todo: list[Task]) -> list[dict[str, Any]]:
    results = []
    t0 = time.perf_counter()
    if pool_size <= 1:
        done: Iterable[dict[str, Any]] = map(run_task, todo)
        results = _progress(done, len(todo), t0)
    else:
        with multiprocessing.get_context("spawn").Pool(pool_size) as pool:
            results = _progress(pool.imap_unordered(run_task, todo), len(todo), t0)
    return results


def _progress(done: Iterable[dict[str, Any]], total: int, t0: float) -> list[dict[str, Any]]:
    results = []
    for k, r in enumerate(done, 1):
        t = r["task"]
        print(
            f"[{k:>3}/{total}] {time.perf_counter() - t0:6.0f}s  {t['kind']:<7} seed {t['seed']}"
            f" delay {t['delay']:>3} events {t['events']:>7,}: driftline "
            f"{r['driftline']['accuracy']:.3f} ({r['driftline']['retrains']} retrains) "
            f"in {r['seconds']:.0f}s",
            file=sys.stderr,
            flush=True,
        )
        results.append(r)
    return results


def _m(xs: Iterable[float]) -> float:
    xs = list(xs)
    return statistics.fmean(xs) if xs else float("nan")


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over seeds per (stream, delay); the stationary runs apart."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    stationary = []
    for r in results:
        t = r["task"]
        if r["stationary"]:
            stationary.append(r)
        else:
            groups.setdefault((t["kind"], t["delay"]), []).append(r)
    rows = []
    for (kind, delay), rs in sorted(groups.items()):
        d = [r["driftline"] for r in rs]
        grid = {
            int(every): {
                "accuracy": _m(r["periodic_grid"][every]["accuracy"] for r in rs),
                "retrains": _m(r["periodic_grid"][every]["retrains"] for r in rs),
            }
            for every in rs[0]["periodic_grid"]
        }
        best = max(grid, key=lambda e: grid[e]["accuracy"])
        acc = _m(x["accuracy"] for x in d)
        matching = [g["retrains"] for g in grid.values() if g["accuracy"] >= acc]
        rows.append(
            {
                "stream": kind,
                "delay": delay,
                "runs": len(rs),
                "driftline": acc,
                "driftline_sd": statistics.pstdev([x["accuracy"] for x in d]),
                "retrains": _m(x["retrains"] for x in d),
                "promotions": _m(x["promotions"] for x in d),
                "frozen": _m(r["frozen"] for r in rs),
                "periodic_same": _m(r["periodic_same"]["accuracy"] for r in rs),
                "periodic_same_every": _m(r["periodic_same"]["every"] for r in rs),
                "periodic_best": grid[best]["accuracy"],
                "periodic_best_every": best,
                "periodic_best_retrains": grid[best]["retrains"],
                "periodic_grid": grid,
                "periodic_retrains_to_match": min(matching) if matching else None,
                "hat": _m(r["hat"] for r in rs),
                "hits": sum(x["hits"] for x in d),
                "possible_hits": sum(len(r["drifts"]) for r in rs),
                "mean_delay": _m(v for x in d for v in x["delays"]),
                "false_alarms": _m(x["false_alarms"] for x in d),
                "feature_alarms": _m(x["feature_alarms"] for x in d),
                "reasons": _sum_counts(x["reasons"] for x in d),
            }
        )
    stat = [
        {
            "stream": f"{r['task']['kind']}-{r['task']['concepts'][0]}",
            "delay": r["task"]["delay"],
            "events": r["task"]["events"],
            "triggers": r["driftline"]["retrains"],
            "reasons": r["driftline"]["reasons"],
            "alarms": len(r["driftline"]["alarms"]),
            "feature_alarms": r["driftline"]["feature_alarms"],
            "accuracy": r["driftline"]["accuracy"],
        }
        for r in sorted(stationary, key=lambda r: (r["task"]["kind"], r["task"]["concepts"]))
    ]
    return {"rows": rows, "stationary": stat}


def _sum_counts(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    return dict(sorted(total.items()))


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join([line, rule, *body])


def report(summary: dict[str, Any]) -> str:
    """The tables (markdown) and the targets."""
    rows = summary["rows"]
    acc = _table(
        ["stream", "delay", "Driftline", "frozen", "periodic (same count)", "periodic (best N)",
         "HAT"],
        [
            [
                r["stream"], str(r["delay"]), f"{r['driftline']:.3f} ± {r['driftline_sd']:.3f}",
                f"{r['frozen']:.3f}",
                f"{r['periodic_same']:.3f} (N≈{r['periodic_same_every']:,.0f})",
                f"{r['periodic_best']:.3f} (N={r['periodic_best_every']:,})", f"{r['hat']:.3f}",
            ]
            for r in rows
        ],
    )  # fmt: skip
    retr = _table(
        ["stream", "delay", "Driftline retrains", "promoted", "periodic (best N) retrains",
         "periodic retrains to match Driftline", "trigger reasons"],
        [
            [
                r["stream"], str(r["delay"]), f"{r['retrains']:.1f}", f"{r['promotions']:.1f}",
                f"{r['periodic_best_retrains']:.0f}",
                "none in grid" if r["periodic_retrains_to_match"] is None
                else f"{r['periodic_retrains_to_match']:.0f}",
                ", ".join(f"{k} {v}" for k, v in r["reasons"].items()),
            ]
            for r in rows
        ],
    )  # fmt: skip
    grid_rows = []
    for r in rows:
        for every, g in sorted(r["periodic_grid"].items()):
            grid_rows.append([r["stream"], str(r["delay"]), f"{every:,}",
                              f"{g['retrains']:.0f}", f"{g['accuracy']:.3f}"])  # fmt: skip
    grid = _table(["stream", "delay", "N", "retrains", "accuracy"], grid_rows)
    det = _table(
        ["stream", "delay", "hits", "mean delay (outcomes)", "false alarms / run",
         "feature/prediction drift alerts / run"],
        [
            [
                r["stream"], str(r["delay"]),
                f"{r['hits']}/{r['possible_hits']}" if r["possible_hits"] else "n/a (unknown)",
                "-" if r["mean_delay"] != r["mean_delay"] else f"{r['mean_delay']:.0f}",
                f"{r['false_alarms']:.1f}", f"{r['feature_alarms']:.1f}",
            ]
            for r in rows
        ],
    )  # fmt: skip
    stat = _table(
        ["stream", "delay", "events", "retrain triggers", "concept alarms", "feature alerts",
         "accuracy"],
        [
            [
                s["stream"], str(s["delay"]), f"{s['events']:,}",
                f"{s['triggers']}" + (f" ({s['reasons']})" if s["reasons"] else ""),
                str(s["alarms"]), str(s["feature_alarms"]), f"{s['accuracy']:.3f}",
            ]
            for s in summary["stationary"]
        ],
    )  # fmt: skip
    sections = [
        "Served accuracy (prequential, replayed events, mean over seeds)\n\n" + acc,
        "Retrains\n\n" + retr,
        "Periodic retraining grid\n\n" + grid,
        "Concept drift detection (alarm within 1,000 events of a drift; n/a: a file's "
        "drift points are unknown, every alarm counts as false)\n\n" + det,
    ]
    if summary["stationary"]:
        sections.append("Stationary stream (false triggers)\n\n" + stat)
    return "\n\n".join([*sections, "Targets\n\n" + "\n".join(targets(summary))])


def targets(summary: dict[str, Any]) -> list[str]:
    lines = []
    for r in summary["rows"]:
        if r["delay"] == 500 and r["stream"] in TARGETS:
            goal = TARGETS[r["stream"]]
            ok = r["driftline"] >= goal
            gap = "" if ok else f", short by {goal - r['driftline']:.3f}"
            lines.append(
                f"- {r['stream']} delay 500: served accuracy {r['driftline']:.3f} >= {goal}: "
                f"{'met' if ok else 'MISSED'}{gap}"
            )
    for s in summary["stationary"]:
        ok = s["triggers"] == 0
        lines.append(
            f"- stationary {s['stream']} ({s['events']:,} events): {s['triggers']} false "
            f"triggers: {'met' if ok else 'MISSED'}"
        )
    for r in summary["rows"]:
        same_ok = r["driftline"] >= r["periodic_same"]
        match = r["periodic_retrains_to_match"]
        fewer_ok = match is None or match > r["retrains"]
        lines.append(
            f"- {r['stream']} delay {r['delay']}: vs periodic with the same retrains "
            f"{r['driftline']:.3f} vs {r['periodic_same']:.3f}; periodic needs "
            f"{'more than the grid offers' if match is None else f'{match:.0f} retrains'} to "
            f"match Driftline's {r['retrains']:.1f}: {'met' if same_ok and fewer_ok else 'MISSED'}"
        )
    return lines


def _list(kind: type) -> Any:
    return lambda text: [kind(v) for v in text.split(",") if v]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.loop", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes (CI)")
    p.add_argument("--streams", type=_list(str), default=list(KINDS), help="agrawal,sea")
    p.add_argument("--delays", type=_list(int), default=list(DELAYS), help="0,500")
    p.add_argument("--seeds", type=_list(int), help="1,2,3,4,5 (quick: 1)")
    p.add_argument("--no-stationary", action="store_true", help="skip the stationary runs")
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    p.add_argument("--tick-every", type=int, default=1_000,
                   help="outcomes between monitor ticks (the demo ticks every ~1,000)")  # fmt: skip
    p.add_argument("--serve-lag", type=int, default=0,
                   help="events between a trigger and its answer serving")  # fmt: skip
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a retrain setting of the demo's model (JSON value), "
                   "e.g. --set growth=1.5")  # fmt: skip
    p.add_argument("--json", type=Path, help="write the raw results and summary here")
    own = p.add_argument_group(
        "your own stream", "replay a CSV or Parquet file's rows instead of river's streams"
    )
    own.add_argument("--data", type=Path, help="history.csv or history.parquet")
    own.add_argument("--label", help="the label column (required with --data)")
    own.add_argument("--time", help="a column that orders the rows (default: file order)")
    own.add_argument("--segment", action="append", default=[], metavar="COL",
                     help="a feature column that is also a segment attribute (repeat)")  # fmt: skip
    own.add_argument("--id-column", default="event_id", help="never a feature (event_id)")
    own.add_argument("--drop", action="append", default=[], metavar="COL",
                     help="a column to ignore (repeat)")  # fmt: skip
    own.add_argument("--model-config", type=Path,
                     help="a models file (default: what `models bootstrap` infers)")  # fmt: skip
    own.add_argument("--model", help="the model of --model-config (default: its only one)")
    own.add_argument("--warmup", type=int, default=2_000,
                     help="rows that train the first champion (default 2,000)")  # fmt: skip
    args = p.parse_args(argv)
    if args.data is not None and not args.label:
        p.error("--data needs --label COL")
    args.retrain = tuple((k, json.loads(v)) for k, _, v in (s.partition("=") for s in args.set))
    t0 = time.perf_counter()
    results = _run(args.workers, tasks(args))
    summary = summarize(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, "results": results}, indent=1))
    print(report(summary))
    print(f"\n{len(results)} runs in {time.perf_counter() - t0:.0f} s", flush=True)
