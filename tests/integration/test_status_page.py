"""The worker's web server with data flowing: /status.json and /metrics over HTTP, and
the status page opened in headless Chromium (Debian's ``chromium``), its DOM checked
and a screenshot saved under the test's tmp dir."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from driftline.kafka import admin
from driftline.procs import Process, free_port
from tests.integration.churn import example, send, worker_url

PNG = b"\x89PNG\r\n\x1a\n"


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), b""


def status_until(proc: Process, ok: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    doc: dict[str, Any] = {}
    while time.monotonic() < deadline:
        doc = json.loads(get(worker_url(proc, "/status.json"))[2])
        if ok(doc):
            return doc
        time.sleep(0.5)
    raise AssertionError(f"status never matched: {json.dumps(doc)[:3000]}\n{proc.tail()}")


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    exe = shutil.which("chromium")
    assert exe, "chromium is missing: run infra/bootstrap.sh (Debian package chromium)"
    cmd = [
        exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp / 'chromium-profile'}", *args,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return done


def test_status_page_in_headless_chromium(pipeline, tmp_path: Path) -> None:
    s, champion, proc = pipeline
    rng = random.Random(5)
    send(s, [example(rng, i) for i in range(1_500)])

    def charted(d: dict[str, Any]) -> bool:
        series = [sr for m in d["models"] for sr in m["history"]["series"]]
        return any(len(sr["points"]) >= 3 for sr in series)

    status_until(proc, charted)
    send(s, [example(rng, 1_500 + i, shift=0.01) for i in range(1_500)])  # pro flips: drift

    def settled(d: dict[str, Any]) -> bool:
        points = [p for m in d["models"] for sr in m["history"]["series"] for p in sr["points"]]
        return bool(d["incidents"]) and bool(d["triggers"]) and len(points) >= 8

    doc = status_until(proc, settled)
    (model,) = doc["models"]
    assert model["model"] == "churn" and model["champion"] == champion
    assert [v["stage"] for v in model["versions"]] == ["champion"]
    served = model["served"][0]
    assert served["version"] == champion and served["role"] == "champion"
    count = next(w for w in served["windows"] if w["window"].startswith("count"))
    assert 0 <= count["metrics"]["accuracy"] <= 1 and count["baseline"]["accuracy"] > 0.8
    assert {"psi.x1", "ks.x1"} <= set(served["drift"])
    assert {seg["segment"] for seg in served["segments"]} == {"plan=basic", "plan=pro"}
    assert model["history"]["metric"] == "accuracy"
    assert any(m["kind"] == "trigger" for m in model["markers"])
    assert doc["worker"]["scored"] == 3_000

    url = worker_url(proc, "/")
    dom = chromium(tmp_path, "--dump-dom", url).stdout.decode()
    assert "<title>Driftline worker" in dom
    assert f"champion <b>{champion}</b>" in dom
    assert "churn: rolling accuracy per served version" in dom and "<polyline" in dom
    assert "plan=pro" in dom and "psi" in dom
    assert doc["alerts"][-1]["kind"] in dom and doc["triggers"][0]["trigger_id"] in dom
    incident = doc["incidents"][0]  # the drift: open, with what opened it
    assert incident["state"] == "firing" and incident["model"] == "churn"
    assert incident["cause"] in ("concept_drift", "performance_degradation", "feature_drift")
    assert "<h2>Incidents</h2>" in dom and incident["cause"] in dom
    assert "scored 3,000" in dom

    shot = tmp_path / "status.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,900", url)
    data = shot.read_bytes()
    assert data.startswith(PNG) and len(data) > 20_000  # a blank page is a few kB


def test_metrics_and_status_json_routes(pipeline) -> None:
    s, champion, proc = pipeline
    send(s, [example(random.Random(9), i) for i in range(200)])
    status_until(proc, lambda d: d["worker"]["scored"] >= 200)

    code, ctype, body = get(worker_url(proc, "/metrics"))
    assert code == 200 and ctype.startswith("text/plain; version=")  # exposition format
    text = body.decode()
    assert 'driftline_events_in_total{stage="score"}' in text
    assert "driftline_consumer_lag" in text
    info = f'driftline_model_version_info{{model="churn",stage="champion",version="{champion}"}}'
    assert f"{info} 1.0" in text

    code, ctype, body = get(worker_url(proc, "/status.json"))
    assert code == 200 and ctype.startswith("application/json")
    doc = json.loads(body)
    assert doc["worker"]["topic_prefix"] == s.topic_prefix
    assert doc["models"][0]["champion"] == champion

    code, ctype, body = get(worker_url(proc, "/"))
    assert code == 200 and ctype.startswith("text/html") and b"<svg" in body
    assert get(worker_url(proc, "/nope"))[0] == 404


def test_without_web_the_worker_opens_no_port(settings, tmp_path: Path) -> None:
    """Faust's worker used to open its web port even with the web disabled."""
    port = free_port()
    args = ["worker", "--name", "noweb", "--web-port", str(port), "--without-web"]
    proc = Process(settings, args, tmp_path / "noweb.log", "driftline worker ready")
    admin.apply(settings)
    proc.start()
    try:
        time.sleep(1)
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3)
    finally:
        assert proc.stop() == 0, proc.tail()
