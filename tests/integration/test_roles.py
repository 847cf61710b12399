"""Worker roles through the real broker: the scorer and the join+monitor as separate
processes (``driftline worker --role score`` and ``--role join --processes 2``: two join
processes sharing the join's partitions, started by one command) give the same exact
outputs as one worker, and each process does only its part."""

from __future__ import annotations

import json
import random
import time
import urllib.request
from pathlib import Path
from typing import Any

from driftline.settings import Settings
from tests.integration import harness
from tests.integration.churn import example, outcomes_of, predictions_of, start_pipeline, worker_url


def status(where: harness.Process | int) -> dict[str, Any]:
    """A worker's /status.json (a process, or the web port of one)."""
    url = f"http://127.0.0.1:{where}/status.json" if isinstance(where, int) else worker_url(
        where, "/status.json")  # fmt: skip
    with urllib.request.urlopen(url, timeout=10) as resp:
        return dict(json.loads(resp.read()))


def test_scorer_and_join_as_separate_processes_give_exact_outputs(
    settings: Settings, tmp_path: Path
) -> None:
    s, champion, scorer = start_pipeline(settings, tmp_path, role="score")
    join = harness.worker(s, tmp_path, role="join", processes=2).start()
    port = int(join.args[join.args.index("--web-port") + 1])
    deadline = time.monotonic() + 90
    while join.log.read_text().count("driftline worker ready") < 2:
        assert time.monotonic() < deadline and join.running(), join.tail()
        time.sleep(0.2)
    try:
        rng = random.Random(5)
        events = [example(rng, i) for i in range(600)]
        predictions_of(s, events, champion, scorer.tail)
        outcomes_of(s, events, join.tail)

        # the join's monitor publishes the champion's snapshots; the scorer's does not
        snaps = harness.collect(s, "metrics", lambda got: any(
            m["version"] == champion and m["window"].startswith("count") for m in got),
            timeout=30)  # fmt: skip
        assert any(m["version"] == champion for m in snaps)
        # each process does its own part: the scorer scored them all, the joins nothing
        assert status(scorer)["worker"]["scored"] == len(events)
        assert status(scorer)["worker"]["role"] == "score"
        assert [status(port + i)["worker"]["scored"] for i in range(2)] == [None, None]
        assert join.log.read_text().count("ready (role join)") == 2
    finally:
        assert join.stop() == 0  # SIGTERM reaches both children, which stop cleanly
        scorer.stop()
