"""The worker's status page as HTML, from plain data: pure functions, no Faust, no I/O.

:func:`render` takes the dict ``/status.json`` serves (built by ``streams/web.py``) and
returns one self-contained page: inline CSS, charts as inline SVG
(:mod:`driftline.streams.svgchart`), no script and no external asset (workers often
run where there is no internet). The page reloads itself every ``refresh_s`` seconds.

>>> "<script" in render({"generated_at_ms": 0, "models": [], "alerts": [], "triggers": []})
False
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from driftline.core.watch.incidents import duration_text
from driftline.streams.svgchart import line_chart, when

__all__ = ["fmt_value", "line_chart", "render", "when"]

STATS = ("psi", "ks")
"""Drift statistics, in column order."""
PREFERRED = ("accuracy", "f1", "log_loss", "precision", "recall", "mae", "rmse", "r2")
SEVERITY_COLORS = {"critical": "#b91c1c", "warning": "#b45309", "info": "#1d4ed8"}

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
 color:#1f2937;background:#f3f4f6}
header{background:#111827;color:#f9fafb;padding:10px 20px;display:flex;gap:6px 20px;
 align-items:baseline;flex-wrap:wrap;font-size:13px}
header h1{font-size:17px;margin:0}header span{color:#9ca3af}header .links{margin-left:auto}
.t{white-space:nowrap}
main{padding:12px 20px;display:grid;gap:16px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:12px 16px}
h2{font-size:16px;margin:0 0 8px}h3{font-size:14px;margin:12px 0 6px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #f0f0f0;vertical-align:top}
th{color:#6b7280;font-weight:600}
.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.stage{display:inline-block;padding:0 6px;border-radius:3px;font-size:12px;color:#fff}
.champion{background:#15803d}.challenger{background:#1d4ed8}.candidate{background:#6b7280}
.archived{background:#9ca3af}.rejected{background:#b91c1c}.previous{background:#9ca3af}
.grid{display:grid;grid-template-columns:minmax(420px,1.3fr) minmax(320px,1fr);gap:16px}
.muted{color:#6b7280}.bad{color:#b91c1c;font-weight:600}
svg text{font:11px system-ui,sans-serif;fill:#4b5563}
"""


def fmt_value(value: object) -> str:
    """A metric value for a table cell.

    >>> fmt_value(0.912345), fmt_value(1234.5), fmt_value(7), fmt_value(None)
    ('0.9123', '1234.5', '7', '-')
    """
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return escape(str(value))
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"


def _stage(stage: str) -> str:
    return f'<span class="stage {escape(stage)}">{escape(stage)}</span>'


def _table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    numeric: set[int],
    nowrap: frozenset[int] = frozenset(),
) -> str:
    """A table of already escaped cells; ``numeric`` columns align right, ``nowrap``
    ones (times, versions) stay on one line."""
    css = {i: ' class="n"' for i in numeric} | {i: ' class="t"' for i in nowrap}
    head = "".join(f"<th{css.get(i, '')}>{escape(h)}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f"<td{css.get(i, '')}>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _versions(model: Mapping[str, Any]) -> str:
    rows = []
    for v in sorted(model.get("versions", []), key=lambda r: -int(r.get("created_at_ms") or 0)):
        metrics = ", ".join(f"{escape(k)} {fmt_value(x)}" for k, x in sorted(v["metrics"].items()))
        rows.append(
            (
                escape(v["version"]),
                _stage(v["stage"]),
                when(v.get("created_at_ms")),
                metrics or "-",
                escape(v.get("gate") or "-"),
                escape(f"{v.get('stage_changed_by', '')}: {v.get('stage_reason', '')}"),
            )
        )
    if not rows:
        return '<p class="muted">No version in the registry.</p>'
    header = ("version", "stage", "created (UTC)", "validation", "gate", "set by")
    return _table(header, rows, set(), frozenset({0, 2}))


def _drift(drift: Mapping[str, float], importance: Mapping[str, float] | None = None) -> str:
    """One row per feature (``__score__`` and ``__prediction__`` are the model's output),
    one column per statistic. Without the version's importance, the most drifted first;
    with it (permutation importance from its lineage), an importance column and the rows
    ranked by drift weighted by importance (the largest statistic times the importance),
    so a drift the model feels comes before one it ignores; the model's outputs first."""
    by_feature: dict[str, dict[str, float]] = {}
    for name, value in drift.items():
        stat, _, feature = name.partition(".")
        by_feature.setdefault(feature, {})[stat] = value
    found = {st for values in by_feature.values() for st in values}
    stats = sorted(found, key=lambda st: (STATS.index(st) if st in STATS else len(STATS), st))

    def largest(f: str) -> float:
        return max(abs(v) for v in by_feature[f].values())

    if importance:
        order = sorted(by_feature, key=lambda f: (
            not f.startswith("__"), -largest(f) * max(importance.get(f, 0.0), 0.0),
            -largest(f)))  # fmt: skip
        rows = [(escape(f), *(fmt_value(by_feature[f].get(st)) for st in stats),
                 fmt_value(importance.get(f))) for f in order]  # fmt: skip
        return _table(("feature", *stats, "importance"), rows, set(range(1, len(stats) + 2)))
    order = sorted(by_feature, key=lambda f: -largest(f))
    rows = [(escape(f), *(fmt_value(by_feature[f].get(st)) for st in stats)) for f in order]
    return _table(("feature", *stats), rows, set(range(1, len(stats) + 1)))


def _ordered(names: Iterable[str], primary: str) -> list[str]:
    """Metric names, the charted one first, then the usual ones, then the rest."""
    rank = {name: i for i, name in enumerate((primary, *PREFERRED))}
    return sorted(set(names), key=lambda n: (rank.get(n, len(rank)), n))


def _served(model: Mapping[str, Any]) -> str:
    primary = model.get("history", {}).get("metric", "accuracy")
    parts = []
    for s in model.get("served", []):
        windows = [w for w in s.get("windows", []) if not w["window"].startswith("estimate")]
        names = _ordered((k for w in windows for k in w["metrics"]), primary)
        baseline: Mapping[str, float] = next(
            (w["baseline"] for w in windows if w.get("baseline")), {}
        )
        rows = [
            (escape(k), *(fmt_value(w["metrics"].get(k)) for w in windows),
             fmt_value(baseline.get(k)))
            for k in names
        ]  # fmt: skip
        header = ("metric", *(f"{w['window']} (n={w['count']})" for w in windows), "validation")
        title = f"{escape(s['version'])} {_stage(s['role'])}"
        if s.get("restored"):
            title += ' <span class="muted restored">(last known, restored at start-up)</span>'

        table = (
            _table(header, rows, set(range(1, len(windows) + 2)))
            if rows
            else '<p class="muted">No outcome yet.</p>'
        )
        parts.append(f"<h3>Rolling metrics: {title}</h3>{table}")
        if s.get("estimate"):
            parts.append(f"<h3>Estimated performance: {escape(s['version'])}</h3>")
            parts.append(_estimate(s["estimate"]))
        drift = s.get("drift", {})
        if drift:
            ranked = " (ranked by drift weighted by importance)" if s.get("importance") else ""
            parts.append(
                f"<h3>Drift: {escape(s['version'])}{ranked}</h3>"
                f"{_drift(drift, s.get('importance'))}"
            )
        segs = s.get("segments", [])
        if segs:
            cols = _ordered((k for g in segs for k in g["metrics"]), primary)[:4]
            srows = [
                (escape(g["segment"]), str(g["count"]),
                 *(fmt_value(g["metrics"].get(k)) for k in cols))
                for g in segs
            ]  # fmt: skip
            parts.append(f"<h3>Segments: {escape(s['version'])} ({escape(segs[0]['window'])})</h3>")
            parts.append(_table(("segment", "n", *cols), srows, set(range(1, len(cols) + 2))))
    return "".join(parts) or '<p class="muted">No version served yet.</p>'


def _estimate(e: Mapping[str, Any]) -> str:
    """Estimated (CBPE, from predictions alone) beside realized, and the estimator's
    error on the last chunk whose labels came.

    >>> html = _estimate({"metric": "accuracy", "window": "estimate:1000", "estimated": 0.8,
    ...     "lower": 0.77, "upper": 0.83, "realized": None, "checked_estimated": 0.81,
    ...     "checked_realized": 0.79, "error": -0.02, "mae": 0.015, "labelled_share": 0.4})
    >>> "0.8000 [0.7700, 0.8300]" in html, "no label yet" in html, "40%" in html
    (True, True, True)
    """
    lo, hi = fmt_value(e.get("lower")), fmt_value(e.get("upper"))
    band = (
        f"{fmt_value(e.get('estimated'))} [{lo}, {hi}]" if e.get("estimated") is not None else "-"
    )
    realized = e.get("realized")
    none = '<span class="muted">no label yet</span>'
    share = e.get("labelled_share")
    error = e.get("error")
    rows = [
        (f"estimated {escape(str(e.get('metric')))} ({escape(str(e.get('window') or '-'))}, 95%)",
         band),
        ("realized (labels so far)",
         fmt_value(realized) if realized is not None else none),
        ("last checked chunk: estimated / realized",
         f"{fmt_value(e.get('checked_estimated'))} / {fmt_value(e.get('checked_realized'))}"),
        ("estimator error (realized - estimated)",
         "-" if error is None else f'<span class="{"bad" if abs(error) > 0.05 else ""}">'
         f"{error:+.4f}</span>"),
        ("estimator mean absolute error", fmt_value(e.get("mae"))),
        ("labelled share of that chunk", "-" if share is None else f"{share:.0%}"),
    ]  # fmt: skip
    return _table(("", "value"), rows, {1})


def _importance(versions: Sequence[Mapping[str, Any]]) -> str:
    """Each version's most important features (permutation importance on its held-out
    rows), beside its calibration."""
    rows = []
    for v in versions:
        imp = v.get("importance") or []
        if not imp and not v.get("calibration"):
            continue
        top = ", ".join(
            f"{escape(i['feature'])} {fmt_value(i['mean'])} ± {fmt_value(i['std'])}" for i in imp
        )
        rows.append((escape(v["version"]), escape(v.get("calibration") or "-"), top or "-"))
    if not rows:
        return ""
    header = ("version", "calibration", "importance (mean ± spread, most important first)")
    return "<h3>Importance</h3>" + _table(header, rows, set(), frozenset({0}))


def _chart(model: Mapping[str, Any]) -> str:
    hist = model.get("history", {})
    metric = hist.get("metric", "accuracy")
    series = [(s["version"], [(int(t), float(v)) for t, v in s["points"]])
              for s in hist.get("series", [])]  # fmt: skip
    markers = [(int(m["t"]), m["kind"], m["label"]) for m in model.get("markers", [])]
    bounded = metric in ("accuracy", "f1", "precision", "recall", "auc", "roc_auc")
    return line_chart(
        series,
        y_range=(0.0, 1.0) if bounded else None,
        baseline=hist.get("baseline"),
        markers=markers,
        title=f"{model['model']}: rolling {metric} per served version",
    )


def _model(model: Mapping[str, Any]) -> str:
    champion = model.get("champion") or "none"
    challengers = model.get("challengers") or (
        [model["challenger"]] if model.get("challenger") else []
    )
    shown = ", ".join(f"<b>{escape(c)}</b>" for c in challengers)
    head = (
        f'<h2>{escape(model["model"])} <span class="muted">({escape(model.get("task") or "?")})'
        f"</span> champion <b>{escape(champion)}</b>"
        + (f", challenger{'s' if len(challengers) > 1 else ''} {shown}" if challengers else "")
        + "</h2>"
    )
    return (
        f'<section class="model" id="model-{escape(model["model"])}">{head}'
        f'<div class="grid"><div>{_chart(model)}<h3>Versions</h3>{_versions(model)}'
        f"{_importance(model.get('versions', []))}</div>"
        f"<div>{_served(model)}</div></div></section>"
    )


def _severity(severity: str) -> str:
    color = SEVERITY_COLORS.get(severity, "#374151")
    return f'<span style="color:{color}">{escape(severity)}</span>'


def _incidents(incidents: Sequence[Mapping[str, Any]], now_ms: int | None) -> str:
    """Firing incidents first (for how long so far), then the resolved ones (how long
    they lasted and why they cleared)."""
    if not incidents:
        return '<p class="muted">No incident since this worker started.</p>'
    rows = []
    for i in incidents:
        firing = i.get("state") == "firing"
        state = '<span class="bad">firing</span>' if firing else "resolved"
        lasted = (now_ms or 0) - (i.get("opened_at_ms") or 0) if firing else i.get("duration_ms")
        text = escape(i.get("message") or "")
        if i.get("resolution"):
            text += f'<br><span class="muted">{escape(i["resolution"])}</span>'
        rows.append((
            state, escape(i.get("model", "")), escape(i.get("cause", "")),
            _severity(i.get("severity", "")), when(i.get("opened_at_ms")),
            when(i.get("resolved_at_ms")) if not firing else "-",
            ("-" if lasted is None else duration_text(lasted)) + (" so far" if firing else ""),
            escape(", ".join(i.get("segments") or [])), escape(", ".join(i.get("versions") or [])),
            text,
        ))  # fmt: skip
    header = ("state", "model", "cause", "severity", "opened (UTC)", "resolved (UTC)",
              "lasted", "segments", "versions", "what opened it; how it cleared")  # fmt: skip
    return _table(header, rows, set(), frozenset({4, 5, 6}))


def _alerts(alerts: Sequence[Mapping[str, Any]]) -> str:
    if not alerts:
        return '<p class="muted">No alert since this worker started.</p>'
    rows = [
        (
            when(a.get("created_at_ms")),
            escape(a.get("model", "")),
            escape(a.get("version") or "-"),
            _severity(a.get("severity", "")),
            escape(a.get("kind", "")),
            escape(a.get("state") or "notice"),
            escape(a.get("message", "")),
        )
        for a in alerts
    ]
    header = ("time (UTC)", "model", "version", "severity", "kind", "state", "message")
    return _table(header, rows, set(), frozenset({0, 2}))


def _triggers(triggers: Sequence[Mapping[str, Any]]) -> str:
    if not triggers:
        return '<p class="muted">No retrain trigger since this worker started.</p>'
    rows = [
        (
            when(t.get("created_at_ms")),
            escape(t.get("model", "")),
            escape(", ".join(t.get("reasons", []))),
            escape(t.get("champion_version") or "-"),
            escape(t.get("requested_by", "")),
            escape(t.get("trigger_id", "")),
        )
        for t in triggers
    ]
    header = ("time (UTC)", "model", "reasons", "champion", "by", "trigger")
    return _table(header, rows, set(), frozenset({0, 3}))


def render(status: Mapping[str, Any]) -> str:
    """The whole status page for ``status`` (the ``/status.json`` document)."""
    worker = status.get("worker", {})
    refresh = int(worker.get("refresh_s", 5))
    facts = [f"updated {when(status.get('generated_at_ms'))} UTC"]
    if worker.get("topic_prefix") is not None:
        facts.append(f"topics {escape(worker['topic_prefix'])}*")
    if worker.get("scored") is not None:
        facts.append(f"scored {int(worker['scored']):,}")
    if worker.get("scorer_lag") is not None:
        facts.append(f"scorer lag {int(worker['scorer_lag']):,}")
    restored = status.get("restored")
    if restored and restored.get("snapshots"):
        at = when(restored.get("at_ms"))
        n = int(restored["snapshots"])
        facts.append(f"{n:,} snapshots restored from the metrics topic at {at} UTC")
    models = "".join(_model(m) for m in status.get("models", [])) or (
        '<section><p class="muted">No model yet: publish a version to the registry '
        "(driftline models bootstrap).</p></section>"
    )
    title = escape(str(status.get("title", "Driftline worker")))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{refresh}">'
        f"<title>{title}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{title}</h1>"
        + "".join(f"<span>{f}</span>" for f in facts)
        + '<span class="links"><a style="color:#93c5fd" href="status.json">status.json</a> · '
        '<a style="color:#93c5fd" href="metrics">metrics</a></span></header><main>'
        + models
        + "<section><h2>Incidents</h2>"
        + _incidents(status.get("incidents", []), status.get("generated_at_ms"))
        + "</section>"
        + f"<section><h2>Recent alerts</h2>{_alerts(status.get('alerts', []))}</section>"
        + f"<section><h2>Recent retrain triggers</h2>{_triggers(status.get('triggers', []))}"
        "</section></main></body></html>"
    )
