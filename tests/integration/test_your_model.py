"""docs/your-model.md, run: every fenced block of the page, in order, read from the page
itself, against the session's broker and PostgreSQL, so the page cannot drift from the
code.

The blocks are one terminal session: each ``sh`` block runs with ``bash -eu`` in one
working directory, after the ``export`` lines of the blocks before it. A block marked
``<!-- doc-test: background (REASON) -->`` (the worker, the trainer) runs in its own
process until the page ends; ``<!-- doc-test: skip (REASON) -->`` is not run. The only
rewrites: the environment points the commands at this test's broker and topic prefix
(and a monitor tick of 1 s), the page's PostgreSQL URL becomes a database of the
test's own, and the clone the bench runs from is this checkout.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import BinaryIO

import pytest

from driftline.kafka import admin
from driftline.settings import Settings
from tests.integration.test_docs import blocks

PAGE = "docs/your-model.md"
PAGE_URL = "postgresql+psycopg://driftline@localhost:5432/driftline"
PAGE_CLONE = "export DRIFTLINE_CLONE=$HOME/driftline"
ROOT = Path(__file__).resolve().parents[2]
MARK = re.compile(r"^<!-- doc-test: (background|skip) \(.{10,}\) -->$")


def exports(code: str) -> list[str]:
    return [line for line in code.splitlines() if line.startswith("export ")]


def test_every_block_runs_or_says_why_not() -> None:
    found = blocks(PAGE)
    assert len(found) >= 12
    lines = (Path(__file__).resolve().parents[2] / PAGE).read_text().splitlines()
    for b in found:
        before = lines[b.line - 2]
        assert b.lang == "sh", f"{b}: the page is a terminal session"
        assert before == "" or MARK.match(before), f"{b}: unreadable marker {before!r}"
    assert PAGE_URL in "".join(b.code for b in found)
    assert PAGE_CLONE in "".join(b.code for b in found)


@pytest.mark.timeout(1500)  # 12 commands and two processes on a shared 2-core machine
def test_the_page_from_top_to_bottom(
    kafka_bootstrap: str, postgres_db: str, tmp_path: Path
) -> None:
    s = Settings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"y{uuid.uuid4().hex[:8]}.")
    admin.apply(s)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    # the reader's terminal has Driftline's environment active: its python and driftline
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(DRIFTLINE_BOOTSTRAP_SERVERS=kafka_bootstrap, DRIFTLINE_TOPIC_PREFIX=s.topic_prefix,
               DRIFTLINE_MONITOR_INTERVAL_S="1")  # fmt: skip
    lines = (Path(__file__).resolve().parents[2] / PAGE).read_text().splitlines()
    background: list[tuple[subprocess.Popen[bytes], BinaryIO]] = []
    outputs: list[str] = []
    session: list[str] = []
    try:
        for b in blocks(PAGE):
            marker = MARK.match(lines[b.line - 2])
            kind = marker.group(1) if marker else "run"
            if kind == "skip":
                continue
            code = b.code.replace(
                PAGE_URL, postgres_db.replace("postgresql://", "postgresql+psycopg://", 1)
            ).replace(PAGE_CLONE, f"export DRIFTLINE_CLONE={ROOT}")
            script = "\n".join([*session, code])
            session += exports(code)
            if kind == "background":
                log = (tmp_path / f"bg-{len(background)}.log").open("wb")
                proc = subprocess.Popen(
                    ["bash", "-eu", "-c", "\n".join([*session, f"exec {code.strip()}"])],
                    cwd=tmp_path, env=env,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
                background.append((proc, log))
                continue
            started = time.monotonic()
            done = subprocess.run(
                ["bash", "-eu", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                text=True, timeout=900, check=False,
            )  # fmt: skip
            assert done.returncode == 0, f"{b} failed:\n{code}\n{done.stdout}\n{done.stderr}"
            outputs.append(done.stdout)
            if "driftline tail" in code:  # fail here, not at the end, when nothing came
                assert done.stdout.strip() not in ("", "0"), f"{b}: nothing read"
            print(f"{b}: {time.monotonic() - started:.1f} s", file=sys.stderr)
        for proc, _ in background:
            assert proc.poll() is None, "a background process of the page stopped early"
    finally:
        for proc, out in background:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            out.close()
    page = "\n".join(outputs)
    assert "event_id,empty_server_form_handler" in page  # the CSV written from river's data
    assert "OK (1 model(s): phishing)" in page
    assert re.search(r"phishing v1-\w+ -> champion", page), page
    assert page.count('"topic": "' + s.topic("predictions")) == 3
    assert re.search(r"^ *750$", page, re.M), page  # every outcome joined
    assert '"kind": "' in page and s.topic("alerts") in page
    assert re.search(r"phishing v2-\w+: (champion|challenger|rejected)", page), page
    assert re.search(r"^\| all\.csv +\| unknown +\| 0 +\| [01]\.\d{3} ", page, re.M), page  # bench
    assert "report.html" in page and (tmp_path / "report" / "report.html").exists()
    # the trainer's answer in seconds and in the events that arrived meanwhile
    assert re.search(r"answered [\d.]+ s and [\d,]+ events \(features\) after the trigger", page)
    assert re.search(r"^v1-\w+ (champion|challenger|archived)$", page, re.M), page  # SQL view
