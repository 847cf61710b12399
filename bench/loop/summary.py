"""The bench's results, grouped: one row per stream and label delay (means over seeds)
with the in-process loop, every baseline and each Kafka rate side by side; the Kafka
runs' details; the stationary stream apart."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Any

from bench.loop.lineage import percentile
from driftline.demo.synthetic import KINDS, change_points, kind

BASELINES = ("hat", "arf", "periodic_best")
"""What the loop must beat (issue 17): the best of these per stream and delay."""


def _m(xs: Iterable[float | None]) -> float:
    v = [x for x in xs if x is not None and not math.isnan(x)]
    return statistics.fmean(v) if v else math.nan


def share(loop: float, frozen: float, oracle: float) -> float:
    """The loop's share of the oracle's gain over frozen (NaN without a gain).

    >>> round(share(0.85, 0.55, 0.95), 3), share(0.9, 0.9, 0.9)
    (0.75, nan)
    """
    gain = oracle - frozen
    return (loop - frozen) / gain if gain > 0 else math.nan


def onsets(runs: Iterable[list[dict[str, Any]]]) -> dict[str, Any]:
    """Drift onset to alarm and to serving in events, pooled over every run's change
    points (:func:`bench.loop.lineage.onset_delays`): p50 and p99 of those that have one,
    and how many have one.

    >>> onsets([[{"alarm": 40, "serving": 200}, {"alarm": 900, "serving": None}],
    ...         [{"alarm": None, "serving": None}]])
    {'onsets': 3, 'alarmed': 2, 'served': 1, 'alarm_p50': 40, 'alarm_p99': 900, 'serving_p50': 200, 'serving_p99': 200}
    """  # noqa: E501
    flat = [o for run in runs for o in run]
    out: dict[str, Any] = {"onsets": len(flat)}
    for what, n in (("alarm", "alarmed"), ("serving", "served")):
        out[n] = sum(1 for o in flat if o[what] is not None)
    for what in ("alarm", "serving"):
        v = [o[what] for o in flat if o[what] is not None]
        out[f"{what}_p50"], out[f"{what}_p99"] = percentile(v, 50), percentile(v, 99)
    return out


def summarize(process: list[dict[str, Any]], kafka: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows keyed by (stream, delay); each Kafka rate in its own column."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in process:
        groups.setdefault((r["task"]["kind"], r["task"]["delay"]), []).append(r)
    kgroups: dict[tuple[str, int], dict[float, list[dict[str, Any]]]] = {}
    for k in kafka:
        t = k["task"]
        kgroups.setdefault((t["kind"], t["delay"]), {}).setdefault(t["rate"], []).append(k)
    rows = []
    for key in sorted(set(groups) | set(kgroups), key=lambda k: (_order(k[0]), k[1])):
        rs = groups.get(key, [])
        rows.append(_row(key, rs, kgroups.get(key, {})))
    return {"rows": rows}


def _order(stream: str) -> int:
    return list(KINDS).index(stream) if stream in KINDS else len(KINDS)


def _row(
    key: tuple[str, int], rs: list[dict[str, Any]], by_rate: dict[float, list[dict[str, Any]]]
) -> dict[str, Any]:
    stream, delay = key
    d = [r["driftline"] for r in rs]
    row: dict[str, Any] = {
        "stream": stream,
        "drift": kind(stream).drift if stream in KINDS else "unknown",  # else: a user's file
        "delay": delay,
        "seeds": sorted({r["task"]["seed"] for r in rs}),
        "events": rs[0]["task"]["events"] if rs else None,
        "process": _m(x["accuracy"] for x in d),
        "process_sd": statistics.pstdev([x["accuracy"] for x in d]) if d else math.nan,
        "retrains": _m(x["retrains"] for x in d),
        "promotions": _m(x["promotions"] for x in d),
        "rollbacks": _m(x.get("rollbacks", 0) for x in d),
        "incidents": _m((x.get("incidents") or {}).get("opened", 0) for x in d),
        "incidents_firing": _m((x.get("incidents") or {}).get("firing_at_end", 0) for x in d),
        "challengers": _m(x.get("challengers", 0) for x in d),
        "rejected": _m(x.get("rejected", 0) for x in d),
        "reasons": _sum_counts(x["reasons"] for x in d),
        "hits": sum(x["hits"] for x in d),
        "possible_hits": sum(len(_points(r["task"])) for r in rs),
        "alarms": _m(len(x["alarms"]) for x in d),
        "mean_delay": _m(v for x in d for v in x["delays"]),
        "false_alarms": _m(x["false_alarms"] for x in d),
        "feature_alarms": _m(x["feature_alarms"] for x in d),
        "onset": onsets(x.get("onset_delays", []) for x in d),
        "frozen": _m(r.get("frozen") for r in rs),
        "hat": _m(r.get("hat") for r in rs),
        "arf": _m(r.get("arf") for r in rs),
        "oracle": _m((r.get("oracle") or {}).get("accuracy") for r in rs),
        "oracle_retrains": _m((r.get("oracle") or {}).get("retrains") for r in rs),
        "hat_us": _m(r["hat_cost"]["us_per_learn"] for r in rs if "hat_cost" in r),
        "arf_us": _m(r["arf_cost"]["us_per_learn"] for r in rs if "arf_cost" in r),
        "hat_cpu_us": _m(r["hat_cost"].get("cpu_us_per_learn") for r in rs if "hat_cost" in r),
        "arf_cpu_us": _m(r["arf_cost"].get("cpu_us_per_learn") for r in rs if "arf_cost" in r),
        "arf_seconds": _m(r["arf_cost"]["learn_seconds"] for r in rs if "arf_cost" in r),
        "loop_seconds": _m(r.get("seconds_loop") for r in rs),
    }
    grid: dict[int, dict[str, float]] = {}
    for every in rs[0].get("periodic_grid", {}) if rs else {}:
        grid[int(every)] = {
            "accuracy": _m(r["periodic_grid"][every]["accuracy"] for r in rs),
            "retrains": _m(r["periodic_grid"][every]["retrains"] for r in rs),
        }
    row["periodic_grid"] = grid
    best = max(grid, key=lambda e: grid[e]["accuracy"]) if grid else None
    row["periodic_best"] = grid[best]["accuracy"] if best is not None else math.nan
    row["periodic_best_every"] = best
    row["best_baseline"] = max((row[b] for b in BASELINES if not math.isnan(row[b])),
                               default=math.nan)  # fmt: skip
    row["kafka"] = {rate: _kafka(ks) for rate, ks in sorted(by_rate.items())}
    return row


def _kafka(ks: list[dict[str, Any]]) -> dict[str, Any]:
    def p(field: str, q: str) -> float:
        return _m(k[field][q] for k in ks)

    return {
        "runs": len(ks),
        "accuracy": _m(k["accuracy"] for k in ks),
        "rate": _m(k["rate"] for k in ks),
        "paused": _m(k.get("paused_seconds") for k in ks),
        "replay_seconds": _m(k.get("replay_seconds") for k in ks),
        "latency_p50": p("latency_ms", "p50"),
        "latency_p99": p("latency_ms", "p99"),
        "triggers": _m(k["triggers"] for k in ks),
        "promotions": _m(k["promotions"] for k in ks),
        "rollbacks": _m(k["rollbacks"] for k in ks),
        "challengers": _m(k.get("challengers", 0) for k in ks),
        "rejected": _m(k["rejected"] for k in ks),
        "reasons": _sum_counts(k["reasons"] for k in ks),
        "t2s_s_p50": p("t2s_seconds", "p50"),
        "t2s_s_p99": p("t2s_seconds", "p99"),
        "t2s_ev_p50": p("t2s_events", "p50"),
        "t2s_ev_p99": p("t2s_events", "p99"),
        "outcome_ms_p50": _m(k.get("label_to_outcome_ms", {}).get("p50") for k in ks),
        "learnt_ms_p50": _m(k.get("label_to_learnt_ms", {}).get("p50") for k in ks),
        "learnt_ms_p99": _m(k.get("label_to_learnt_ms", {}).get("p99") for k in ks),
        "answers": sum(len(k["trigger_to_serving"]) for k in ks),
        "onset": onsets(k.get("onset_delays", []) for k in ks),
        "missing": sum(k["missing"] for k in ks),
        "duplicates": sum(k["duplicates"] for k in ks),
        "complete": all(k["complete"] for k in ks),
        "seconds": _m(k["seconds"] for k in ks),
    }


def _points(task: dict[str, Any]) -> list[int]:
    if task["kind"] not in KINDS:  # a user's file: its drift points are not known
        return []
    return change_points(task["kind"], task["events"], task["drift_every"])


def _sum_counts(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    return dict(sorted(total.items()))
