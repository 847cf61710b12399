"""The bench's tables (markdown) and issue 17's targets, from
:func:`bench.loop.summary.summarize`."""

from __future__ import annotations

import math
from typing import Any

from bench.loop.summary import share

WITHIN = 0.01
"""Kafka served accuracy must be within this of the same loop in process."""
ORACLE_SHARE = 0.8
"""...and take at least this share of the oracle's gain over frozen."""


def _f(x: float | None, fmt: str = ".3f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _table(header: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "(none)"
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join([line, rule, *body])


def _rates(rows: list[dict[str, Any]]) -> list[float]:
    return sorted({rate for r in rows for rate in r["kafka"]})


def _served(rows: list[dict[str, Any]]) -> str:
    rates = _rates(rows)
    header = ["stream", "drift", "delay", "frozen", "periodic (best N)", "HAT", "ARF", "oracle",
              "Driftline in process",
              *(f"Driftline Kafka {r:,.0f}/s (achieved)" for r in rates)]  # fmt: skip
    body = []
    for r in rows:
        n = r["periodic_best_every"]
        cells = [r["stream"], r["drift"], str(r["delay"]), _f(r["frozen"]),
                 f"{_f(r['periodic_best'])} (N={n:,})" if n else "-", _f(r["hat"]),
                 _f(r["arf"]), _f(r["oracle"]), _f(r["process"])]  # fmt: skip
        for rate in rates:
            k = r["kafka"].get(rate)
            cells.append("-" if k is None else f"{_f(k['accuracy'])} ({_f(k['rate'], ',.0f')}/s)")
        body.append(cells)
    return _table(header, body)


def _gains(rows: list[dict[str, Any]]) -> str:
    rates = _rates(rows)
    header = ["stream", "delay", "best baseline", "in process: vs best / oracle share",
              *(f"Kafka {r:,.0f}/s: vs best / oracle share / vs in process"
                for r in rates)]  # fmt: skip
    body = []
    for r in rows:
        if r["drift"] == "none":
            continue

        def cell(acc: float, r: dict[str, Any] = r) -> str:
            return (f"{_f(acc - r['best_baseline'], '+.3f')} / "
                    f"{_f(share(acc, r['frozen'], r['oracle']), '.0%')}")  # fmt: skip

        cells = [r["stream"], str(r["delay"]), _f(r["best_baseline"]), cell(r["process"])]
        for rate in rates:
            k = r["kafka"].get(rate)
            vs = _f(k["accuracy"] - r["process"], "+.3f") if k else ""
            cells.append("-" if k is None else f"{cell(k['accuracy'])} / {vs}")
        body.append(cells)
    return _table(header, body)


def _kafka(rows: list[dict[str, Any]]) -> str:
    header = ["stream", "delay", "target/s", "achieved/s", "waited for the worker s",
              "scoring latency p50 / p99 ms",
              "label to outcome p50, to learnt p50 / p99 s (events)",
              "triggers", "promoted (served)", "challenger", "rejected", "rollbacks",
              "trigger to serving s p50 / p99",
              "events p50 / p99", "missing / duplicate predictions"]  # fmt: skip
    body = []
    for r in rows:
        for rate, k in r["kafka"].items():
            body.append([
                r["stream"], str(r["delay"]), f"{rate:,.0f}", _f(k["rate"], ",.0f"),
                f"{_f(k['paused'], '.0f')} of {_f(k['replay_seconds'], '.0f')}",
                f"{_f(k['latency_p50'], '.0f')} / {_f(k['latency_p99'], '.0f')}",
                _lag(k),
                _f(k["triggers"], ".1f"), f"{_f(k['promotions'], '.1f')} ({k['answers']})",
                _f(k["challengers"], ".1f"), _f(k["rejected"], ".1f"),
                _f(k["rollbacks"], ".1f"),
                f"{_f(k['t2s_s_p50'], '.1f')} / {_f(k['t2s_s_p99'], '.1f')}",
                f"{_f(k['t2s_ev_p50'], ',.0f')} / {_f(k['t2s_ev_p99'], ',.0f')}",
                f"{k['missing']} / {k['duplicates']}" + ("" if k["complete"] else " INCOMPLETE"),
            ])  # fmt: skip
    return _table(header, body)


def _lag(k: dict[str, Any]) -> str:
    """Label to outcome p50, to learnt p50 / p99, in seconds and (at the achieved rate)
    events."""

    def one(ms: float) -> str:
        return f"{_f(ms / 1000, '.2f')} ({_f(ms / 1000 * k['rate'], ',.0f')})"

    return (f"{one(k['outcome_ms_p50'])}, {one(k['learnt_ms_p50'])} / "
            f"{one(k['learnt_ms_p99'])}")  # fmt: skip


def _loop(rows: list[dict[str, Any]]) -> str:
    header = ["stream", "delay", "retrains", "promoted", "challenger", "rejected", "rollbacks",
              "drift hits (alarm < 1,000 events after; gradual: from -w to w + 1,000)",
              "mean delay (outcomes)",
              "alarms outside (false)", "feature alerts", "trigger reasons"]  # fmt: skip
    body = [
        [
            r["stream"], str(r["delay"]), _f(r["retrains"], ".1f"), _f(r["promotions"], ".1f"),
            _f(r["challengers"], ".1f"), _f(r["rejected"], ".1f"), _f(r["rollbacks"], ".1f"),
            f"{r['hits']}/{r['possible_hits']}" if r["possible_hits"] else "no change points",
            _f(r["mean_delay"], ".0f"),
            _f(r["false_alarms"], ".1f") if r["possible_hits"] or r["drift"] == "none"
            else f"({_f(r['alarms'], '.1f')} alarms)",
            _f(r["feature_alarms"], ".1f"),
            ", ".join(f"{k} {v}" for k, v in r["reasons"].items()),
        ]
        for r in rows
        if r["seeds"]
    ]  # fmt: skip
    return _table(header, body)


def _onsets(rows: list[dict[str, Any]]) -> str:
    body = []
    for r in rows:
        paths = [("in process", r["onset"])] if r["seeds"] else []
        paths += [(f"Kafka {rate:,.0f}/s", k["onset"]) for rate, k in r["kafka"].items()]
        for name, o in paths:
            if not o["onsets"]:
                continue
            body.append([r["stream"], str(r["delay"]), name, str(o["onsets"]),
                         f"{o['alarmed']}: {_f(o['alarm_p50'], ',.0f')} / "
                         f"{_f(o['alarm_p99'], ',.0f')}",
                         f"{o['served']}: {_f(o['serving_p50'], ',.0f')} / "
                         f"{_f(o['serving_p99'], ',.0f')}"])  # fmt: skip
    return _table(["stream", "delay", "path", "change points",
                   "alarmed: onset to alarm, events p50 / p99",
                   "served: onset to serving, events p50 / p99"], body)  # fmt: skip


def _grid(rows: list[dict[str, Any]]) -> str:
    out = []
    for r in rows:
        if r["periodic_grid"]:
            g = r["periodic_grid"]
            out.append([r["stream"], str(r["delay"]),
                        " / ".join(f"{_f(g[n]['accuracy'])}" for n in sorted(g)),
                        " / ".join(f"{g[n]['retrains']:.0f}" for n in sorted(g))])  # fmt: skip
    ns = sorted({n for r in rows for n in r["periodic_grid"]})
    label = " / ".join(f"{n:,}" for n in ns)
    return _table(["stream", "delay", f"accuracy at N = {label}", "retrains"], out)


def _cost(rows: list[dict[str, Any]]) -> str:
    def us(wall: float, cpu: float) -> str:
        return f"{_f(cpu, ',.0f')} / {_f(wall, ',.0f')}"

    body = [
        [r["stream"], str(r["delay"]), f"{r['events']:,}" if r["events"] else "-",
         _f(r["loop_seconds"], ".0f"), us(r["hat_us"], r["hat_cpu_us"]),
         us(r["arf_us"], r["arf_cpu_us"]), _f(r["arf_seconds"], ".0f"),
         _f(1e6 / r["arf_cpu_us"], ",.0f") if r["arf_cpu_us"] > 0 else "-"]
        for r in rows
        if r["seeds"]
    ]  # fmt: skip
    return _table(["stream", "delay", "events", "in-process loop s (wall)",
                   "HAT µs/learn CPU / wall", "ARF µs/learn CPU / wall", "ARF learn s (wall)",
                   "ARF learns/s on one core (CPU)"], body)  # fmt: skip


def _stationary(rows: list[dict[str, Any]]) -> str:
    body = []
    for r in rows:
        if r["drift"] != "none":
            continue
        if r["seeds"]:
            body.append([r["stream"], str(r["delay"]), "in process", _f(r["retrains"], ".0f"),
                         _f(r["promotions"], ".0f"), _f(r["rollbacks"], ".0f"),
                         _f(r.get("incidents"), ".0f"), _f(r["process"]), _f(r["frozen"]),
                         _f(r["hat"])])  # fmt: skip
        for rate, k in r["kafka"].items():
            body.append([r["stream"], str(r["delay"]), f"Kafka {rate:,.0f}/s",
                         _f(k["triggers"], ".0f"), _f(k["promotions"], ".0f"),
                         _f(k["rollbacks"], ".0f"), "-", _f(k["accuracy"]), _f(r["frozen"]),
                         _f(r["hat"])])  # fmt: skip
    return _table(["stream", "delay", "path", "retrain triggers", "promotions", "rollbacks",
                   "incidents", "served", "frozen", "HAT"], body)  # fmt: skip


def targets(rows: list[dict[str, Any]]) -> list[str]:
    """Issue 17's targets, one line per stream, delay and path."""
    lines = []
    for r in rows:
        paths: list[tuple[str, float, dict[str, Any] | None]] = (
            [("in process", r["process"], None)] if r["seeds"] else []
        )
        paths += [(f"Kafka {rate:,.0f}/s", k["accuracy"], k) for rate, k in r["kafka"].items()]
        for name, acc, k in paths:
            if math.isnan(acc):
                continue
            head = f"- {r['stream']} delay {r['delay']} {name}: {acc:.3f}"
            if r["drift"] == "none":
                counts = (k["triggers"], k["promotions"], k["rollbacks"]) if k else (
                    r["retrains"], r["promotions"], r["rollbacks"])  # fmt: skip
                ok = all(c == 0 for c in counts)
                lines.append(f"{head}; triggers / promotions / rollbacks "
                             f"{' / '.join(f'{c:.0f}' for c in counts)}: "
                             f"{'met' if ok else 'MISSED'}")  # fmt: skip
                continue
            checks = [(f">= best baseline {_f(r['best_baseline'])}", acc >= r["best_baseline"])]
            if k is not None and not math.isnan(r["process"]):
                checks.append((f"within {WITHIN} of in process {_f(r['process'])}",
                               abs(acc - r["process"]) <= WITHIN))  # fmt: skip
            s = share(acc, r["frozen"], r["oracle"])
            if not math.isnan(s):
                checks.append((f"oracle share {s:.0%} >= {ORACLE_SHARE:.0%}", s >= ORACLE_SHARE))
            lines.append(head + "; " + "; ".join(
                f"{what}: {'met' if ok else 'MISSED'}" for what, ok in checks))  # fmt: skip
    return lines


def report(summary: dict[str, Any]) -> str:
    """Every table and the targets."""
    rows = summary["rows"]
    return "\n\n".join(
        [
            "Served accuracy (prequential over the replayed events; same stream and seed in "
            "every column)\n\n" + _served(rows),
            "Against the best baseline (max of HAT, ARF, periodic at its best N) and the "
            "oracle's gain over frozen\n\n" + _gains(rows),
            "Through Kafka\n\n" + _kafka(rows),
            "The loop in process\n\n" + _loop(rows),
            "Drift onset to alarm and to serving, in events (over the change points of "
            "every seed; an alarm counts when its outcome arrives, label delay included; "
            "serving: the first event served by a version first served after the alarm, "
            "before the next change point)\n\n" + _onsets(rows),
            "Periodic retraining grid\n\n" + _grid(rows),
            "Cost of the online baselines (learn_one only, in the bench's process)\n\n"
            + _cost(rows),
            "Stationary stream\n\n" + _stationary(rows),
            "Targets (issue 17)\n\n" + "\n".join(targets(rows)),
        ]
    )
