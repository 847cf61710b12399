"""Text for the ``driftline models`` commands: pure functions from records to lines.

>>> parse_since("90m", now_ms=10_000_000)
4600000
>>> parse_since("2024-01-01T00:00:00Z", now_ms=0)
1704067200000
>>> typed("42"), typed("4.5"), typed("true"), typed(""), typed("fr")
(42, 4.5, True, None, 'fr')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from driftline.cli.text import table, when
from driftline.core.errors import ConfigError
from driftline.core.lifecycle.importance import ranked
from driftline.core.lifecycle.registry import StageChange

TOP_IMPORTANCE = 5
"""Features shown by ``models show``, most important first."""
_UNITS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_since(text: str, now_ms: int) -> int:
    """ms since epoch of an ISO 8601 time, epoch ms, or a duration ago (30m, 2h, 7d)."""
    m = re.fullmatch(r"(\d+)([smhdw])", text.strip())
    if m:
        return now_ms - int(m.group(1)) * _UNITS[m.group(2)]
    if text.strip().isdigit():
        return int(text)
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"not a time: {text!r} (ISO 8601, epoch ms, or 30m/2h/7d)") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp() * 1000)


def typed(text: str) -> Any:
    """A CSV cell as Avro would carry it: int, float, bool, None (empty) or str."""
    if text == "":
        return None
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _utc(ms: int | None) -> str:
    """To the second: the tables' columns say (UTC)."""
    return when(ms, precise=False)


def _primary(rec: Mapping[str, Any]) -> str:
    from driftline.core.lifecycle.gate import PRIMARY  # imports river: only when there is a record

    name = PRIMARY.get(rec["task"], ("accuracy", 1))[0]
    value = rec["metrics"].get(name)
    return "-" if value is None else f"{name} {value:.4f}"


def version_table(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per version: model, version, stage, created, primary metric, gate, set by."""
    rows = [("MODEL", "VERSION", "STAGE", "CREATED (UTC)", "METRIC", "GATE", "SET BY")]
    for r in records:
        gate = r.get("gate")
        rows.append(
            (
                r["model"],
                r["version"],
                r["stage"],
                _utc(r["created_at_ms"]),
                _primary(r),
                "-" if gate is None else ("passed" if gate["passed"] else "failed"),
                r["stage_changed_by"],
            )
        )
    return table(rows)


def _kv(d: Mapping[str, Any], fmt: str = "{:.4g}") -> str:
    return ", ".join(
        f"{k}={fmt.format(v) if isinstance(v, float) else v}" for k, v in sorted(d.items())
    )


def version_report(
    rec: Mapping[str, Any], history: Iterable[StageChange], signature_ok: bool | None
) -> list[str]:
    """Everything about one version, lineage down to Kafka offsets."""
    lin, art, gate = rec["lineage"], rec["artifact"], rec.get("gate")
    steps = lin.get("step_ms") or {}
    lines = [
        f"{rec['model']} {rec['version']}: {rec['stage']} since {_utc(rec['stage_changed_at_ms'])}"
        f" (by {rec['stage_changed_by']}: {rec['stage_reason']})",
        f"  task {rec['task']}, factory {rec['factory']}, created {_utc(rec['created_at_ms'])}",
        f"  metrics: {_kv(rec['metrics']) or '-'}",
    ]
    for seg, m in sorted(rec["segment_metrics"].items()):
        lines.append(f"    {seg}: {_kv(m)}")
    if gate is None:
        lines.append("  gate: none")
    else:
        lines.append(f"  gate: {gate['summary']}")  # starts with "passed" or "failed ..."
        lines.append(
            "    checks: "
            + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in gate["checks"].items())
        )
    lines += [
        "  lineage:",
        f"    trigger {lin['trigger_id'] or '- (bootstrap)'}"
        f" (key {lin.get('trigger_key') or '-'}), run {lin['training_run_id']}",
        f"    trained on {lin['rows']} rows, {lin.get('holdout_rows') or 0} held out;"
        f" seed {lin['seed']}; params {_kv(lin['params']) or '-'}",
        f"    code {lin['code_version']} on {lin.get('host') or '-'},"
        f" {_utc(lin.get('started_at_ms'))} .. {_utc(lin.get('finished_at_ms'))}",
        f"    steps (ms): {_kv(steps, '{:.1f}') or '-'}",
        f"    compared with champion {lin['champion_version'] or '- (none)'}",
    ]
    if lin.get("earlier_rows"):
        lines.append(
            f"    completed with {lin['earlier_rows']} earlier rows from the training sample"
            f" of {lin.get('earlier_version') or '-'}"
        )
    if not lin["data_ranges"]:
        lines.append("    data: not read from Kafka (bootstrap rows)")
    for r in lin["data_ranges"]:
        lines.append(
            f"    data: {r['topic']} partition {r['partition']}"
            f" offsets [{r['start_offset']}, {r['end_offset']})"
        )
    where = "inline" if art.get("inline") is not None else art.get("uri")
    sig = {True: "valid", False: "INVALID", None: "not checked"}[signature_ok]
    lines.append(
        f"  artifact: {art['format']}, {art['size_bytes']} bytes {where},"
        f" sha256 {art['sha256']}, signature {sig}"
    )
    cal = rec.get("calibration")
    if cal:
        lines.append(
            f"  calibration: {cal['method']} on {cal['rows']} held-out rows, ECE"
            f" {cal['ece_before']:.4f} raw -> {cal['ece_after']:.4f} ({cal['reason']})"
        )
    imp = ranked(lin.get("importance"))
    if imp:
        shown = ", ".join(f"{f} {m:.4f} ± {sd:.4f}" for f, m, sd in imp[:TOP_IMPORTANCE])
        more = len(imp) - TOP_IMPORTANCE
        lines.append(
            "  importance (permutation, held-out; mean ± spread): "
            + shown
            + (f", {more} more" if more > 0 else "")
        )
    feats = [
        f"{f['name']} {f['type']}" + ("" if f["required"] else "?") for f in rec["feature_spec"]
    ]
    lines.append(f"  features: {', '.join(feats) or '-'}")
    sample = rec.get("training_sample")
    lines.append(
        "  training sample: " + (f"{len(sample)} bytes (compressed)" if sample else "none")
    )
    seen = [h for h in history if h.model == rec["model"] and h.version == rec["version"]]
    if seen:
        lines.append("  stage history (as the registry topic holds it):")
        for h in seen:
            lines.append(f"    {_utc(h.at_ms)}  {h.previous or 'new'} -> {h.stage}"
                         f"  by {h.by}: {h.reason}")  # fmt: skip
    return lines
