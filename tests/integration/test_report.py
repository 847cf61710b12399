"""`driftline report MODEL`: the report of any model, read from the metrics, alerts and
registry topics of the real broker (docs/your-model.md runs it after a real worker)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from driftline.cli import cli
from driftline.core.watch.incidents import NOTICE_FIELDS
from driftline.kafka.helpers import Publisher, events_since
from driftline.settings import Settings
from tests.integration import harness
from tests.integration.loop_helpers import T0, bootstrap_champion, loop_settings


def snapshot(model: str, version: str, at: int, accuracy: float, **kw: Any) -> dict[str, Any]:
    return {"model": model, "version": version, "segment": "all", "window": "count:1000",
            "window_start_ms": at - 60_000, "window_end_ms": at, "emitted_at_ms": at,
            "count": 1000, "metrics": {"accuracy": accuracy}, "baseline": {},
            "counts": {"n": 1000}, **kw}  # fmt: skip


def alert(at: int, state: str | None, **kw: Any) -> dict[str, Any]:
    incident = {} if state is None else {
        "incident_key": "churn|concept_drift", "incident_id": "inc-1", "state": state,
        "opened_at_ms": T0 + 5_000, "resolved_at_ms": at if state == "resolved" else None,
        "duration_ms": at - T0 - 5_000 if state == "resolved" else None,
        "segments": ["all"], "versions": ["v1"]}  # fmt: skip
    return {"alert_id": f"a{at}", "model": "churn", "version": None, "segment": None,
            "kind": "concept_drift", "severity": "warning", "message": f"{state} at {at}",
            "evidence": {}, "created_at_ms": at, **NOTICE_FIELDS, **incident, **kw}  # fmt: skip


@pytest.fixture
def s(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    s = loop_settings(settings, tmp_path)
    for name in ("bootstrap_servers", "topic_prefix", "artifact_dir"):
        monkeypatch.setenv(f"DRIFTLINE_{name.upper()}", str(getattr(s, name)))
    return s


def test_report_of_a_model_from_its_topics(s: Settings, tmp_path: Path) -> None:
    champ = bootstrap_champion(s)
    version = champ["version"]
    pub = Publisher(s, "test")
    for i, acc in enumerate((0.91, 0.90, 0.62, 0.58, 0.88)):
        pub.send(
            "metrics", "churn", "MetricSnapshot", snapshot("churn", version, T0 + i * 10_000, acc)
        )
    pub.send("metrics", "other", "MetricSnapshot", snapshot("other", "v9", T0, 0.1))
    pub.send("metrics", "churn", "MetricSnapshot",
             snapshot("churn", version, T0, 0.2, segment="plan=pro"))  # fmt: skip
    pub.send("alerts", "churn", "Alert", alert(T0 + 20_000, "firing"))
    pub.send("alerts", "churn", "Alert", alert(T0 + 40_000, "resolved"))
    pub.send("alerts", "churn", "Alert", alert(T0 + 41_000, None, kind="candidate_rejected"))
    evidence = {"feature": "amount", "detector": "ks", "statistic": 0.8, "threshold": 0.1,
                "p_value": 0.0, "features": "amount,plan", "drifted": 2}  # fmt: skip
    pub.send("alerts", "churn", "Alert", alert(
        T0 + 45_000, "firing", kind="feature_drift", incident_id="inc-2",
        incident_key="churn|feature_drift", evidence=evidence))  # fmt: skip
    pub.close()
    # the current distribution: the amounts moved above anything seen in training
    events = [{"event_id": f"e{i}", "model": model, "event_time_ms": T0 + i,
               "features": {"amount": 20.0 + i % 10, "plan": "pro"}, "segment": {}}
              for i in range(30) for model in ("churn", "other")]  # fmt: skip
    harness.produce(s, "features", harness.encoded("io.driftline.FeatureEvent", events))

    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["report", "churn", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        f"churn: 1 version(s), 6 metric snapshots, 4 alerts -> {out / 'report.html'}"
    )  # the other model's snapshot is not read
    summary = json.loads((out / "summary.json").read_text())
    assert summary["champion"] == version and summary["task"] == "classification"
    assert summary["latest served accuracy"] == f"0.8800 ({version})"
    assert summary["metric snapshots"] == 5  # segment all, count window
    assert summary["incidents (firing now)"] == "2 (1)" and summary["notices"] == 1
    page = (out / "report.html").read_text()
    assert "<h1>Driftline report: churn</h1>" in page
    assert 'src="data:image/png;base64,' in page and (out / "churn.png").stat().st_size > 10_000
    assert "concept_drift</td><td>warning</td><td>resolved" in page
    assert f"{version} -&gt; champion" in page and "alert candidate_rejected" in page
    assert "(bootstrap)" in page  # the lineage table: no Kafka offsets for a bootstrap
    # the drift panel: amount first (the alert's top feature), plan only listed; the
    # champion's training profile against the 30 feature events of churn (not other's)
    assert "<tr><td>1</td><td>amount</td><td>ks</td><td>8.00</td><td>1</td>" in page
    assert "<tr><td>2</td><td>plan</td><td>-</td><td>-</td><td>1</td>" in page
    assert f"training profile of {version} (reference) against the last 30 feature" in page
    assert (out / "feature_drift.png").stat().st_size > 10_000

    result = CliRunner().invoke(cli, ["report", "nobody", "--out", str(out)])
    assert result.exit_code == 1 and "no version and no metrics of nobody" in result.output


def test_events_since_counts_what_reached_the_features_topic(s: Settings) -> None:
    """What `driftline retrain --wait` and the trainer's log line give beside seconds."""
    before = int(time.time() * 1000) - 1
    events = [{"event_id": f"e{i}", "model": "churn", "event_time_ms": T0,
               "features": {"amount": 1.0}, "segment": {}} for i in range(7)]  # fmt: skip
    harness.produce(s, "features", harness.encoded("io.driftline.FeatureEvent", events))
    assert events_since(s, before) == 7
    assert events_since(s, int(time.time() * 1000) + 60_000) == 0
