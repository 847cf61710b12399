"""The demo's report: served accuracy over time against a frozen model, with drifts,
incidents (from opened to resolved), retrain triggers and version switches marked; the
drifting features ranked, each with its drift statistic over time and its reference
against its current distribution; the incidents with their lifecycle; each version's
lineage and gate verdict. Writes ``report.html`` (plots embedded) and the PNGs beside it."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

from driftline.core.lifecycle.importance import ranked
from driftline.core.watch.incidents import duration_text

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def rolling(points: Sequence[tuple[int, bool]], window: int) -> tuple[list[int], list[float]]:
    """Rolling accuracy over ``window`` events of (index, correct) pairs in index order.

    >>> rolling([(0, True), (1, False), (2, True), (3, True)], 2)
    ([1, 2, 3], [0.5, 0.5, 1.0])
    """
    xs: list[int] = []
    ys: list[float] = []
    total = 0
    for k, (i, ok) in enumerate(points):
        total += ok
        if k >= window:
            total -= points[k - window][1]
        if k >= window - 1:
            xs.append(i)
            ys.append(total / window)
    return xs, ys


def accuracy_after(points: Sequence[tuple[int, bool]], start: int) -> float:
    """Accuracy of the points at or after index ``start``."""
    kept = [ok for i, ok in points if i >= start]
    return sum(kept) / len(kept) if kept else float("nan")


def reaction(
    triggers: Sequence[Mapping[str, Any]],
    versions: Sequence[Mapping[str, Any]],
    first_served: Mapping[str, tuple[int, int]],
    event_ms: Mapping[int, int],
) -> list[dict[str, Any]]:
    """Per retrain trigger, how fast it was answered and served: ``answer_s`` from the
    trigger's creation to its answer's stage record (the trainer's whole run), and for an
    answer that served, ``serve_s`` to its first prediction and ``serve_events``: events
    published from the trigger to that prediction.

    >>> t = {"trigger_id": "t1", "created_at_ms": 1_000, "reasons": ["drift"]}
    >>> v = [{"version": "v2", "stage": "candidate", "stage_changed_at_ms": 2_000,
    ...       "lineage": {"trigger_id": "t1"}},
    ...      {"version": "v2", "stage": "champion", "stage_changed_at_ms": 2_500,
    ...       "lineage": {"trigger_id": "t1"}}]
    >>> row = reaction([t], v, {"v2": (30, 3_000)}, {i: 900 + 10 * i for i in range(40)})[0]
    >>> row["version"], row["stage"], row["answer_s"], row["serve_s"], row["serve_events"]
    ('v2', 'champion', 1.5, 2.0, 20)
    """
    times = sorted((ms, i) for i, ms in event_ms.items())
    out = []
    for t in triggers:
        mine = [
            v for v in versions if (v.get("lineage") or {}).get("trigger_id") == t["trigger_id"]
        ]
        row: dict[str, Any] = {"trigger": t["trigger_id"], "reasons": ",".join(t["reasons"]),
                               "version": None, "stage": "unanswered", "answer_s": None,
                               "serve_s": None, "serve_events": None}  # fmt: skip
        if mine:
            staged = [v for v in mine if v["stage"] != "candidate"] or mine
            answered = staged[0]["stage_changed_at_ms"] - t["created_at_ms"]
            row.update(version=mine[0]["version"], stage=staged[0]["stage"],
                       answer_s=answered / 1000)  # fmt: skip
        served = first_served.get(row["version"] or "")
        if served is not None:
            at = [i for ms, i in times if ms <= t["created_at_ms"]]
            row["serve_s"] = (served[1] - t["created_at_ms"]) / 1000
            row["serve_events"] = served[0] - (at[-1] if at else 0)
        out.append(row)
    return out


def percentiles(values: Sequence[float | None]) -> dict[str, float | None]:
    """p50 and p99 (linear interpolation) of the values that are not None, and their count.

    >>> percentiles([1.0, None, 3.0, 2.0])
    {'n': 3, 'p50': 2.0, 'p99': 2.98}
    """
    xs = sorted(float(x) for x in values if x is not None)
    if not xs:
        return {"n": 0, "p50": None, "p99": None}

    def q(f: float) -> float:
        k = (len(xs) - 1) * f
        lo = int(k)
        hi = min(lo + 1, len(xs) - 1)
        return round(xs[lo] + (xs[hi] - xs[lo]) * (k - lo), 3)

    return {"n": len(xs), "p50": q(0.5), "p99": q(0.99)}


Position = int | str
"""Where a record arrived: a stream position (the demo) or a time (``driftline report``)."""
DEMO_POSITIONS = "stream positions: the outcomes seen when the record arrived"


Span = tuple[int, int | None, str]
"""An incident on the stream: (opened at, resolved at or None while firing, cause)."""


def spans(incidents: Iterable[Sequence[tuple[int, Mapping[str, Any]]]], last: int) -> list[Span]:
    """Each incident's records ((stream position, record), in order) as a span, ending
    at ``last`` while it is still firing.

    >>> spans([[(10, {"kind": "concept_drift", "state": "firing"}),
    ...         (40, {"kind": "concept_drift", "state": "resolved"})],
    ...        [(30, {"kind": "skew_rate", "state": "firing"})]], last=50)
    [(10, 40, 'concept_drift'), (30, None, 'skew_rate')]
    """
    out: list[Span] = []
    for records in incidents:
        opened, first = records[0]
        end, latest = records[-1]
        out.append((opened, end if latest["state"] == "resolved" else None, first["kind"]))
    return out


def plot(
    path: Path,
    served: Sequence[tuple[int, bool]],
    frozen: Sequence[tuple[int, bool]],
    drifts: Sequence[int],
    marks: Mapping[str, Sequence[tuple[int, str]]],
    window: int,
    title: str,
    incidents: Sequence[Span] = (),
) -> None:
    """Served and frozen rolling accuracy with vertical marks, and each incident as a
    bar near the top, from opened to resolved (to the end, dashed, while firing)."""
    fig, ax = plt.subplots(figsize=(12, 5), dpi=110)
    for points, label, style in (
        (served, "served (Driftline)", "-"),
        (frozen, "frozen initial model", "--"),
    ):
        xs, ys = rolling(points, window)
        ax.plot(xs, ys, style, label=label, linewidth=1.6)
    for d in drifts:
        ax.axvline(d, color="black", linewidth=1.2, alpha=0.6)
    colours = {"alerts": "tab:orange", "triggers": "tab:red", "promotions": "tab:green"}
    for kind, items in marks.items():
        for k, (i, text) in enumerate(items):
            ax.axvline(i, color=colours.get(kind, "grey"), linestyle=":", linewidth=1.2,
                       label=kind if k == 0 else None)  # fmt: skip
            if kind == "promotions":
                ax.annotate(text, (i, 0.02), rotation=90, fontsize=7, color=colours[kind])
    causes = sorted({c for _, _, c in incidents})
    last = max((i for i, _ in served), default=0)
    for start, end, cause in incidents:
        y = 0.99 - 0.03 * causes.index(cause)
        colour = f"C{3 + causes.index(cause)}"
        ax.plot([start, last if end is None else end], [y, y], color=colour, linewidth=4,
                solid_capstyle="butt", linestyle="--" if end is None else "-",
                label=f"incident: {cause}" if start == min(s for s, _, c in incidents
                                                          if c == cause) else None)  # fmt: skip
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("event (stream position); black lines: concept changes")
    ax.set_ylabel(f"accuracy over the last {window} outcomes")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _png(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _lineage_rows(versions: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for v in versions:
        lin = v.get("lineage") or {}
        gate = v.get("gate") or {}
        ranges = ", ".join(
            f"{r['topic']}[{r['partition']}] {r['start_offset']}..{r['end_offset']}"
            for r in lin.get("data_ranges", [])
        )
        metrics = ", ".join(f"{k} {val:.3f}" for k, val in sorted(v.get("metrics", {}).items())[:4])
        cal = v.get("calibration") or {}
        calibration = (
            f"{cal['method']}, ECE {cal['ece_before']:.3f} -> {cal['ece_after']:.3f}"
            if cal
            else "-"
        )
        top = ", ".join(f"{f} {m:.3f} ± {sd:.3f}" for f, m, sd in ranked(lin.get("importance"))[:3])
        rows.append(
            "<tr>" + "".join(
                f"<td>{html.escape(str(c))}</td>"
                for c in (v["version"], v["stage"], v["stage_reason"], lin.get("rows", ""),
                          ranges or "(bootstrap)", metrics, calibration, top or "-",
                          gate.get("summary", "(no gate)"))
            ) + "</tr>"
        )  # fmt: skip
    return "\n".join(rows)


def estimate_rows(checks: Iterable[tuple[Position, Mapping[str, Any]]]) -> str:
    """One row per chunk the estimator was checked on (``estimate-check:N`` snapshots of
    segment 'all', in stream order): estimated accuracy and its band (from predictions
    alone), realized accuracy once labels came, the error and the running mean absolute
    error, the labelled share.

    >>> row = estimate_rows([(2000, {"version": "v1", "window_start_ms": 5, "metrics": {
    ...     "estimated_accuracy": 0.8, "estimated_accuracy_lower": 0.78,
    ...     "estimated_accuracy_upper": 0.82, "realized_accuracy": 0.79,
    ...     "estimation_error_accuracy": -0.01, "estimation_mae_accuracy": 0.012,
    ...     "labelled_share": 1.0}})])
    >>> "<td>0.800 [0.780, 0.820]</td><td>0.790</td><td>-0.010</td><td>0.012</td>" in row
    True
    """
    rows = []
    for at, snap in sorted(checks, key=lambda c: c[0]):
        m = snap["metrics"]
        cells = (
            snap["version"], at,
            f"{m['estimated_accuracy']:.3f} [{m['estimated_accuracy_lower']:.3f}, "
            f"{m['estimated_accuracy_upper']:.3f}]",
            f"{m['realized_accuracy']:.3f}", f"{m['estimation_error_accuracy']:+.3f}",
            f"{m['estimation_mae_accuracy']:.3f}", f"{m['labelled_share']:.0%}",
        )  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return "\n".join(rows)


def _incident_rows(incidents: Sequence[Sequence[tuple[Position, Mapping[str, Any]]]]) -> str:
    rows = []
    for records in incidents:
        opened, first = records[0]
        end, latest = records[-1]
        resolved = latest["state"] == "resolved"
        rows.append(
            "<tr>" + "".join(
                f"<td>{html.escape(str(c))}</td>"
                for c in (first["kind"], latest["severity"],
                          "resolved" if resolved else "FIRING", opened,
                          end if resolved else "-",
                          duration_text(latest["duration_ms"]) if resolved else "-",
                          ", ".join(latest.get("segments") or []),
                          ", ".join(latest.get("versions") or []), first["message"],
                          latest["message"] if resolved else "")
            ) + "</tr>"
        )  # fmt: skip
    return "\n".join(rows)


def write(out: Path, summary: Mapping[str, Any], plot_path: Path,
          versions: Sequence[Mapping[str, Any]], events: Sequence[str],
          incidents: Sequence[Sequence[tuple[Position, Mapping[str, Any]]]] = (),
          checks: Iterable[tuple[Position, Mapping[str, Any]]] = (), *,
          title: str = "Driftline demo",
          plot_heading: str = "Served accuracy against a frozen model",
          positions: str = DEMO_POSITIONS, drift: str = "") -> Path:  # fmt: skip
    """Write report.html (and summary.json) into ``out``; returns the HTML path.
    ``drift``: the per-feature drift panel's HTML (:func:`driftline.demo.drift_panel.section`)."""
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in summary.items()
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)} report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1300px}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;
text-align:left;font-size:13px}}img{{max-width:100%}}pre{{font-size:12px;background:#f6f6f6;
padding:1em;white-space:pre-wrap}}</style></head><body>
<h1>{html.escape(title)}</h1>
<table>{rows}</table>
<h2>{html.escape(plot_heading)}</h2>
<img alt="{html.escape(plot_heading)}" src="data:image/png;base64,{_png(plot_path)}">
{drift}
<h2>Incidents</h2>
<p>One per model and cause, from the first alert to the evidence that it cleared
({html.escape(positions)}).</p>
<table><tr><th>cause</th><th>severity</th><th>state</th><th>opened at</th><th>resolved at</th>
<th>lasted</th><th>segments</th><th>versions</th><th>what opened it</th>
<th>how it cleared</th></tr>
{_incident_rows(incidents)}</table>
<h2>Estimated against realized accuracy</h2>
<p>Each chunk of predictions was estimated from the model's calibrated scores alone (CBPE),
before its labels came; once they did, the realized accuracy says how far off the estimate
was (stream position: the outcomes seen when the check arrived).</p>
<table><tr><th>version</th><th>checked at</th><th>estimated [95% band]</th><th>realized</th>
<th>error</th><th>mean abs. error</th><th>labelled</th></tr>
{estimate_rows(checks) or '<tr><td colspan="7">no chunk checked yet</td></tr>'}</table>
<h2>Versions, lineage and gate verdicts</h2>
<table><tr><th>version</th><th>stage</th><th>why</th><th>rows</th>
<th>training data (Kafka offsets)</th><th>validation metrics</th><th>calibration</th>
<th>importance (top 3)</th><th>gate</th></tr>
{_lineage_rows(versions)}</table>
<h2>What happened</h2><pre>{html.escape(chr(10).join(events))}</pre>
</body></html>"""
    path = out / "report.html"
    path.write_text(page)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return path
