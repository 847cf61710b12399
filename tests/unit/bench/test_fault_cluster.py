"""The fault harness on a cluster (``--brokers 3``) without a broker: its schedule, which
node each fault picks, the replication checks, the per-fault windows of latency and
stops, and the retried-transaction counts read from /metrics."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException

from bench.faults import cluster as cluster_faults
from bench.faults.cluster import KINDS, Ops, Part, leader_counts, out_of_isr, under_replicated
from bench.faults.learning import Learning
from bench.faults.report import render
from bench.faults.retries import parse
from bench.faults.run import FIRST_AT, Fault, Options, Run, schedule
from bench.faults.timeline import LEAD_S, quantile, window, windows
from bench.faults.verify import Result, Row
from bench.faults.watch import Probe
from driftline import broker


class Admins(list[dict[str, object]]):
    """An AdminClient stand-in: connects to nothing, keeps the configurations asked for."""

    def __call__(self, conf: dict[str, object]) -> dict[str, object]:
        self.append(conf)
        return conf


def test_the_quick_cluster_schedule_is_a_leader_kill_then_a_rolling_restart() -> None:
    faults = schedule(Options(events=1000, quick=True, brokers=3))
    assert [(f.kind, f.at) for f in faults] == [("leader", FIRST_AT), ("rolling", 0.4)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_full_cluster_schedule_has_every_broker_fault_and_the_worker_faults(
    seed: int,
) -> None:
    faults = schedule(Options(events=100_000, brokers=3, seed=seed))
    kinds = Counter(f.kind for f in faults)
    assert kinds == Counter({"stop": 1, "kill": 2, "burst": 1, "leader": 1, "rolling": 1,
                             "controller": 1, "isr": 1, "trainer": 3})  # fmt: skip
    assert "broker" not in kinds  # the single broker's restart is the cluster's faults
    assert faults[0].kind == "stop"
    assert [f.at for f in faults] == sorted(f.at for f in faults)


def test_only_a_cluster_fault_needs_a_cluster() -> None:
    for kind in KINDS:
        assert [f.kind for f in schedule(Options(only=kind, brokers=3))] == [kind]
        with pytest.raises(ValueError, match="needs --brokers 3"):
            schedule(Options(only=kind))
    with pytest.raises(ValueError, match="needs one broker"):
        schedule(Options(only="broker", brokers=3))


@pytest.mark.parametrize(
    ("fault", "name"),
    [
        (Fault(0, "leader", 2), "SIGKILL leader n2"),
        (Fault(0, "rolling"), "rolling restart"),
        (Fault(0, "controller", 1), "SIGKILL controller n1"),
        (Fault(0, "isr", 3), "SIGSTOP n3 out of ISR"),
        (Fault(0, "leader"), "SIGKILL leader"),  # not fired: no node chosen yet
        (Fault(0, "isr"), "SIGSTOP a node out of ISR"),
    ],
)
def test_cluster_fault_names(fault: Fault, name: str) -> None:
    assert fault.name() == name


PARTS = [
    Part("f1.features", 0, 1, (1, 2, 3), (1, 2, 3)),
    Part("f1.features", 1, 2, (2, 3, 1), (2, 3, 1)),
    Part("f1-faults-join-changelog", 0, 2, (2, 1, 3), (2, 1)),
    Part("f1.predictions", 0, 2, (2, 3, 1), (2, 1)),
    Part("__consumer_offsets", 0, 3, (3, 1, 2), (3, 1, 2)),
    Part("other.topic", 0, 3, (3, 1, 2), (3, 1, 2)),
    Part("f1.labels", 0, -1, (3, 1, 2), (1,)),  # no leader: not counted
]


def test_leaders_are_counted_over_the_runs_topics_only() -> None:
    assert leader_counts(PARTS, "f1") == Counter({2: 3, 1: 1})


def test_under_replicated_and_out_of_the_isr() -> None:
    assert [(p.topic, p.partition) for p in under_replicated(PARTS)] == [
        ("f1-faults-join-changelog", 0), ("f1.predictions", 0), ("f1.labels", 0)]  # fmt: skip
    assert not out_of_isr(PARTS, 3)  # still in the ISR of features and others
    assert out_of_isr([p for p in PARTS if p.topic in ("f1.predictions", "f1.labels")], 3)
    assert out_of_isr([], 3)


def test_quantiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (quantile(values, 0.5), quantile(values, 0.99), quantile(values, 1.0)) == (
        50.0, 99.0, 100.0)  # fmt: skip
    assert quantile([7.0], 0.99) == 7.0


def test_a_window_measures_latency_by_production_time_and_the_longest_stop() -> None:
    produced = [float(i) for i in range(20)]  # step i at i s
    lag = 5
    arrivals = [
        (0.5, "predictions", 0, 0),
        (1.5, "predictions", 0, 1),
        (9.0, "predictions", 0, 2),  # 7 s late: the fault's stop
        (9.1, "predictions", 0, 3),
        (9.2, "outcomes", 1, 0),  # label of event 0 produced at step 5: 4.2 s
        (10.5, "predictions", 1, 10),
    ]
    w = window(arrivals, produced, lag, 2.0, 10.0, [("predictions", 0), ("outcomes", 1),
                                                    ("predictions", 1)])  # fmt: skip
    # predictions of events 2 and 3 were produced in [2, 10): 7.0 and 6.1 s
    assert w.predictions == 2
    assert (w.p50, w.p99, w.max) == pytest.approx((6.1, 7.0, 7.0))
    assert w.outcome_p50 == pytest.approx(4.2)
    # predictions/1 had nothing in [2, 10): stopped for the whole window
    assert w.stop == pytest.approx(8.0) and w.stop_where == "predictions/1"


def test_windows_run_from_each_start_to_the_next() -> None:
    produced = [float(i) for i in range(10)]
    arrivals = [(i + 0.5, "predictions", 0, i) for i in range(10)]
    ws = windows(arrivals, produced, 0, [0.0, 4.0, 7.0], 10.0)
    # an event counts for the window that starts within LEAD_S (2 s) after it was
    # produced: events 2 and 3 were in flight when the fault at 4 s hit
    assert LEAD_S == 2.0
    assert [(w.t0, w.t1, w.predictions) for w in ws] == [(0.0, 4.0, 2), (4.0, 7.0, 3),
                                                          (7.0, 10.0, 3)]  # fmt: skip
    assert all(w.p50 == pytest.approx(0.5) for w in ws)


def test_retried_transactions_are_read_from_the_metrics_page() -> None:
    page = (
        "# HELP driftline_transactions_retried_total Batches read again\n"
        "# TYPE driftline_transactions_retried_total counter\n"
        'driftline_transactions_retried_total{loop="scorer",why="stuck"} 1.0\n'
        'driftline_transactions_retried_total{loop="join",why="aborted"} 2.0\n'
        'driftline_transactions_retried_created{loop="join",why="aborted"} 1.7e9\n'
    )
    assert parse(page) == {("scorer", "stuck"): 1.0, ("join", "aborted"): 2.0}


def test_the_report_shows_each_cluster_fault_with_its_steps_and_the_targets() -> None:
    o = Options(events=1000, quick=True, brokers=3)
    faults = schedule(o)
    for k, f in enumerate(faults):
        recovered = 12.5 if f.kind == "leader" else 3.0
        f.t, f.probe = 10.0 * (k + 1), Probe(0.0, 0, 0, recovered_s=recovered)
        f.target, f.detail = 2, "leads 9 of 20 partitions"
        f.steps = [(10.0 * (k + 1), "n2 SIGKILLed")]
        f.retried = Counter({"stuck": 2, "aborted": 1})
    learning = Learning(checkpoints=5, learners=["online-1"], rows=800, outcomes=800)
    r = Run(o, faults=faults, result=Result([Row("prediction", 1000, 1000)]), complete=True,
            learning=learning)  # fmt: skip
    text = render(r)
    assert "SIGKILL leader n2" in text and "leads 9 of 20 partitions" in text
    assert "n2 SIGKILLed" in text and "1/0/2" in text
    assert "target: outputs again within 10 s of SIGKILL leader n2: 12.5 s, missed" in text
    assert text.splitlines()[-1] == "RESULT: PASS"


class _PausedCluster:
    """A cluster whose metadata never answers while a node is paused: records signals."""

    def __init__(self) -> None:
        self.nodes = {k: broker.Node(k, Path(f"/nonexistent/n{k}"), 1000 + k, 2000 + k)
                      for k in (1, 2, 3)}  # fmt: skip
        self.signals: list[tuple[int, int]] = []

    def signal(self, k: int, sig: int) -> None:
        self.signals.append((k, sig))


def test_a_paused_node_is_resumed_even_when_the_wait_for_the_isr_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full run at load 26 left the paused node stopped for good: every metadata request
    timed out and the fault's thread ended before its SIGCONT."""
    steps: list[str] = []
    cl = _PausedCluster()
    admins = Admins()
    monkeypatch.setattr(cluster_faults, "AdminClient", admins)
    ops = cluster_faults.Ops(cl, {"bootstrap.servers": "127.0.0.1:1"}, "f1", steps.append)  # type: ignore[arg-type]

    def no_answer(*_a: object, **_k: object) -> list[Part]:
        raise RuntimeError("metadata lost")

    monkeypatch.setattr(cluster_faults, "partitions", no_answer)
    with pytest.raises(RuntimeError, match="metadata lost"):
        ops.run("isr", 3, "")
    assert cl.signals == [(3, signal.SIGSTOP), (3, signal.SIGCONT)]
    assert steps == ["n3 resumed (SIGCONT)"]


def test_the_wait_for_the_isr_asks_again_when_metadata_times_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps: list[str] = []
    cl = _PausedCluster()
    admins = Admins()
    monkeypatch.setattr(cluster_faults, "AdminClient", admins)
    ops = cluster_faults.Ops(cl, {"bootstrap.servers": "127.0.0.1:1"}, "f1", steps.append)  # type: ignore[arg-type]
    answers: list[list[Part] | KafkaException] = [
        KafkaException(KafkaError(KafkaError._TIMED_OUT, "Failed to get metadata")),
        [Part("f1.predictions", 0, 1, (1, 2, 3), (1, 2, 3))],  # still in the ISR
        [Part("f1.predictions", 0, 1, (1, 2, 3), (1, 2))],  # out
    ]
    asked: list[str] = []

    def partitions(admin: object, tries: int = 6) -> list[Part]:
        asked.append(str(tries))
        got = answers.pop(0)
        if isinstance(got, KafkaException):
            raise got
        return got

    monkeypatch.setattr(cluster_faults, "partitions", partitions)
    monkeypatch.setattr(time, "sleep", lambda _s: None)
    monkeypatch.setattr(Ops, "_in_sync", lambda self: steps.append("in sync"))
    ops.run("isr", 3, "")
    assert asked == ["1", "1", "1"]  # one try each, from the other nodes only
    assert admins[-1]["bootstrap.servers"] == "127.0.0.1:1001,127.0.0.1:1002"
    assert steps[0] == "metadata not answered (Failed to get metadata); asking again"
    assert steps[1].startswith("n3 out of every ISR after")
    assert steps[2:] == ["n3 resumed (SIGCONT)", "in sync"]
    assert cl.signals == [(3, signal.SIGSTOP), (3, signal.SIGCONT)]
