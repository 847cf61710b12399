"""The quick modes of the closed-loop and throughput benches keep working (issue 6):
each runs to its end and prints its side-by-side tables. No speed is asserted. (The
fault bench's quick mode is tests/integration/test_faults.py.)"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: float) -> str:
    """Run a bench; past ``timeout`` it gets SIGTERM (its with-blocks stop the workers and
    the broker it started) and the test fails with the end of what it printed."""
    proc = subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        raise AssertionError(f"{args} did not finish in {timeout} s:\n{out[-6000:]}") from None
    assert proc.returncode == 0, out[-6000:]
    return out


@pytest.mark.timeout(600)
def test_loop_bench_quick_prints_driftline_in_process_and_through_kafka(tmp_path: Path) -> None:
    """In process on three streams against every baseline, and one run through its own
    broker, worker and trainer whose predictions are all read back, none twice."""
    raw = tmp_path / "loop.json"
    out = run("-m", "bench.loop", "--quick", "--workers", "2", "--json", str(raw),
              "--out", str(tmp_path / "out"), timeout=480)  # fmt: skip
    for word in ("Driftline in process", "Driftline Kafka 1,000/s", "frozen", "periodic",
                 "HAT", "ARF", "oracle", "agrawal", "sea", "stationary",
                 "trigger to serving", "onset to alarm", "onset to serving",
                 "Targets"):  # fmt: skip
        assert word in out, out
    assert "nan" not in out, out
    results = json.loads(raw.read_text())
    assert {r["task"]["kind"] for r in results["process"]} == {"sea", "agrawal", "stationary"}
    (kafka,) = results["kafka"]
    replayed = kafka["task"]["events"] - kafka["task"]["warmup"]
    assert kafka["complete"] and kafka["predictions"] == replayed, kafka
    assert kafka["missing"] == 0 and kafka["duplicates"] == 0, kafka
    assert kafka["rate"] > 0 and 0 < kafka["accuracy"] <= 1, kafka
    # served accuracy from the predictions topic agrees with the outcomes the join made
    assert abs(kafka["accuracy"] - kafka["outcome_accuracy"]) < 1e-9, kafka
    # drift onset to alarm and to serving, per change point of the stream it replayed
    same = [r for r in results["process"] if r["task"]["kind"] == kafka["task"]["kind"]]
    assert [o["onset"] for o in kafka["onset_delays"]] == same[0]["drifts"], kafka


def test_throughput_bench_quick_prints_every_system_and_the_join() -> None:
    """Its own broker (as `make bench-quick` runs it), the scorer loop, the plain loop,
    a full worker, the latency runs and the join (with its transaction phases, the
    whole run's latency beside the settled part, and the plain EOS loop), to the end."""
    out = run("bench/throughput.py", "--quick", timeout=600)
    for row in ("(a1)", "(a1) before", "(b)", "(b2)", "(a2)", "(a3)", "End-to-end latency", "p99",
                "label -> outcome throughput", "bytes per pending prediction",
                "ms per phase", "whole run, first 0.2 s", "plain EOS loop"):  # fmt: skip
        assert row in out, out
    assert "nan" not in out, out  # every latency run received records


def test_gate_trial_bench_quick_shows_the_old_rule_promoting_worse_versions() -> None:
    """The trial's regression case (issue 23), old rule and new in one run: the old rule
    promotes versions that then serve worse, the new gate none on these streams."""
    out = run("-m", "bench.gate_trial", "--quick", timeout=300)
    for word in ("trump", "synthetic-1", "before", "after, min_rows 148", "served MAE"):
        assert word in out, out
    assert "after: 0 worse promotions" in out, out
    assert "before: 0 worse" not in out, out
