"""The report of any model (``driftline report MODEL``), built from what Driftline
published: the metrics topic (each version's rolling primary metric over time, segment
``all``, the count window), the alerts topic (incidents from opened to resolved, and
notices) and the registry (versions, lineage, gate verdicts, stage changes). The same
page as the demo's (:mod:`driftline.demo.report` writes it), on a time axis instead of
the demo's stream positions, with no frozen model to compare against. Pure apart from
the files it writes; the command reads the topics.

>>> snaps = [{"model": "m", "version": "v1", "segment": "all", "window": "count:1000",
...           "emitted_at_ms": t, "metrics": {"accuracy": a}}
...          for t, a in ((1_000, 0.9), (2_000, 0.7))]
>>> snaps.append({**snaps[0], "window": "time:60s"})  # another window: not plotted
>>> served(snaps, "accuracy")
{'v1': ([1000, 2000], [0.9, 0.7])}
>>> fired = {"incident_id": "i1", "kind": "concept_drift", "state": "firing",
...          "created_at_ms": 1_500}
>>> notice = {"incident_id": None, "kind": "candidate_rejected", "state": None, "created_at_ms": 9}
>>> [[t for t, _ in recs] for recs in incidents([fired, {**fired, "state": "resolved",
...                                                       "created_at_ms": 1_900}, notice])]
[[1500, 1900]]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

from driftline.core.lifecycle.gate import PRIMARY
from driftline.core.lifecycle.registry import StageChange
from driftline.core.watch.estimate import ESTIMATE_CHECK
from driftline.demo import drift_panel, report

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["History", "incidents", "plot", "served", "write"]


@dataclass
class History:
    """What the topics hold about one model."""

    model: str
    snapshots: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    versions: list[dict[str, Any]]
    changes: list[StageChange]
    features: list[dict[str, Any]] = field(default_factory=list)
    """The recent feature maps of the model (the features topic's last events)."""

    @property
    def task(self) -> str:
        tasks = [v["task"] for v in self.versions]
        return tasks[-1] if tasks else "classification"


def checks(snapshots: Iterable[Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any]]]:
    """The estimator checked against labels: the last ``estimate-check:N`` snapshot of
    segment ``all`` per (version, chunk), with the time (UTC) it was published.

    >>> snap = {"segment": "all", "window": "estimate-check:1000", "version": "v1",
    ...         "window_start_ms": 5, "emitted_at_ms": 0}
    >>> [(at, s["emitted_at_ms"]) for at, s in checks([snap, {**snap, "emitted_at_ms": 1000},
    ...                                                 {**snap, "segment": "x=1"}])]
    [('1970-01-01 00:00:01', 1000)]
    """
    last: dict[tuple[str, int], Mapping[str, Any]] = {}
    for s in sorted(snapshots, key=lambda s: s["emitted_at_ms"]):
        if s["segment"] == "all" and s["window"].startswith(ESTIMATE_CHECK + ":"):
            last[(s["version"], s["window_start_ms"])] = s
    return [(when(s["emitted_at_ms"], precise=False), s) for s in last.values()]


def served(
    snapshots: Iterable[Mapping[str, Any]], metric: str
) -> dict[str, tuple[list[int], list[float]]]:
    """Per version, the times and values of ``metric`` in its count-window snapshots of
    segment ``all``, in time order."""
    out: dict[str, tuple[list[int], list[float]]] = {}
    for s in sorted(snapshots, key=lambda s: s["emitted_at_ms"]):
        value = (s.get("metrics") or {}).get(metric)
        if s["segment"] != "all" or not s["window"].startswith("count:") or value is None:
            continue
        xs, ys = out.setdefault(s["version"], ([], []))
        xs.append(int(s["emitted_at_ms"]))
        ys.append(float(value))
    return out


def incidents(alerts: Iterable[Mapping[str, Any]]) -> list[list[tuple[int, Mapping[str, Any]]]]:
    """Each incident's records (creation time, record) in order; notices left out."""
    out: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
    for a in sorted(alerts, key=lambda a: a["created_at_ms"]):
        if a.get("incident_id") and a.get("state"):
            out.setdefault(a["incident_id"], []).append((int(a["created_at_ms"]), a))
    return list(out.values())


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _x(ms: int) -> float:
    """Epoch ms on matplotlib's date axis: days since its epoch, 1970-01-01 (the default
    since matplotlib 3.3)."""
    return ms / 86_400_000


def when(ms: int | None, *, precise: bool = True) -> str:
    """UTC time of epoch ``ms`` as ``driftline``'s tables show it (``-`` for None).

    >>> when(1_700_000_000_123), when(1_700_000_000_123, precise=False)
    ('2023-11-14T22:13:20.123Z', '2023-11-14 22:13:20')
    """
    if ms is None:
        return "-"
    if not precise:
        return _dt(ms).strftime("%Y-%m-%d %H:%M:%S")
    return _dt(ms).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def plot(path: Path, h: History, metric: str) -> None:
    """The primary metric of each version over time; promotions as green lines, each
    incident as a bar near the top from opened to resolved (dashed while firing)."""
    fig, ax = plt.subplots(figsize=(12, 5), dpi=110)
    series = served(h.snapshots, metric)
    for version, (xs, ys) in series.items():
        ax.plot([_x(x) for x in xs], ys, "-o", markersize=2, linewidth=1.4, label=version)
    values = [y for _, ys in series.values() for y in ys]
    top = max([1.0, *values]) if metric == "accuracy" else max(values, default=1.0) * 1.1 or 1.0
    promotions = [c for c in h.changes if c.stage == "champion"]
    for k, c in enumerate(promotions):
        ax.axvline(_x(c.at_ms), color="tab:green", linestyle=":", linewidth=1.2,
                   label="became champion" if k == 0 else None)  # fmt: skip
        ax.annotate(c.version, (_x(c.at_ms), 0.02 * top), rotation=90, fontsize=7,
                    color="tab:green")  # fmt: skip
    times = [x for xs, _ in series.values() for x in xs] + [c.at_ms for c in promotions]
    last = max(times + [a["created_at_ms"] for a in h.alerts], default=0)
    spans = report.spans(incidents(h.alerts), last)
    causes = sorted({c for _, _, c in spans})
    for start, end, cause in spans:
        y = top * (0.99 - 0.03 * causes.index(cause))
        first = start == min(s for s, _, c in spans if c == cause)
        ax.plot([_x(start), _x(last if end is None else end)], [y, y],
                color=f"C{3 + causes.index(cause)}", linewidth=4, solid_capstyle="butt",
                linestyle="--" if end is None else "-",
                label=f"incident: {cause}" if first else None)  # fmt: skip
    ax.set_ylim(0, top * 1.02)
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel(f"{metric}, rolling window of the monitor (segment all)")
    ax.set_title(f"{h.model}: served {metric} by version")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    ax.xaxis_date("UTC")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _events(h: History) -> list[str]:
    lines = [f"{when(c.at_ms)}  {c.version} -> {c.stage} (by {c.by}: {c.reason})"
             for c in h.changes]  # fmt: skip
    for a in h.alerts:
        state = a.get("state") or "notice"
        lines.append(f"{when(a['created_at_ms'])}  alert {a['kind']} {a['severity']} {state}: "
                     f"{a['message']}")  # fmt: skip
    return sorted(lines)


def summary(h: History, metric: str) -> dict[str, Any]:
    """The report's headline table."""
    series = served(h.snapshots, metric)
    champion = next((v for v in reversed(h.versions) if v["stage"] == "champion"), None)
    latest = max(((xs[-1], ys[-1], v) for v, (xs, ys) in series.items()), default=None)
    found = incidents(h.alerts)
    return {
        "model": h.model,
        "task": h.task,
        "champion": champion["version"] if champion else "-",
        "versions": len(h.versions),
        f"latest served {metric}": "-" if latest is None else f"{latest[1]:.4f} ({latest[2]})",
        "metric snapshots": sum(len(xs) for xs, _ in series.values()),
        "from": when(min((xs[0] for xs, _ in series.values()), default=None)),
        "to": when(max((xs[-1] for xs, _ in series.values()), default=None)),
        "incidents (firing now)": f"{len(found)} "
        f"({sum(1 for recs in found if recs[-1][1]['state'] == 'firing')})",
        "notices": sum(1 for a in h.alerts if not a.get("state")),
    }


def write(out: Path, h: History) -> Path:
    """Write ``out``/report.html (the plot embedded, the PNG beside it) and summary.json."""
    out.mkdir(parents=True, exist_ok=True)
    metric = PRIMARY.get(h.task, PRIMARY["classification"])[0]
    plot_path = out / f"{h.model}.png"
    plot(plot_path, h, metric)
    shown: Sequence[Sequence[tuple[report.Position, Mapping[str, Any]]]] = [
        [(when(t, precise=False), r) for t, r in recs] for recs in incidents(h.alerts)
    ]
    champion = next((v for v in reversed(h.versions) if v["stage"] == "champion"), None)
    profile = drift_panel.profile_of(champion)
    drift = drift_panel.section(
        out, [(int(a["created_at_ms"]), a) for a in h.alerts], profile, h.features,
        version=champion["version"] if champion else "-", dates=True, axis="time (UTC)",
    )  # fmt: skip
    return report.write(
        out, summary(h, metric), plot_path, h.versions, _events(h), shown, checks(h.snapshots),
        title=f"Driftline report: {h.model}", plot_heading=f"Served {metric} by version",
        positions="times in UTC", drift=drift,
    )  # fmt: skip
