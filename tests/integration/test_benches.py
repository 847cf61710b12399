"""The benchmarks' quick modes keep working (issue 6): each runs to its end against real
Kafka and prints its side-by-side tables. No speed is asserted: the figures depend on
the machine's load (docs/benchmarks.md has the full runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: float) -> str:
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return proc.stdout


def test_throughput_bench_quick_prints_scorer_plain_loop_and_join(kafka_bootstrap: str) -> None:
    out = run("bench/throughput.py", "--quick", "--bootstrap", kafka_bootstrap, timeout=280)
    for row in ("(a1)", "(b) plain confluent-kafka loop", "label -> outcome throughput",
                "bytes per pending prediction"):  # fmt: skip
        assert row in out, out
    assert "outcomes/s" in out and "events/s" in out, out


def test_loop_bench_quick_prints_driftline_against_its_baselines() -> None:
    out = run("-m", "bench.loop", "--quick", "--workers", "2", timeout=280)
    for word in ("Driftline", "frozen", "periodic", "HAT", "agrawal", "sea"):
        assert word in out, out
