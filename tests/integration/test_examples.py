"""The examples in examples/ run against the real broker; their output is asserted.

The downstream example reads predictions that this test produces itself with the
client: the path features -> Driftline's scorer -> predictions is covered by the
pipeline's own integration tests, so this one only proves the example's side.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from driftline.client import (
    Alert,
    FeatureEvent,
    Label,
    Prediction,
    Producer,
    RetrainTrigger,
    Subscriber,
)
from driftline.kafka import admin
from driftline.settings import Settings
from tests.integration.clienthelpers import java_partition, take
from tests.unit.core.examples import EXAMPLES

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def s(settings: Settings) -> Settings:
    admin.apply(settings)
    return settings


def common(s: Settings) -> list[str]:
    return ["--bootstrap", s.bootstrap_servers, "--prefix", s.topic_prefix]


def test_upstream_app_streams_features_then_their_labels(s: Settings, capsys) -> None:
    rc = load("upstream_app").main([*common(s), "--count", "12", "--label-delay", "0.1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert out.splitlines()[-1] == "sent 12 feature events and 12 labels for churn"
    features = [ln.split() for ln in out.splitlines() if ln.startswith("features ")]
    labels = [ln.split() for ln in out.splitlines() if ln.startswith("label ")]
    assert len(features) == len(labels) == 12
    assert out.index("features ") < out.index("label ")  # labels come later
    printed = {f[1]: f[3] for f in features}  # event_id -> topic[partition]@offset

    with Subscriber(FeatureEvent, s, app="check", start="earliest") as sub:
        got = take(sub, 12)
    assert {g.record.event_id for g in got} == set(printed)
    for g in got:
        assert printed[g.record.event_id] == f"{g.topic}[{g.partition}]@{g.offset}"
        assert g.partition == java_partition(g.record.event_id, s.data_partitions)
        assert g.record.model == "churn" and g.record.segment["region"] in {"eu", "us", "apac"}
    with Subscriber(Label, s, app="check", start="earliest") as sub:
        got_labels = take(sub, 12)
    assert {g.record.event_id for g in got_labels} == set(printed)
    assert all(isinstance(g.record.label, bool) for g in got_labels)


def test_downstream_app_prints_the_predictions_of_its_model(s: Settings, capsys) -> None:
    with Producer(s, app="scorer-stand-in") as producer:
        for i in range(8):
            for model in ("churn", "fraud"):
                p = EXAMPLES["Prediction"](
                    event_id=f"{model}-{i}", model=model, prediction=i % 2 == 0,
                    scores={"True": 0.25, "False": 0.75},
                )  # fmt: skip
                producer.send(Prediction.from_dict(p))
    argv = [*common(s), "--model", "churn", "--from-beginning", "--count", "8"]
    rc = load("downstream_app").main(argv)
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert out[-1] == "read 8 predictions"
    lines = [ln for ln in out if ln.startswith("prediction ")]
    assert sorted(ln.split()[1] for ln in lines) == sorted(f"churn-{i}" for i in range(8))
    assert all("model=churn version=v3" in ln and "[False: 0.75, True: 0.25]" in ln for ln in lines)
    assert "prediction churn-0 model=churn version=v3 -> True" in "\n".join(lines)


def test_alert_handler_acts_by_severity_run_as_a_script(s: Settings) -> None:
    with Producer(s, app="monitor-stand-in") as producer:
        for i, severity in enumerate(["critical", "info", "warning", "critical"]):
            a = EXAMPLES["Alert"](alert_id=f"a{i}", severity=severity, kind=f"kind{i}",
                                  state="resolved" if i == 3 else "firing")  # fmt: skip
            producer.send(Alert.from_dict(a))
    script = EXAMPLES_DIR / "alert_handler.py"
    argv = [*common(s), "--from-beginning", "--min-severity", "warning", "--count", "3"]
    done = subprocess.run(
        [sys.executable, str(script), *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert [ln.split()[0] for ln in out[:-1]] == ["PAGE", "TICKET", "CLOSE"]
    assert out[0].startswith("PAGE [critical] churn/v3 kind0: PSI of income rose")
    assert "psi=0.31" in out[0]
    assert out[-1] == "handled 3 alerts, ignored 1 below warning, skipped 0 undecodable"


def test_retrain_hook_runs_the_external_job_once_per_request(s: Settings, capsys) -> None:
    def trigger(tid: str, key: str, model: str = "churn") -> RetrainTrigger:
        return RetrainTrigger.from_dict(
            EXAMPLES["RetrainTrigger"](trigger_id=tid, idempotency_key=key, model=model)
        )

    with Producer(s, app="policy-stand-in") as producer:
        for t in [trigger("t1", "k1"), trigger("t2", "k1"), trigger("t3", "k3")]:
            producer.send(t)
    hook = load("retrain_hook")
    base = [*common(s), "--from-beginning", "--idle-timeout", "1"]

    rc = hook.main([*base, "--command", "echo train {model} {trigger_id} reasons={reasons}"])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    ran = [ln for ln in out if ln.startswith("ran: ")]
    assert ran == [
        "ran: echo train churn t1 reasons=feature_drift,performance_degradation -> exit 0",
        "ran: echo train churn t3 reasons=feature_drift,performance_degradation -> exit 0",
    ]
    assert "  | train churn t1 reasons=feature_drift,performance_degradation" in out
    assert "skipped t2: k1 already handled" in out
    assert out[-1] == "ran 2 training jobs"

    # every trigger was committed: a restart has nothing left to do
    assert hook.main([*base, "--command", "echo again {trigger_id}"]) == 0
    assert capsys.readouterr().out.splitlines() == ["ran 0 training jobs"]

    # a failing job stops the hook and leaves its trigger for the next start
    with Producer(s, app="policy-stand-in") as producer:
        producer.send(trigger("t4", "k4"))
    assert hook.main([*base, "--command", "false {trigger_id}"]) == 1
    out = capsys.readouterr().out
    assert "job failed with exit code 1" in out
    assert hook.main([*base, "--command", "echo retry {trigger_id}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "ran: echo retry t4 -> exit 0" in out and out[-1] == "ran 1 training jobs"


@pytest.mark.parametrize(
    "name", ["upstream_app", "downstream_app", "alert_handler", "retrain_hook"]
)
def test_every_example_has_a_help(name: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / f"{name}.py"), "--help"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--bootstrap" in done.stdout and "--prefix" in done.stdout
