"""The trainer's training child (driftline.consumers.train_pool): what crosses to it
pickles, it answers as the parent would, a dead child is replaced, and it dies with its
parent. Real spawned processes, no broker."""

from __future__ import annotations

import functools
import logging
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from driftline.consumers import train_pool
from driftline.consumers.train_pool import (
    BrokenProcessPool,
    TrainPool,
    _warm,
    log_progress,
    store_in,
)
from driftline.core.lifecycle.answer import Answer, answer_trigger
from driftline.core.lifecycle.registry import Registry
from tests.unit.core.examples import T0
from tests.unit.core.lifecycle.test_answer import (
    KEY,
    manual_trigger,
    registry_with_champion,
    rows,
)

TIMINGS = ("step_ms", "finished_at_ms", "predict_p50_us", "predict_p95_us")


def comparable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records without what measures wall time (step timings, the gate's latency)."""
    out = []
    for r in records:
        r = {**r, "lineage": {k: v for k, v in r["lineage"].items() if k not in TIMINGS},
             "stage_reason": re.sub(r"p95 latency \d+ us", "", r["stage_reason"])}  # fmt: skip
        if r["gate"] is not None:
            metrics = {k: v for k, v in r["gate"]["candidate_metrics"].items() if k not in TIMINGS}
            summary = re.sub(r"p95 latency \d+ us", "", r["gate"]["summary"])
            r["gate"] = {**r["gate"], "candidate_metrics": metrics, "summary": summary}
        out.append(r)
    return out


@pytest.fixture(scope="module")
def pool() -> Any:
    p = TrainPool(["logistic_regression"])
    p.start()
    yield p
    p.close()


def test_what_crosses_to_the_child_round_trips_through_pickle() -> None:
    reg, models = registry_with_champion(flip=True)
    again = pickle.loads(pickle.dumps(models))
    assert again == models and again["churn"] == models["churn"]
    copy = pickle.loads(pickle.dumps(reg))
    assert isinstance(copy, Registry)
    assert copy.champion("churn") == reg.champion("churn")
    assert copy.versions("churn") == reg.versions("churn")
    clock = functools.partial(int, T0 + 5_000)
    got = answer_trigger(manual_trigger(), rows(500, start=1_000), reg, models, key=KEY,
                         clock_ms=clock, run_id="r", code="c", host="h")  # fmt: skip
    back = pickle.loads(pickle.dumps(got))
    assert isinstance(back, Answer)
    assert (back.stage, back.version, back.records, back.alerts, back.trained_until_ms) == (
        got.stage, got.version, got.records, got.alerts, got.trained_until_ms,
    )  # fmt: skip
    assert back.verdict == got.verdict and back.config == got.config


@pytest.mark.parametrize("flip", [True, False], ids=["promoted", "rejected"])
def test_the_child_answers_as_the_parent_would(pool: TrainPool, flip: bool, tmp_path: Path) -> None:
    reg, models = registry_with_champion(flip=flip)
    trg, data = manual_trigger(), rows(500, start=1_000)
    kw: dict[str, Any] = dict(
        key=KEY, clock_ms=functools.partial(int, T0 + 5_000), run_id="r", code="c", host="h",
        inline_max_bytes=100, store=store_in(tmp_path), progress=functools.partial(log_progress,
        "churn"),
    )  # fmt: skip
    here = answer_trigger(trg, data, reg, models, **kw)
    there = pool.submit(answer_trigger, trg, data, reg, models, **kw).result(timeout=120)
    assert there.stage == here.stage == ("champion" if flip else "rejected")
    assert comparable(there.records) == comparable(here.records)
    assert [a["kind"] for a in there.alerts] == [a["kind"] for a in here.alerts]
    # the artifact, too large to travel inline, was written by the child's store
    uri = there.records[0]["artifact"]["uri"]
    assert uri.startswith("file://") and Path(uri.removeprefix("file://")).is_file()


def test_the_registry_is_pickled_when_submitted(pool: TrainPool) -> None:
    reg, _ = registry_with_champion(flip=True)
    future = pool.submit(Registry.champion, reg, "churn")
    reg.delete("churn", reg.champion("churn")["version"])  # type: ignore[index]
    assert future.result(timeout=60) is not None  # the child got the registry as it was


def test_a_factory_the_warm_up_cannot_import_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="driftline.trainer"):
        assert _warm(("logistic_regression", "no_such_module_x:factory")) == os.getpid()
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("model factory no_such_module_x:factory not imported")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_libc_that_refuses_pdeathsig_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Refusing:
        def prctl(self, *args: int) -> int:
            return -1  # as libc does: no exception, errno set

    monkeypatch.setattr("ctypes.CDLL", lambda *a, **kw: Refusing())
    with caplog.at_level(logging.WARNING, logger="driftline.trainer"):
        train_pool._die_with(os.getppid())  # the parent alive: it goes on
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("training child: PR_SET_PDEATHSIG not set")


def test_a_child_that_dies_is_replaced_for_the_next_call() -> None:
    p = TrainPool()
    try:
        p.start()
        assert p.warm is not None
        first = p.warm.result(timeout=60)
        with pytest.raises(BrokenProcessPool):
            p.submit(os._exit, 3).result(timeout=60)
        assert p.submit(os.getpid).result(timeout=60) not in (first, os.getpid())
        assert p.started == 2
    finally:
        p.close()


CHILD_OF_A_KILLED_PARENT = """
import time
from driftline.consumers.train_pool import TrainPool
p = TrainPool()
p.start()
print(p.warm.result(timeout=60), flush=True)
p.submit(time.sleep, 120)
time.sleep(120)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for init to reap it is dead
        return f.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_child_dies_with_a_killed_trainer() -> None:
    parent = subprocess.Popen([sys.executable, "-c", CHILD_OF_A_KILLED_PARENT],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child)
    finally:
        parent.kill()
        if parent.stdout is not None:
            parent.stdout.close()
