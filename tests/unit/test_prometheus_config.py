"""infra/prometheus/ against Debian's promtool: the scrape config and the alert rules
are accepted, the rules fire on the series they are meant for (``promtool test
rules``), and they only name metrics Driftline exports. promtool comes from
infra/bootstrap.sh: a missing one fails these tests, it does not skip them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "infra" / "prometheus" / "prometheus.yml"
RULES = sorted((ROOT / "infra" / "prometheus" / "rules").glob("*.yml"))


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool is missing: run infra/bootstrap.sh (Debian package prometheus)"
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=60)


def test_there_are_rule_files() -> None:
    assert RULES, "no rule files in infra/prometheus/rules"


def test_promtool_accepts_the_scrape_config() -> None:
    done = promtool("check", "config", CONFIG)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_accepts_the_config_with_the_rules_it_loads(tmp_path: Path) -> None:
    """The shipped config names the container path of the rules; pointed at the repo's
    rules, ``check config`` loads and checks them too."""
    config = yaml.safe_load(CONFIG.read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    config["rule_files"] = [str(p) for p in RULES]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))
    done = promtool("check", "config", local)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"SUCCESS: [1-9]\d* rules found", done.stdout), done.stdout


@pytest.mark.parametrize("rules", RULES, ids=lambda p: p.name)
def test_promtool_accepts_the_rules(rules: Path) -> None:
    done = promtool("check", "rules", rules)
    assert done.returncode == 0, done.stdout + done.stderr


def _declared_metric_names(*modules: object) -> set[str]:
    """Every sample name the worker's metrics module (or ``modules``) declares."""
    from driftline.streams import telemetry

    names = set()
    for value in (v for module in modules or (telemetry,) for v in vars(module).values()):
        describe = getattr(value, "describe", None)
        if callable(describe) and type(value).__module__.startswith("prometheus_client"):
            for family in describe():
                names.add(family.name)
                suffixes = {"counter": ["_total", "_created"],
                            "histogram": ["_bucket", "_sum", "_count", "_created"]}  # fmt: skip
                names.update(family.name + s for s in suffixes.get(family.type, []))
    return names


def test_worker_rules_name_only_metrics_the_worker_exports() -> None:
    declared = _declared_metric_names()
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                used = set(re.findall(r"\bdriftline_[a-z0-9_]+", rule["expr"]))
                trainer = {
                    u for u in used if u.startswith(("driftline_train", "driftline_projector"))
                }
                missing = used - declared - trainer
                assert not missing, f"{rule.get('alert')}: {missing} not in streams/telemetry.py"


def test_the_grafana_dashboard_names_only_metrics_driftline_exports() -> None:
    """Every ``driftline_*`` series a panel queries is declared by the worker, the
    trainer or the projector (a renamed metric leaves no silently empty panel)."""
    import json

    from driftline.consumers import projector, trainer
    from driftline.streams import telemetry

    declared = _declared_metric_names(telemetry, trainer, projector)
    board = json.loads((ROOT / "infra" / "grafana" / "dashboards" / "driftline.json").read_text())
    exprs = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    assert len(exprs) >= 10
    for expr in exprs:
        missing = set(re.findall(r"\bdriftline_[a-z0-9_]+", expr)) - declared
        assert not missing, f"{expr}: {missing} not exported"


RULE_TESTS = """
rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      # an incident: opened at 2m, its worker restarting at 4m-5m (stale: no sample),
      # resolved at 8m (0); a second worker never saw it (0)
      - series: 'driftline_incident_firing{{model="churn", cause="concept_drift", severity="warning", version="v1", instance="w:6066"}}'
        values: '_ _ 1 1 stale stale 1 1 0 0 0 0'
      - series: 'driftline_incident_firing{{model="churn", cause="concept_drift", severity="warning", version="v1", instance="w2:6066"}}'
        values: '0x11'
      # an incident whose worker went away for good at 3m: firing 5 minutes past its
      # last sample (2m), then not (the version label is empty: Prometheus drops it)
      - series: 'driftline_incident_firing{{model="fraud", cause="skew_rate", severity="critical", version="", instance="w:6066"}}'
        values: '1 1 1 stale'
      - series: 'up{{job="driftline-worker", instance="w:6066"}}'
        values: '1 1 0 0 0 0'
      - series: 'driftline_artifacts_rejected_total{{model="churn", reason="bad_signature"}}'
        values: '0 1 1'
      - series: 'driftline_dead_letters_total{{stage="validate", reason="type_mismatch"}}'
        values: '0+120x20'
      - series: 'driftline_transactions_retried_total{{loop="join", why="stuck", instance="w:6066"}}'
        values: '0 0 1 1 1'
      - series: 'driftline_transactions_retried_total{{loop="scorer", why="aborted", instance="w:6066"}}'
        values: '0 3 6 9 12'
    alert_rule_test:
      - eval_time: 1m
        alertname: DriftlineIncident
        exp_alerts:
          - exp_labels: {{severity: critical, model: fraud, cause: skew_rate}}
            exp_annotations:
              summary: "skew_rate of fraud (critical)"
              description: "Driftline's monitor opened a skew_rate incident for fraud (version  served when it opened). Its evidence is on the alerts topic (driftline tail alerts) and the worker's status page."
              runbook: "docs/on-call.md#skew_rate"
      - eval_time: 3m
        alertname: DriftlineIncident
        exp_alerts: &churn
          - exp_labels: {{severity: warning, model: churn, cause: concept_drift, version: v1}}
            exp_annotations:
              summary: "concept_drift of churn (warning)"
              description: "Driftline's monitor opened a concept_drift incident for churn (version v1 served when it opened). Its evidence is on the alerts topic (driftline tail alerts) and the worker's status page."
              runbook: "docs/on-call.md#concept_drift"
          - exp_labels: {{severity: critical, model: fraud, cause: skew_rate}}
            exp_annotations:
              summary: "skew_rate of fraud (critical)"
              description: "Driftline's monitor opened a skew_rate incident for fraud (version  served when it opened). Its evidence is on the alerts topic (driftline tail alerts) and the worker's status page."
              runbook: "docs/on-call.md#skew_rate"
      - eval_time: 5m
        alertname: DriftlineIncident
        exp_alerts: *churn
      - eval_time: 7m
        alertname: DriftlineIncident
        exp_alerts: *churn
      - eval_time: 8m
        alertname: DriftlineIncident
        exp_alerts: []
      - eval_time: 4m
        alertname: DriftlineWorkerDown
        exp_alerts:
          - exp_labels: {{severity: critical, job: driftline-worker, instance: "w:6066"}}
            exp_annotations:
              summary: "A Driftline worker is not being scraped"
              description: "Prometheus cannot scrape w:6066."
      - eval_time: 2m
        alertname: DriftlineArtifactRejected
        exp_alerts:
          - exp_labels: {{severity: critical, model: churn, reason: bad_signature}}
            exp_annotations:
              summary: "A worker refused a model artifact of churn"
              description: "Digest or signature check failed (bad_signature): the artifact was not written by the trainer."
      - eval_time: 12m
        alertname: DriftlineDeadLettersRising
        exp_alerts:
          - exp_labels: {{severity: warning, reason: type_mismatch}}
            exp_annotations:
              summary: "Events are being dead-lettered (type_mismatch)"
              description: "More than 1 event/s went to the dead-letter topic with reason type_mismatch over 5 minutes."
      - eval_time: 3m
        alertname: DriftlineTransactionStuck
        exp_alerts:
          - exp_labels: {{severity: warning, loop: join}}
            exp_annotations:
              summary: "The join loop gave up a hung Kafka transaction call"
              description: "send_offsets_to_transaction did not return within 15 s (librdkafka, most often after a broker restart): the loop replaced its transactional producers and read the batch again. If this repeats, check the brokers' health and the worker's log."
      - eval_time: 1m
        alertname: DriftlineTransactionStuck
        exp_alerts: []
"""  # noqa: E501


def test_alert_rules_fire_on_the_series_they_watch(tmp_path: Path) -> None:
    """``promtool test rules``: each alert fires when its condition holds (for as long
    as its ``for``), with its labels and rendered annotations, and stays quiet otherwise."""
    tests = tmp_path / "rules_test.yml"
    tests.write_text(RULE_TESTS.format(rules=", ".join(f'"{p}"' for p in RULES)))
    done = promtool("test", "rules", tests)
    assert done.returncode == 0, done.stdout + done.stderr
