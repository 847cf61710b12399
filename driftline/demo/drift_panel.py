"""The report's per-feature drift panel: for each drifting feature, its drift statistic
over time (from the ``feature_drift`` alert records) and its reference distribution (the
served version's training profile) against its current one (the recent feature values),
ranked by drift. The ranking and the histogram data are pure; :func:`section` draws them
with matplotlib and returns the HTML.

An alert names the features that drifted (``features``, ranked as the alert ranks them)
but carries the statistic of its top feature only, so a feature's series holds the
alerts it topped; a feature only ever listed has no series, and ranks after those that
have one.

>>> alerts = [(10, {"kind": "feature_drift", "evidence": {"feature": "b", "detector": "psi",
...                 "statistic": 0.3, "threshold": 0.2, "features": "b,a"}}),
...           (20, {"kind": "feature_drift", "evidence": {"feature": "a", "detector": "ks",
...                 "statistic": 0.5, "threshold": 0.1, "features": "a"}})]
>>> [(d.feature, d.points, round(d.peak, 2)) for d in ranking(alerts)]
[('a', [(20, 0.5, 0.1)], 5.0), ('b', [(10, 0.3, 0.2)], 1.5)]
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import matplotlib

from driftline.core.watch.profile import (
    OTHER,
    NumericProfile,
    Profile,
    ReferenceProfile,
    bin_counts,
    category_counts,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["CURRENT", "TOP", "Distribution", "Drifted", "distribution", "ranking", "section"]

TOP = 5
"""Features drawn in the panel (all of them are in its table)."""
CURRENT = 5_000
"""Recent feature events the current distribution is drawn from."""
NEW_CATEGORIES = 8
"""Categories unseen in training shown on their own; the rest go under ``__other__``."""


@dataclass
class Drifted:
    """One drifting feature: its (position, statistic, threshold) points in order, the
    detector, its importance to the served model when the alerts carried it."""

    feature: str
    points: list[tuple[int, float, float]] = field(default_factory=list)
    detector: str = "-"
    importance: float | None = None
    alerts: int = 0

    @property
    def peak(self) -> float:
        """Largest statistic / threshold (1.0 = at the threshold); 0 without a point."""
        return max((s / t if t else s for _, s, t in self.points), default=0.0)


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def ranking(alerts: Iterable[tuple[int, Mapping[str, Any]]]) -> list[Drifted]:
    """The features the ``feature_drift`` alerts name, each with its statistic over time
    (position or time of each record that it topped), ranked by importance first when
    an alert carried the model's importance (the order the alerts themselves use), then
    by the largest statistic relative to its threshold, then by name.

    >>> rec = {"kind": "feature_drift", "evidence": {"feature": "x", "statistic": 0.2,
    ...        "threshold": 0.1, "features": "x,y", "importance.x": 0.01,
    ...        "importance.y": 0.3}}
    >>> [(d.feature, d.importance, d.alerts) for d in ranking([(1, rec)])]
    [('y', 0.3, 1), ('x', 0.01, 1)]
    >>> ranking([(1, {"kind": "concept_drift", "evidence": {"statistic": 0.9}})])
    []
    """
    found: dict[str, Drifted] = {}
    for at, record in sorted(alerts, key=lambda a: a[0]):
        if record.get("kind") != "feature_drift":
            continue
        ev = record.get("evidence") or {}
        names = [f for f in str(ev.get("features") or "").split(",") if f]
        top = ev.get("feature")
        if top is not None and str(top) not in names:
            names.insert(0, str(top))
        for name in names:
            d = found.setdefault(name, Drifted(name))
            d.alerts += 1
            imp = _num(ev.get(f"importance.{name}"))
            if imp is not None:
                d.importance = imp
        stat, threshold = _num(ev.get("statistic")), _num(ev.get("threshold"))
        if top is not None and stat is not None:
            d = found[str(top)]
            d.points.append((at, stat, threshold or 0.0))
            d.detector = str(ev.get("detector") or d.detector)
    by_importance = any(d.importance is not None for d in found.values())

    def key(d: Drifted) -> tuple[float, float, float, str]:
        imp = (d.importance or 0.0) if by_importance else 0.0
        return (-imp, -float(bool(d.points)), -d.peak, d.feature)

    return sorted(found.values(), key=key)


@dataclass(frozen=True)
class Distribution:
    """Reference and current shares over the same bins (numeric) or categories."""

    labels: list[str]
    reference: list[float]
    current: list[float]
    n_current: int
    missing: int


def _g(x: float) -> str:
    return f"{x:.4g}"


def _shares(counts: Sequence[float]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def distribution(profile: Profile, values: Iterable[Any]) -> Distribution:
    """The reference shares of ``profile`` beside the shares of ``values`` over the same
    bins: the profile's right-closed quantile bins for a numeric feature (NaN, inf and
    missing left out and counted in ``missing``), its categories for a categorical one,
    plus up to ``NEW_CATEGORIES`` values unseen in training (the rest under
    ``__other__``; missing left out).

    >>> p = NumericProfile((1.0, 2.0), (2, 1, 1), ())
    >>> d = distribution(p, [0.5, 1.5, 3.0, 4.0, None, float("nan")])
    >>> d.labels, d.reference, d.current, d.n_current, d.missing
    (['<= 1', '(1, 2]', '> 2'], [0.5, 0.25, 0.25], [0.25, 0.25, 0.5], 4, 2)
    """
    if isinstance(profile, NumericProfile):
        edges = profile.edges
        numbers = [_num(v) for v in values]
        finite = [x for x in numbers if x is not None]
        counts, missing = bin_counts(edges, finite), len(numbers) - len(finite)
        if edges:
            labels = [f"<= {_g(edges[0])}"]
            labels += [f"({_g(a)}, {_g(b)}]" for a, b in pairwise(edges)]
            labels.append(f"> {_g(edges[-1])}")
        else:
            labels = ["all"]
        return Distribution(labels, _shares(profile.counts), _shares(counts), sum(counts),
                            missing)  # fmt: skip
    seen, missing = category_counts(values)
    known = [c for c in profile.counts if c != OTHER]
    new = [c for c, _ in seen.most_common() if c not in profile.counts][:NEW_CATEGORIES]
    labels = known + new
    rest = sum(seen.values()) - sum(seen[c] for c in labels)
    if OTHER in profile.counts or rest:
        labels.append(OTHER)
    current = [seen[c] if c != OTHER else seen[c] + rest for c in labels]
    return Distribution(labels, _shares([profile.counts.get(c, 0) for c in labels]),
                        _shares(current), sum(seen.values()), missing)  # fmt: skip


def distributions(
    drifted: Sequence[Drifted], profile: ReferenceProfile | None, rows: Sequence[Mapping[str, Any]]
) -> dict[str, Distribution]:
    """The :func:`distribution` of each drifted feature the profile knows."""
    if profile is None:
        return {}
    return {
        d.feature: distribution(profile.features[d.feature], [r.get(d.feature) for r in rows])
        for d in drifted
        if d.feature in profile.features
    }


def profile_of(record: Mapping[str, Any] | None) -> ReferenceProfile | None:
    """The reference profile of a version record; None without one (or unreadable).

    >>> profile_of(None), profile_of({"reference_profile": ""})
    (None, None)
    """
    try:
        return ReferenceProfile.from_json(record["reference_profile"]) if record else None
    except (KeyError, ValueError):
        return None


def plot(path: Path, drifted: Sequence[Drifted], dists: Mapping[str, Distribution], *,
         dates: bool, axis: str) -> None:  # fmt: skip
    """One row per feature: its statistic over time with the threshold dashed (left), its
    reference and current shares side by side (right)."""
    fig, axes = plt.subplots(len(drifted), 2, figsize=(12, 2.6 * len(drifted)), dpi=100,
                             squeeze=False)  # fmt: skip
    scale = 86_400_000 if dates else 1  # epoch ms on matplotlib's date axis: days
    every = [x / scale for d in drifted for x, _, _ in d.points]
    pad = (max(every) - min(every)) * 0.05 or (60_000 / scale if dates else 1) if every else 0
    for row, d in zip(axes, drifted, strict=True):
        left, right = row
        xs = [x / scale for x, _, _ in d.points]
        if every:  # one time axis for every feature
            left.set_xlim(min(every) - pad, max(every) + pad)
        left.plot(xs, [s for _, s, _ in d.points], "-o", markersize=3, label=d.detector)
        thresholds = {t for _, _, t in d.points if t}
        for k, t in enumerate(sorted(thresholds)):
            left.axhline(t, color="tab:red", linestyle="--", linewidth=1,
                         label="threshold" if k == 0 else None)  # fmt: skip
        if dates and xs:
            left.xaxis_date("UTC")
        left.set_title(f"{d.feature}: {d.detector} statistic", fontsize=9)
        left.set_xlabel(axis, fontsize=8)
        left.tick_params(labelsize=7)
        left.grid(alpha=0.3)
        if d.points:
            left.legend(fontsize=7, loc="best")
        dist = dists.get(d.feature)
        if dist is None:
            right.set_axis_off()
            right.text(0.5, 0.5, "no reference profile for this feature", ha="center")
            continue
        pos = range(len(dist.labels))
        right.bar([p - 0.2 for p in pos], dist.reference, width=0.4, label="reference")
        right.bar([p + 0.2 for p in pos], dist.current, width=0.4,
                  label=f"current ({dist.n_current:,})")  # fmt: skip
        right.set_xticks(list(pos), dist.labels, rotation=30, ha="right", fontsize=7)
        right.set_title(f"{d.feature}: share per bin", fontsize=9)
        right.tick_params(axis="y", labelsize=7)
        right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def section(
    out: Path,
    alerts: Iterable[tuple[int, Mapping[str, Any]]],
    profile: ReferenceProfile | None,
    rows: Sequence[Mapping[str, Any]],
    *,
    version: str,
    dates: bool,
    axis: str,
) -> str:
    """The panel's HTML (its PNG ``feature_drift.png`` written into ``out``): the table
    of every drifting feature in rank order, and the top ``TOP`` drawn. ``rows``: the
    recent feature maps; ``version``: whose profile is the reference."""
    drifted = ranking(alerts)
    head = "<h2>Feature drift</h2>\n"
    if not drifted:
        return head + "<p>No feature drifted (no feature_drift alert).</p>"
    shown = drifted[:TOP]
    dists = distributions(shown, profile, rows)
    path = out / "feature_drift.png"
    plot(path, shown, dists, dates=dates, axis=axis)
    table = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            k, d.feature, d.detector, f"{d.peak:.2f}" if d.points else "-", d.alerts,
            "-" if d.importance is None else f"{d.importance:.4f}")) + "</tr>"
        for k, d in enumerate(drifted, 1)
    )  # fmt: skip
    image = base64.b64encode(path.read_bytes()).decode()
    return (
        f"{head}<p>The features the feature_drift alerts named, ranked by drift (by the "
        f"model's importance first when the alerts carried it). Left: the statistic of each "
        f"alert the feature topped; right: the training profile of {html.escape(version)} "
        f"(reference) against the last {len(rows):,} feature events (current).</p>\n"
        "<table><tr><th>rank</th><th>feature</th><th>detector</th>"
        "<th>peak statistic / threshold</th><th>alerts naming it</th><th>importance</th>"
        f"</tr>{table}</table>\n"
        f'<img alt="feature drift" src="data:image/png;base64,{image}">'
    )
