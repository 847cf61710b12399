"""``driftline produce``, ``tail`` and ``status`` (click's CliRunner, in process) against
the real broker and a running worker."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
from click.testing import CliRunner, Result

from driftline.cli import cli
from driftline.kafka import admin
from driftline.procs import env_for
from driftline.settings import Settings
from tests.integration import harness
from tests.integration.churn import example


def run(s: Settings, *args: str) -> Result:
    result = CliRunner().invoke(cli, list(args), env=env_for(s), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def events_frame(n: int, seed: int) -> pd.DataFrame:
    rows = [example(random.Random(seed), i) for i in range(n)]
    return pd.DataFrame({
        "event_id": [e["event_id"] for e in rows],
        "event_time_ms": [e["event_time_ms"] for e in rows],
        "x1": [e["features"]["x1"] for e in rows],
        "x2": [e["features"]["x2"] for e in rows],
        "plan": [e["features"]["plan"] for e in rows],
        "label": [e["label"] for e in rows],
    })  # fmt: skip


def test_produce_csv_features_and_parquet_labels_then_tail_them(pipeline, tmp_path: Path) -> None:
    s, champion, proc = pipeline
    frame = events_frame(120, seed=1)
    frame.drop(columns=["label"]).to_csv(tmp_path / "features.csv", index=False)
    frame[["event_id", "label"]].to_parquet(tmp_path / "labels.parquet", index=False)

    out = run(s, "produce", "features", str(tmp_path / "features.csv"), "--model", "churn",
              "--segment", "plan")  # fmt: skip
    assert "produced 120 records for churn" in out.stdout
    preds = lines(run(s, "tail", "predictions", "--from-beginning", "--max", "120", "--idle", "20"))
    assert len(preds) == 120, proc.tail()
    assert {p["key"] for p in preds} == set(frame["event_id"])
    p0 = preds[0]
    assert p0["topic"] == s.topic("predictions") and p0["schema"] == "io.driftline.Prediction"
    assert isinstance(p0["partition"], int) and isinstance(p0["offset"], int)
    assert p0["value"]["version"] == champion and p0["value"]["segment"] == {
        "plan": p0["value"]["features"]["plan"]}  # fmt: skip
    row = frame.set_index("event_id").loc[p0["key"]]
    assert p0["value"]["features"]["x1"] == row["x1"]  # floats survive CSV round trip typed
    assert p0["value"]["event_time_ms"] == row["event_time_ms"]

    run(s, "produce", "labels", str(tmp_path / "labels.parquet"), "--model", "churn")
    outcomes = lines(run(s, "tail", "outcomes", "--from-beginning", "--max", "120", "--idle", "20"))
    assert len(outcomes) == 120, proc.tail()
    by_id = dict(zip(frame["event_id"], frame["label"], strict=True))
    assert all(o["value"]["label"] == by_id[o["key"]] for o in outcomes)

    # --model filters; --max stops; a topic given by its full name works too
    assert lines(run(s, "tail", "predictions", "--from-beginning", "--model", "other",
                     "--idle", "2")) == []  # fmt: skip
    two = lines(run(s, "tail", s.topic("predictions"), "--from-beginning", "--max", "2"))
    assert len(two) == 2


def test_tail_shows_dead_letters_with_stage_and_reason(pipeline, tmp_path: Path) -> None:
    s, _, proc = pipeline
    bad = pd.DataFrame({"x1": ["one", "two"], "x2": [1.0, 2.0], "plan": ["pro", "basic"]})
    bad.to_csv(tmp_path / "bad.csv", index=False)
    run(s, "produce", "features", str(tmp_path / "bad.csv"), "--model", "churn")
    dead = lines(run(s, "tail", "deadletter", "--from-beginning", "--max", "2", "--idle", "20",
                     "--headers"))  # fmt: skip
    assert len(dead) == 2, proc.tail()
    for d in dead:
        assert d["schema"] == "io.driftline.DeadLetter"
        assert (d["stage"], d["reason"]) == ("validate", "type_mismatch")
        assert d["source"].startswith(s.topic("features") + "[")
        assert d["value"]["raw"].startswith("0xc301")  # the raw event, as hex
        assert d["headers"]["__connect.errors.exception.class.name"] == "type_mismatch"


def test_produce_paces_rows_and_sends_labels_with_features(pipeline, tmp_path: Path) -> None:
    s, _, proc = pipeline
    frame = events_frame(30, seed=3).drop(columns=["event_id", "event_time_ms"])
    frame.to_parquet(tmp_path / "rows.parquet", index=False)
    t0 = time.monotonic()
    out = run(s, "produce", "features", str(tmp_path / "rows.parquet"), "--model", "churn",
              "--rate", "40", "--with-labels")  # fmt: skip
    assert time.monotonic() - t0 >= 29 / 40
    assert "produced 60 records" in out.stdout
    outcomes = harness.collect(s, "outcomes", lambda got: len(got) >= 30)
    assert len(outcomes) == 30, proc.tail()
    assert all(len(o["event_id"]) == 36 for o in outcomes)  # generated uuid4 ids joined


def test_status_summarizes_topics_lag_models_and_alerts(pipeline, tmp_path: Path) -> None:
    s, champion, proc = pipeline
    frame = events_frame(300, seed=4)
    frame.to_csv(tmp_path / "events.csv", index=False)
    run(s, "produce", "features", str(tmp_path / "events.csv"), "--model", "churn",
        "--with-labels", "--segment", "plan")  # fmt: skip
    harness.collect(s, "outcomes", lambda got: len(got) >= 300)
    alert = {"alert_id": "a-1", "model": "churn", "version": champion, "segment": None,
             "kind": "concept_drift", "severity": "warning", "message": "test alert",
             "evidence": {}, "created_at_ms": int(time.time() * 1000)}  # fmt: skip
    harness.publish(s, "alerts", "io.driftline.Alert", [alert], key=lambda a: a["model"])

    deadline = time.monotonic() + 60
    while True:  # the scorer commits after each batch; wait for its lag to reach 0
        doc = json.loads(run(s, "status", "--json").stdout)
        lag = {(g["group"], g["topic"]): g["lag"] for g in doc["groups"]}
        scorer = [v for (g, t), v in lag.items() if t == s.topic("features")]
        if scorer == [0] or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert scorer == [0], (doc["groups"], proc.tail())
    topics = {t["topic"]: t for t in doc["topics"]}
    assert topics[s.topic("features")]["end_offsets"] == 300
    assert topics[s.topic("features")]["partitions"] == s.data_partitions
    assert topics[s.topic("registry")]["partitions"] == 1
    assert doc["models"] == [{"model": "churn", "champion": champion, "challenger": None,
                              "challengers": [],
                              "versions": doc["models"][0]["versions"]}]  # fmt: skip
    assert [v["stage"] for v in doc["models"][0]["versions"]] == ["champion"]
    assert [a["message"] for a in doc["alerts"] if a["message"] == "test alert"] == ["test alert"]

    text = run(s, "status").stdout
    assert f"churn  {champion}  champion" in text
    assert "test alert" in text and s.topic("features") in text


def driftline(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``driftline ARGS`` in a child process (``driftline kafka`` execs Kafka's tool)."""
    return subprocess.run([sys.executable, "-m", "driftline", *args], env=env,
                          capture_output=True, text=True, timeout=180, check=False)  # fmt: skip


def test_kafka_status_and_broker_follow_the_settings(settings: Settings, tmp_path: Path) -> None:
    """Issue 22: with no local broker recorded, `driftline kafka` said "no broker recorded
    in .cache/broker; pass --bootstrap-server" while every other command followed
    DRIFTLINE_BOOTSTRAP_SERVERS. Here the broker was started elsewhere (the test
    session's) and the broker directory is empty."""
    s = settings.model_copy(update={"broker_dir": tmp_path / "no-broker"})
    admin.apply(s)
    env = env_for(s)
    listed = driftline(env, "kafka", "topics", "--list")
    assert listed.returncode == 0, listed.stderr
    assert {t.name for t in admin.declared(s)} <= set(listed.stdout.split())
    groups = driftline(env, "kafka", "consumer-groups", "--list")
    assert groups.returncode == 0, groups.stderr
    status = driftline(env, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert {t["topic"] for t in json.loads(status.stdout)["topics"] if t["exists"]} == {
        t.name for t in admin.declared(s)
    }
    down = driftline(env, "broker", "down")
    assert down.returncode == 0
    assert f"no local broker runs in {tmp_path / 'no-broker'}: nothing to stop" in down.stderr
    assert f"DRIFTLINE_BOOTSTRAP_SERVERS={s.bootstrap_servers}" in down.stderr
    state = driftline(env, "broker", "status")
    assert state.returncode == 3 and "state: stopped" in state.stdout
    assert not (tmp_path / "no-broker").exists()  # nothing was written there
    shown = driftline(env, "settings")
    assert f"DRIFTLINE_BOOTSTRAP_SERVERS={s.bootstrap_servers}" in shown.stdout
    assert "(bootstrap servers from DRIFTLINE_BOOTSTRAP_SERVERS)" in shown.stderr
