"""The docs' command blocks, run: README.md, docs/client.md and docs/wire-format.md.

Every fenced block of those pages is read from the page itself, so a block that
drifts from the code fails here. A block runs unless the line before it says why not:

- ``<!-- doc-test: skip (REASON) -->``: not run; the reason is required;
- ``<!-- doc-test: until-output (REASON) -->``: a program that runs for ever (a
  subscriber): run in its own process, passed once it printed a line, then stopped;
- ``<!-- doc-test: context NAME (REASON) -->``: a fragment that uses names the reader
  has (``settings``, ``batch``, ``run_training``, ...): run with the context NAME of
  this module (:data:`CONTEXTS`) giving them;
- ``<!-- doc-test: background (REASON) -->``: a server the next blocks talk to (the
  worker of docs/your-model.md, which tests/integration/test_your_model.py runs);
- ``<!-- tested: FILE runs this block -->``: FILE uses the block too; it runs here as
  well.

The blocks talk to ``localhost:9092`` and to the default ``driftline.`` topics: here
that is the test session's broker and a topic prefix of this module's own (the only
rewrite). ``sh`` blocks run with ``bash -eu``; the Python blocks of a page
share one namespace and one working directory, as a reader's session would. The
module also checks a claim of docs/architecture.md ("Lag at rest").
"""

from __future__ import annotations

import ast
import asyncio
import functools
import os
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from driftline import broker
from driftline.client import (
    Alert,
    AsyncProducer,
    AsyncSubscriber,
    Prediction,
    Producer,
    RetrainTrigger,
    Subscriber,
)
from driftline.core.lifecycle.training import bootstrap
from driftline.core.model.config import ModelsConfig
from driftline.kafka import admin
from driftline.procs import env_for
from driftline.settings import Settings
from tests.integration import harness

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("README.md", "docs/client.md", "docs/wire-format.md")
FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(
    r"^<!-- (?:doc-test: (?P<kind>skip|until-output|context|background)(?: (?P<name>[\w-]+))?"
    r"(?: \((?P<why>.+)\))?|(?P<tested>tested: .+)) -->$"
)
MODELS = """
[models.churn]
task = "classification"
factory = "logistic_regression"

[[models.churn.features]]
name = "age"
type = "integer"

[[models.churn.features]]
name = "plan"
type = "category"
categories = ["basic", "family", "pro"]
"""


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    lang: str
    code: str
    kind: str = "run"  # run, skip, until-output, context
    name: str = ""
    why: str = ""

    def __str__(self) -> str:
        return f"{self.page}:{self.line} ({self.lang})"


def blocks(page: str) -> list[Block]:
    """Every fenced block of ``page``, with the marker on the line before it."""
    lines = (ROOT / page).read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        i += 1
        while not lines[i].startswith("```"):
            i += 1
        code = "\n".join(lines[start + 1 : i]) + "\n"
        before = lines[start - 1] if start else ""
        mark = MARKER.match(before)
        if mark and mark.group("kind"):
            out.append(Block(page, start + 1, lang, code, mark.group("kind"),
                             mark.group("name") or "", mark.group("why") or ""))  # fmt: skip
        else:
            assert "doc-test" not in before, f"{page}:{start}: unreadable marker {before!r}"
            out.append(Block(page, start + 1, lang, code))
        i += 1
    return out


def test_every_block_runs_or_says_why_not() -> None:
    """No broker needed: each block is one the tests run, or marked with a reason."""
    found = [b for page in PAGES for b in blocks(page)]
    assert len(found) >= 18
    for b in found:
        if b.kind == "skip":
            assert len(b.why) > 10, f"{b}: a skipped block says why"
            continue
        assert b.lang in ("sh", "python"), f"{b}: only sh and python run; mark it skipped"
        if b.kind == "context":
            assert b.name in CONTEXTS, f"{b}: unknown context {b.name!r}"
        if b.lang == "python":
            flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
            compile(b.code, str(b), "exec", flags=flags)  # at least it parses


# -- the page's world: the session's broker, a prefix of our own, a worker -------------


@dataclass
class World:
    settings: Settings
    work: Path
    worker: harness.Process

    def rewrite(self, code: str) -> str:
        """``localhost:9092`` and ``-t driftline.`` point at this module's broker and topics."""
        s = self.settings
        return code.replace("localhost:9092", s.bootstrap_servers).replace(
            "-t driftline.", f"-t {s.topic_prefix}"
        )

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
        env.update(DRIFTLINE_TOPIC_PREFIX=self.settings.topic_prefix, **extra)
        return env


@pytest.fixture(scope="module")
def world(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    work = tmp_path_factory.mktemp("docs")
    models = work / "models.toml"
    models.write_text(MODELS)
    s = Settings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"d{uuid.uuid4().hex[:8]}.",
                 models_file=models, data_dir=work / "worker-data",
                 monitor_interval_s=1.0)  # fmt: skip
    admin.apply(s)
    rng = random.Random(1)
    rows = []
    for i in range(500):  # 100 held out: the gate's min_holdout_rows
        age, plan = rng.randrange(18, 90), rng.choice(["basic", "family", "pro"])
        rows.append({"event_id": f"r{i}", "event_time_ms": 1_700_000_000_000 + i,
                     "features": {"age": age, "plan": plan}, "label": age > 50})  # fmt: skip
    key = s.signing_key.get_secret_value().encode()
    _, records = bootstrap(rows, ModelsConfig.load(models)["churn"], key=key, by="test",
                           reason="docs", now_ms=int(time.time() * 1000))  # fmt: skip
    harness.publish(s, "registry", "io.driftline.ModelVersion", records,
                    key=lambda r: f"{r['model']}/{r['version']}")  # fmt: skip
    (work / "schemas").symlink_to(ROOT / "schemas")  # the pages name schemas/... relatively
    proc = harness.worker(s, work).start()
    try:
        yield World(s, work, proc)
    finally:
        proc.stop()


def run_sh(b: Block, code: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(["bash", "-eu", "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, f"{b} failed:\n{code}\n{done.stdout}\n{done.stderr}"
    expected = re.search(r"^# ([0-9a-f]{8,}):", code, re.M)  # a documented output
    if expected:
        assert done.stdout.strip().startswith(expected.group(1)), (b, done.stdout)
    return done.stdout


def run_until_output(b: Block, code: str, world: World, timeout: float = 90) -> str:
    """Run a block that never ends in its own process; its first printed line."""
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=world.work, env=world.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    assert line and line[0].strip(), f"{b} printed nothing in {timeout} s:\n{err}"
    return line[0]


def run_python(b: Block, code: str, namespace: dict[str, Any]) -> None:
    compiled = compile(code, str(b), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, namespace)  # a coroutine when the block awaits at top level
    if asyncio.iscoroutine(result):
        asyncio.run(result)


# -- contexts: what a fragment's reader already has --------------------------------------


class Done(Exception):
    """Ends a fragment's endless loop once it did its work."""


@contextmanager
def feeding(s: Settings, make: Callable[[int], Any]) -> Iterator[None]:
    """Produce ``make(i)`` every 0.3 s on a thread while the block runs."""
    stop = threading.Event()

    def feed() -> None:
        with Producer(s, app="docs-feed") as producer:
            i = 0
            while not stop.is_set():
                producer.send(make(i)).wait(10)
                i += 1
                stop.wait(0.3)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def async_producer(world: World, run: Callable[[dict[str, Any]], None]) -> None:
    batch = [{"age": 20 + i, "plan": "pro"} for i in range(5)]
    ns: dict[str, Any] = {"settings": world.settings, "batch": batch,
                          "AsyncProducer": AsyncProducer, "asyncio": asyncio}  # fmt: skip
    run(ns)
    assert len(ns["reports"]) == len(batch)
    assert {r.topic for r in ns["reports"]} == {world.settings.topic("features")}


def trigger_hook(world: World, run: Callable[[dict[str, Any]], None]) -> None:
    s, trained = world.settings, []

    def run_training(record: RetrainTrigger) -> None:
        trained.append(record)
        if len(trained) == 2:
            raise Done  # the first job was committed; stop at the second

    def trigger(i: int) -> RetrainTrigger:
        return RetrainTrigger(trigger_id=f"t{i}", model="churn", idempotency_key=f"k{i}",
                              reasons=["manual"], evidence={}, requested_by="docs",
                              created_at_ms=int(time.time() * 1000))  # fmt: skip

    ns = {"settings": s, "Subscriber": Subscriber, "RetrainTrigger": RetrainTrigger,
          "run_training": run_training}  # fmt: skip
    with pytest.raises(Done), feeding(s, trigger):
        run(ns)
    assert [t.model for t in trained] == ["churn", "churn"]
    committed = harness.offsets(s, s.topic("retrain"), f"trainer-hook-{s.topic('retrain')}")
    assert sum(max(o, 0) for o in committed.values()) >= 1  # the first one, after its job


def pager(world: World, run: Callable[[dict[str, Any]], None]) -> None:
    s, paged = world.settings, []

    async def page(record: Alert) -> None:
        paged.append(record)
        raise Done

    def alert(i: int) -> Alert:
        now = int(time.time() * 1000)
        return Alert(alert_id=f"a{i}", model="churn", kind="skew_rate", severity="warning",
                     message="docs", evidence={}, created_at_ms=now)  # fmt: skip

    ns = {"settings": s, "AsyncSubscriber": AsyncSubscriber, "Alert": Alert, "page": page}
    with pytest.raises(Done), feeding(s, alert):
        run(ns)
    assert [a.model for a in paged] == ["churn"]


CONTEXTS: dict[str, Callable[[World, Callable[[dict[str, Any]], None]], None]] = {
    "async-producer": async_producer,
    "trigger-hook": trigger_hook,
    "pager": pager,
}


# -- the pages -------------------------------------------------------------------------


def test_readme_blocks(world: World, tmp_path: Path) -> None:
    """The local broker block starts a broker of its own (a free port, a directory of
    the test's): every command after `broker up` must find it with no setting at all."""
    directory = tmp_path / "broker"
    env = world.env(DRIFTLINE_BROKER_DIR=str(directory), DRIFTLINE_BROKER_PORT="auto")
    del env["DRIFTLINE_TOPIC_PREFIX"]  # the README's broker is its own: default topics
    ran = 0
    try:
        for b in blocks("README.md"):
            if b.kind == "skip":
                continue
            out = run_sh(b, b.code, ROOT, env)
            ran += 1
            if "broker up" in b.code:
                assert re.search(r"^127\.0\.0\.1:\d+$", out, re.M), out
                assert "driftline.features" in out.split()  # kafka topics --list
    finally:
        broker.down(directory, purge=True)
    assert ran >= 1


def test_client_blocks(world: World) -> None:
    namespace: dict[str, Any] = {}
    ran = 0
    for b in blocks("docs/client.md"):
        code = world.rewrite(b.code)
        if b.kind == "skip":
            continue
        if b.kind == "until-output":
            line = run_until_output(b, code, world).split()
            assert len(line) == 4 and line[1] in ("True", "False"), line  # id, class, p, offset
        elif b.kind == "context":
            CONTEXTS[b.name](world, functools.partial(run_python, b, code))
        else:
            run_python(b, code, namespace)
        ran += 1
    assert ran >= 4


def test_wire_format_blocks(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(world.work)
    for k, v in world.env().items():
        monkeypatch.setenv(k, v)
    namespace: dict[str, Any] = {}
    ran = 0
    for b in blocks("docs/wire-format.md"):
        if b.kind == "skip":
            continue
        code = world.rewrite(b.code)
        if b.lang == "sh":
            run_sh(b, code, world.work, world.env())
        else:
            run_python(b, code, namespace)
        ran += 1
    assert ran >= 8
    # what the blocks left: the event they built, framed predictions they read back
    assert (world.work / "event.bin").read_bytes()[:2] == b"\xc3\x01"
    framed = (world.work / "predictions.bin").read_bytes()
    values = list(namespace["framed_values"](framed))
    assert all(v[:2] == b"\xc3\x01" for v in values)


# -- a claim of docs/architecture.md -----------------------------------------------------


def describe(world: World, group: str) -> dict[int, str]:
    """LAG by partition of ``group`` on predictions, as `driftline kafka` prints it."""
    s = world.settings
    out = subprocess.run(
        [sys.executable, "-m", "driftline", "kafka", "consumer-groups", "--describe", "--group",
         group], env=env_for(s), capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    lag = {}
    for row in out.splitlines():
        cols = row.split()
        if len(cols) >= 6 and cols[1] == s.topic("predictions"):
            lag[int(cols[2])] = cols[5]
    return lag


def test_lag_at_rest_is_zero_for_the_worker_and_one_for_a_subscriber(world: World) -> None:
    """docs/architecture.md, "Lag at rest": the join commits its position past each
    transaction's commit marker, a Subscriber commits after its last record."""
    s = world.settings
    rng = random.Random(5)
    events = [{"event_id": f"lag-{i}", "model": "churn", "event_time_ms": 1_700_000_000_000,
               "features": {"age": rng.randrange(18, 90), "plan": "pro"}, "segment": {}}
              for i in range(60)]  # fmt: skip
    harness.produce(s, "features", harness.encoded("io.driftline.FeatureEvent", events))
    ends = harness.offsets(s, s.topic("predictions"))
    written = {p for p, end in ends.items() if end > 0}
    join = f"{s.topic_prefix}worker".replace(".", "-") + "-join"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lag = describe(world, join)
        if written and all(lag.get(p) == "0" for p in written):
            break
        time.sleep(2)
    assert written and all(lag.get(p) == "0" for p in written), lag

    with Subscriber(Prediction, s, app="lagprobe", start="earliest", idle_timeout=8) as sub:
        n = sum(1 for _ in sub)
    assert n >= 60
    lag = describe(world, f"lagprobe-{s.topic('predictions')}")
    assert {lag.get(p) for p in written} == {"1"}, lag
