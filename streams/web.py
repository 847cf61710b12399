"""The worker's web server: ``/metrics`` (Prometheus), ``/`` (status page), ``/status.json``.

faust-streaming 0.15.3 lets an app hand its HTTP server to any ``mode.Service``
(``app.web_server``): the legacy ``faust.web`` stack is then not built at all, so
its own ``/`` index and blueprints cannot collide with these routes, and nothing
else opens a port. The service here is a three-route aiohttp application (aiohttp is
already Faust's dependency) on ``settings.worker_web_bind:worker_web_port``. Faust
starts it once table recovery is done and not at all with ``--without-web``.

The views only read: the registry follower's state (replaced whole by its thread),
the monitors and :class:`~driftline.streams.monitors.Recent` (both touched only on
the event loop these handlers run on). HTML comes from
:func:`driftline.streams.statuspage.render`, a pure function of the JSON document.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import mode
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from driftline.core.lifecycle.importance import ranked
from driftline.core.watch.estimate import summary as estimate_summary
from driftline.streams.monitors import snapshot_key
from driftline.streams.statuspage import render

if TYPE_CHECKING:
    from driftline.streams.app import Worker

log = logging.getLogger(__name__)

PRIMARY = {"classification": "accuracy", "regression": "mae"}
"""The metric charted per task (the one the validation gate compares)."""
REFRESH_S = 5
TOP_IMPORTANCE = 5
"""Features listed per version, most important first."""

_VERSION_FIELDS = (
    "version", "stage", "created_at_ms", "stage_changed_at_ms", "stage_changed_by",
    "stage_reason", "factory", "metrics",
)  # fmt: skip


def _is_drift(name: str) -> bool:
    return name.startswith(("psi.", "ks."))


def _version(record: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: record.get(k) for k in _VERSION_FIELDS}
    gate = record.get("gate")
    out["gate"] = None if gate is None else ("passed" if gate.get("passed") else "failed")
    lineage = record.get("lineage") or {}
    out["trigger_id"] = lineage.get("trigger_id")
    out["importance"] = [
        {"feature": f, "mean": m, "std": sd}
        for f, m, sd in ranked(lineage.get("importance"))[:TOP_IMPORTANCE]
    ]
    cal = record.get("calibration") or {}
    out["calibration"] = cal.get("method")
    return out


def _served(
    worker: Worker,
    model: str,
    version: str,
    role: str,
    importance: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    snaps = [
        s for (m, v, _, _), s in worker.recent.snapshots.items() if m == model and v == version
    ]
    overall = sorted((s for s in snaps if s["segment"] == "all"), key=lambda s: s["window"])
    restored = worker.recent.restored
    windows = [
        {
            "window": s["window"],
            "count": s["count"],
            "metrics": {k: x for k, x in s["metrics"].items() if not _is_drift(k)},
            "baseline": dict(s.get("baseline") or {}),
            "window_end_ms": s["window_end_ms"],
            "emitted_at_ms": s["emitted_at_ms"],
            "restored": snapshot_key(s) in restored,
        }
        for s in overall
    ]
    drift: dict[str, float] = {}
    for s in overall:
        drift.update({k: x for k, x in s["metrics"].items() if _is_drift(k)})
    segments = [
        {"segment": s["segment"], "window": s["window"], "count": s["count"],
         "metrics": {k: x for k, x in s["metrics"].items() if not _is_drift(k)}}
        for s in sorted(snaps, key=lambda s: (s["segment"], s["window"]))
        if s["segment"] != "all" and s["window"].startswith("count")
    ]  # fmt: skip
    return {"version": version, "role": role, "windows": windows, "drift": drift,
            "importance": {f: m for f, m, _ in ranked(importance)}, "segments": segments,
            "estimate": estimate_summary(overall),
            "restored": bool(windows) and all(w["restored"] for w in windows)}  # fmt: skip


def _model(worker: Worker, model: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    champion = next((r for r in records if r["stage"] == "champion"), None)
    challengers = [r for r in records if r["stage"] == "challenger"]
    config = worker.models.get(model)
    task = config.task if config is not None else (records[0]["task"] if records else None)
    metric = PRIMARY.get(task or "", "accuracy")
    roles = {r["version"]: r["stage"] for r in (champion, *challengers) if r is not None}
    seen = [v for (m, v) in worker.recent.history if m == model]
    imp = {r["version"]: (r.get("lineage") or {}).get("importance") for r in records}
    served = [_served(worker, model, v, roles[v], imp.get(v)) for v in roles]
    served += [_served(worker, model, v, "previous") for v in seen if v not in roles]
    series = [
        {"version": v, "points": [[t, ms[metric]] for t, ms in worker.recent.history[(model, v)]
                                  if metric in ms]}
        for v in seen
    ]  # fmt: skip
    baseline = None if champion is None else champion.get("metrics", {}).get(metric)
    markers = [
        {"t": a["created_at_ms"], "kind": "alert", "label": f"{a['kind']} {a['state']}"}
        for a in worker.recent.alerts
        if a.get("model") == model and a.get("state") is not None
    ]
    markers += [
        {"t": t["created_at_ms"], "kind": "trigger", "label": ", ".join(t["reasons"])}
        for t in worker.recent.triggers
        if t.get("model") == model
    ]
    markers += [
        {"t": r["stage_changed_at_ms"], "kind": "version", "label": f"{r['version']} champion"}
        for r in records
        if r["stage"] == "champion"
    ]
    return {
        "model": model,
        "task": task,
        "champion": None if champion is None else champion["version"],
        "challenger": challengers[-1]["version"] if challengers else None,
        "challengers": [r["version"] for r in challengers],
        "versions": [_version(r) for r in records],
        "served": served,
        "history": {"metric": metric, "series": series, "baseline": baseline},
        "markers": markers,
    }


def collect(worker: Worker, now_ms: int | None = None) -> dict[str, Any]:
    """The ``/status.json`` document: models, versions and stages, rolling metrics and
    drift per served version, metric history, recent alerts and triggers."""
    registry = worker.follower.registry
    names = set(worker.monitors.by_model) | {m for m, _ in worker.recent.history}
    for _ in range(3):  # the registry thread may add a model while we list them
        try:
            names |= set(registry.models())
            names = {n for n in names if not registry.retired(n)}  # left out, as documented
            break
        except RuntimeError:
            continue
    models = [_model(worker, name, registry.versions(name)) for name in sorted(names)]
    return {
        "title": f"Driftline worker {worker.app.conf.id}",
        "generated_at_ms": int(time.time() * 1000) if now_ms is None else now_ms,
        "worker": {
            "app": worker.app.conf.id,
            "topic_prefix": worker.settings.topic_prefix,
            "role": worker.role,
            "scored": None if worker.scorer is None else worker.scorer.processed,
            "scorer_lag": None if worker.scorer is None else worker.scorer.lag,
            "refresh_s": REFRESH_S,
        },
        "restored": _restored(worker),
        "models": models,
        "incidents": incidents(worker.recent.incidents.values()),
        "alerts": [_alert(a) for a in reversed(worker.recent.alerts)],
        "triggers": [_trigger(t) for t in reversed(worker.recent.triggers)],
    }


def _restored(worker: Worker) -> dict[str, Any] | None:
    """When the last known state was read back from the topics at start-up, and how many
    of its snapshots no fresh one has replaced yet (None: nothing restored)."""
    recent = worker.recent
    if recent.restored_at_ms is None:
        return None
    return {"at_ms": recent.restored_at_ms, "snapshots": len(recent.restored)}


def incidents(seen: Iterable[Mapping[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Incidents for the status page, firing ones first, newest first: what opened each
    (its first record) and where it stands (its latest).

    >>> first = {"incident_id": "i1", "incident_key": "m/skew_rate", "model": "m",
    ...          "kind": "skew_rate", "severity": "warning", "state": "firing",
    ...          "opened_at_ms": 1, "message": "up", "segments": ["all"], "versions": ["v1"]}
    >>> last = {**first, "state": "resolved", "resolved_at_ms": 9, "duration_ms": 8,
    ...         "message": "Resolved after 0 s: down"}
    >>> [(i["state"], i["duration_ms"], i["resolution"]) for i in incidents([
    ...     {"first": first, "last": last}])]
    [('resolved', 8, 'Resolved after 0 s: down')]
    """
    out = []
    for i in seen:
        first, last = i["first"], i["last"]
        resolved = last.get("state") == "resolved"
        out.append({
            "incident_id": first["incident_id"], "incident_key": first["incident_key"],
            "model": first["model"], "cause": first["kind"], "severity": last["severity"],
            "state": last["state"], "opened_at_ms": first["opened_at_ms"],
            "resolved_at_ms": last.get("resolved_at_ms"), "duration_ms": last.get("duration_ms"),
            "segments": list(last.get("segments") or []),
            "versions": list(last.get("versions") or []),
            "message": first["message"], "resolution": last["message"] if resolved else None,
        })  # fmt: skip
    out.sort(key=lambda i: (i["state"] != "firing", -(i["opened_at_ms"] or 0)))
    return out


def _alert(a: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("alert_id", "model", "version", "segment", "kind", "severity", "message",
            "created_at_ms", "state", "incident_id")  # fmt: skip
    return {k: a.get(k) for k in keep}


def _trigger(t: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("trigger_id", "model", "reasons", "champion_version", "requested_by",
            "created_at_ms", "idempotency_key")  # fmt: skip
    return {k: t.get(k) for k in keep}


def application(worker: Worker) -> web.Application:
    """The aiohttp application with the three routes."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})  # fmt: skip

    async def status_json(request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(collect(worker)), content_type="application/json")

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=render(collect(worker)), content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/status.json", status_json)
    app.router.add_get("/metrics", metrics)
    return app


def server(worker: Worker, host: str, port: int) -> type[mode.Service]:
    """A ``mode.Service`` class serving :func:`application` on ``host:port``, for
    ``app.web_server``."""

    class WebServer(mode.Service):
        driver_version = "driftline aiohttp"
        web_url = f"http://{host}:{port}/"
        _runner: web.AppRunner | None = None

        async def on_start(self) -> None:
            self._runner = web.AppRunner(application(worker), access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, host, port, reuse_address=True).start()
            log.info("driftline web: status page and /metrics on http://%s:%d/", host, port)

        async def on_stop(self) -> None:
            if self._runner is not None:
                await self._runner.cleanup()

    return WebServer
