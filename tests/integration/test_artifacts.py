"""Model artifacts through the real broker: a running worker refuses a new champion whose
artifact was signed with another key, or whose bytes were altered after signing. For each,
the previous champion keeps serving (the predictions' version), an ``artifact_rejected``
alert names the reason, and ``driftline_artifacts_rejected_total`` grows on the worker's
/metrics. A correctly signed champion published afterwards is served: the worker was
following the registry all along."""

from __future__ import annotations

import random
import time
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from driftline.core.lifecycle.training import stage_records
from driftline.core.model.estimators import artifact_bytes, artifact_record, sha256_hex
from driftline.settings import Settings
from tests import hostile as H
from tests.integration import harness
from tests.integration.churn import worker_url
from tests.integration.harness import Process

MODEL_VERSION = "io.driftline.ModelVersion"


def rejected_total(proc: Process, reason: str) -> float:
    """driftline_artifacts_rejected_total{model="churn", reason=...} on the worker."""
    with urllib.request.urlopen(worker_url(proc, "/metrics"), timeout=10) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "driftline_artifacts_rejected_total" and sample.labels == {
                "model": H.MODEL,
                "reason": reason,
            }:
                return float(sample.value)
    return 0.0


def registry(s: Settings) -> list[dict[str, Any]]:
    return harness.collect(s, "registry", lambda got: False, timeout=3)


def publish_champion(s: Settings, candidate: dict[str, Any]) -> None:
    """What the trainer publishes for a new champion: the candidate, then the stage
    changes that archive the holder of the slot and make the candidate champion."""
    now = int(time.time() * 1000)
    candidate = {**candidate, "stage": "candidate", "created_at_ms": now,
                 "stage_changed_at_ms": now}  # fmt: skip
    later = stage_records(candidate, "champion", current=registry(s), by="test",
                          reason="artifact test", now_ms=now)  # fmt: skip
    harness.publish(s, "registry", MODEL_VERSION, [candidate, *later],
                    key=lambda r: f"{r['model']}/{r['version']}")  # fmt: skip


def served_versions(s: Settings, rng: random.Random, n: int = 20) -> set[str]:
    """The versions that predicted ``n`` fresh events."""
    events = [H.good_event(rng, f"a{rng.getrandbits(48):012x}") for _ in range(n)]
    ids = {e["event_id"] for e in events}
    harness.produce(s, "features", harness.encoded("io.driftline.FeatureEvent", events))
    preds = harness.collect(
        s, "predictions", lambda got: ids <= {p["event_id"] for p in got}, timeout=60
    )
    found = [p for p in preds if p["event_id"] in ids]
    assert {p["event_id"] for p in found} == ids
    return {p["version"] for p in found}


def test_a_foreign_or_altered_artifact_is_refused_and_the_champion_keeps_serving(
    pipeline: tuple[Settings, str, Process],
) -> None:
    s, champion, proc = pipeline
    rng = random.Random(3)
    key = s.signing_key.get_secret_value().encode()
    (current,) = [r for r in registry(s) if r["version"] == champion and r["stage"] == "champion"]
    data = artifact_bytes(current["artifact"])
    assert served_versions(s, rng) == {champion}

    altered = bytearray(data)
    altered[len(altered) // 2] ^= 0x01
    signed = artifact_record(data, key)
    forged = [
        # signed with a key that is not the registry's
        ("bad_signature", "v90-foreign", artifact_record(data, b"someone else's key")),
        # signed by the registry, then the bytes were changed
        ("digest_mismatch", "v91-altered", {**signed, "inline": bytes(altered)}),
    ]
    for reason, version, artifact in forged:
        before = rejected_total(proc, reason)
        publish_champion(s, {**current, "version": version, "artifact": artifact})

        def refused(got: list[dict[str, Any]], version: str = version) -> bool:
            return any(a["kind"] == "artifact_rejected" and a["version"] == version for a in got)

        alerts = harness.collect(s, "alerts", refused, timeout=30)
        (alert,) = [a for a in alerts if refused([a])]
        assert alert["model"] == H.MODEL and alert["severity"] == "critical"
        assert alert["evidence"]["reason"] == reason and reason in alert["message"]
        assert served_versions(s, rng) == {champion}, proc.tail()
        deadline = time.monotonic() + 10
        while rejected_total(proc, reason) < before + 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert rejected_total(proc, reason) == before + 1

    # A worker that starts now, with a refused champion on the registry, serves the last
    # champion it can verify.
    proc.stop()
    proc.start()
    assert served_versions(s, rng) == {champion}, proc.tail()

    # The control: the same bytes, correctly signed, become the champion that serves.
    genuine = artifact_record(data, key)
    assert genuine["sha256"] == sha256_hex(data) == current["artifact"]["sha256"]
    publish_champion(s, {**current, "version": "v92-genuine", "artifact": genuine})
    deadline = time.monotonic() + 30
    while (versions := served_versions(s, rng)) != {"v92-genuine"}:
        assert time.monotonic() < deadline, versions
    alerts = harness.collect(s, "alerts", lambda got: False, timeout=2)
    rejected = {(a["alert_id"], a["version"]) for a in alerts if a["kind"] == "artifact_rejected"}
    # each worker start refuses each forged version once, under the same alert id
    assert sorted(v for _, v in rejected) == ["v90-foreign", "v91-altered"]
    assert proc.running(), proc.tail()
