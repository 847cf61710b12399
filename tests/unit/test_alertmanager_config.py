"""infra/alertmanager/alertmanager.yml against Debian's amtool: accepted, and it routes
Driftline's incidents the way docs/on-call.md says (one group per incident, by model and
cause; a critical one inhibits the warning of the same model and cause). amtool comes
from infra/bootstrap.sh: a missing one fails these tests, it does not skip them.
tests/integration/test_alertmanager.py runs the same file in a real Alertmanager."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "infra" / "alertmanager" / "alertmanager.yml"
RULES = ROOT / "infra" / "prometheus" / "rules" / "incidents.yml"


def amtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("amtool")
    assert exe, "amtool is missing: run infra/bootstrap.sh (Debian package prometheus-alertmanager)"
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=60)


def test_amtool_accepts_the_config() -> None:
    done = amtool("check-config", CONFIG)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_incidents_are_grouped_by_model_and_cause() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["route"]["group_by"] == ["alertname", "model", "cause"]
    rule = yaml.safe_load(RULES.read_text())["groups"][0]["rules"][0]
    # the labels the groups, inhibitions and routes use are those the rule's alerts carry
    assert "by (model, cause, severity, version)" in rule["expr"]
    inhibit = config["inhibit_rules"][0]
    assert inhibit["equal"] == ["model", "cause"]


def test_every_severity_routes_to_a_receiver() -> None:
    for severity, receiver in (("critical", "on-call"), ("warning", "on-call")):
        done = amtool("config", "routes", "test", f"--config.file={CONFIG}",
                      "alertname=DriftlineIncident", "model=churn", "cause=concept_drift",
                      f"severity={severity}")  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip() == receiver
