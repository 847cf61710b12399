"""The loop bench's bookkeeping without a broker (bench/loop): promotions and rollbacks
from registry records, trigger-to-serving from lineage and served versions, the oracle's
schedule, the online baselines' cost, the summary's shares and the report's targets."""

from __future__ import annotations

import doctest
import json
import math
from pathlib import Path
from typing import Any

import pytest

import bench.loop.baselines as baselines
import bench.loop.lineage as lineage
import bench.loop.runs as runs
import bench.loop.summary as summary
from bench.loop.cli import main
from bench.loop.kafka import measure
from bench.loop.report import report, targets
from driftline.core.model.config import ModelConfig
from driftline.demo.synthetic import Row


@pytest.mark.parametrize("module", [lineage, summary, baselines, runs])
def test_docstring_examples(module: Any) -> None:
    assert doctest.testmod(module).failed == 0


def _recs(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"version": v, "stage": s} for v, s in pairs]


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (_recs(("v1", "champion")), (0, 0, 0, 0)),
        (_recs(("v1", "champion"), ("v1", "champion")), (0, 0, 0, 0)),  # a repeat
        (_recs(("v1", "champion"), ("v2", "candidate"), ("v2", "rejected")), (0, 0, 0, 1)),
        (_recs(("v1", "champion"), ("v2", "champion"), ("v3", "champion")), (2, 0, 0, 0)),
        (_recs(("v1", "champion"), ("v2", "champion"), ("v1", "champion")), (1, 1, 0, 0)),
        (_recs(("v1", "champion"), ("v2", "champion"), ("v3", "champion"), ("v2", "champion"),
               ("v3", "champion")), (2, 2, 0, 0)),
        # kept in shadow by the gate, one of them later archived, the other promoted
        (_recs(("v1", "champion"), ("v2", "candidate"), ("v2", "challenger"),
               ("v3", "candidate"), ("v3", "challenger"), ("v2", "archived"),
               ("v3", "champion")), (1, 0, 2, 0)),
        (_recs(("v1", "champion"), ("v2", "challenger"), ("v2", "challenger")), (0, 0, 1, 0)),
    ],
)  # fmt: skip
def test_stage_counts(records: list[dict[str, Any]], expected: tuple[int, int, int, int]) -> None:
    c = lineage.stage_counts(records)
    assert (c["promotions"], c["rollbacks"], c["challengers"], c["rejected"]) == expected


def test_trigger_to_serving_skips_versions_without_a_trigger_or_never_served() -> None:
    served = [(1_000 + 10 * i, i, "v1" if i < 40 else "v2" if i < 80 else "v3") for i in range(100)]
    champions = [
        {"version": "v2", "lineage": {"trigger_id": "t1"}},
        {"version": "v2", "lineage": {"trigger_id": "t1"}},  # repeated record: counted once
        {"version": "v3", "lineage": {"trigger_id": None}},  # promoted without a trigger
        {"version": "v4", "lineage": {"trigger_id": "t2"}},  # never served
    ]
    got = lineage.trigger_to_serving({"t1": 1_100, "t2": 1_900}, champions, served)
    assert got == [{"version": "v2", "trigger_id": "t1", "seconds": 0.3, "events": 30}]


def test_trigger_before_any_prediction_counts_from_the_stream_start() -> None:
    served = [(1_000 + i, i, "v2") for i in range(5)]
    got = lineage.trigger_to_serving(
        {"t": 500}, [{"version": "v2", "lineage": {"trigger_id": "t"}}], served
    )
    assert got[0]["events"] == 1 and got[0]["seconds"] == 0.5


@pytest.mark.parametrize(
    ("onsets", "alarms", "served_from", "width", "expected"),
    [
        # an alarm 40 events after the onset, the next version served 200 after
        ([1_000], [1_040], [0, 1_200], 0, [(40, 200)]),
        # an alarm before the onset is no answer; a second alarm changes nothing
        ([1_000], [900, 1_050, 1_060], [0, 1_100], 0, [(50, 100)]),
        # a version first served before the alarm is not its answer
        ([1_000], [1_050], [0, 1_020, 1_300], 0, [(50, 300)]),
        # an answer served after the next onset belongs to no onset; missed: None
        ([1_000, 2_000], [1_500], [0, 2_100], 0, [(500, None), (None, None)]),
        # a gradual change: an alarm from d - width answers it (negative delay)
        ([1_000, 2_000], [950, 1_960], [0, 1_010], 100, [(-50, 10), (-40, None)]),
        # no onsets (a user's file): nothing
        ([], [10], [0, 20], 0, []),
    ],
)  # fmt: skip
def test_onset_delays(
    onsets: list[int], alarms: list[int], served_from: list[int], width: int,
    expected: list[tuple[int | None, int | None]],
) -> None:  # fmt: skip
    got = lineage.onset_delays(onsets, alarms, served_from, width)
    assert [o["onset"] for o in got] == onsets
    assert [(o["alarm"], o["serving"]) for o in got] == expected


@pytest.mark.parametrize(
    ("served", "expected"),
    [
        ([], {}),
        ([(5, "v1"), (3, "v1")], {"v1": 3}),
        # partitions interleave two versions around a switch: each one's first event
        ([(10, "v1"), (12, "v2"), (11, "v1"), (13, "v1"), (14, "v2")], {"v1": 10, "v2": 12}),
    ],
)
def test_first_served(served: list[tuple[int, str]], expected: dict[str, int]) -> None:
    assert lineage.first_served(served) == expected


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        ([], (0, 0, 0, None, None, None, None)),
        ([[{"alarm": 10, "serving": None}]], (1, 1, 0, 10, 10, None, None)),
        # pooled over runs: nearest-rank p50 and p99
        ([[{"alarm": a, "serving": 10 * a} for a in range(1, 51)],
          [{"alarm": a, "serving": 10 * a} for a in range(51, 101)]],
         (100, 100, 100, 50, 99, 500, 990)),
    ],
)  # fmt: skip
def test_onsets_summary(runs: list[list[dict[str, Any]]], expected: tuple[Any, ...]) -> None:
    o = summary.onsets(runs)
    keys = ("alarm_p50", "alarm_p99", "serving_p50", "serving_p99")
    got = tuple(None if math.isnan(o[k]) else o[k] for k in keys)
    assert (o["onsets"], o["alarmed"], o["served"], *got) == expected


def test_positions_place_wall_clock_times_in_the_stream() -> None:
    served = [(1_000 + 10 * i, i, "v1") for i in range(10)]
    assert lineage.positions(served, [990, 1_000, 1_055, 5_000]) == [-1, 0, 5, 9]


class Const:
    """A model that always predicts ``value``."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.learnt: list[Any] = []

    def predict_proba_one(self, x: dict[str, Any]) -> dict[Any, float]:
        return {self.value: 1.0}

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        self.learnt.append(y)


def _rows(labels: list[Any], first: int = 0) -> list[Row]:
    return [Row(first + i, {"x": float(i)}, y, "c") for i, y in enumerate(labels)]


def test_online_learns_each_label_delay_events_late() -> None:
    model = Const(True)
    out = baselines.online(model, _rows([False]), _rows([True, False, True, True], 1), delay=2)
    assert out.correct == [True, False, True, True]
    assert model.learnt == [False, True, False]  # the warm-up row, then events 1 and 2
    assert out.learns == 2 and out.us_per_learn >= 0 and out.cpu_us_per_learn >= 0


@pytest.mark.parametrize(
    ("retrain", "sizes"),
    [
        ({"min_rows": 500, "max_rows": 8_000}, [500, 1_000, 2_000, 4_000, 8_000]),
        ({"min_rows": 500, "max_rows": 3_000}, [500, 1_000, 2_000]),
        ({"min_rows": 500, "max_rows": 8_000, "growth": None}, [500]),
        ({"min_rows": 100, "last_n": 1_000, "growth": 3.0}, [100, 300, 900]),
    ],
)
def test_oracle_sizes_follow_the_policy(retrain: dict[str, Any], sizes: list[int]) -> None:
    assert baselines.oracle_sizes(ModelConfig("m", retrain=retrain)) == sizes


def test_oracle_serves_post_change_models_after_the_label_delay() -> None:
    """Concept True until 400, False after; events from 100. A model trained on 100
    post-change rows serves from 400 + 100 + 50, one on 200 from 650; the initial model
    (always True) serves until then."""
    config = ModelConfig("m", factory="logistic_regression",
                         retrain={"min_rows": 100, "max_rows": 200})  # fmt: skip
    rows = _rows([i < 400 for i in range(100, 800)], first=100)
    correct, retrains = baselines.oracle(config, Const(True), rows, [400, 2_000], delay=50)
    assert retrains == 2
    assert len(correct) == 700
    assert all(correct[: 400 - 100])  # before the change the initial model is right
    assert not any(correct[300:450])  # 400..549: the initial model, wrong
    assert all(correct[450:])  # from 550 the model trained after the change


def test_oracle_never_serves_a_model_across_the_next_change() -> None:
    config = ModelConfig("m", factory="logistic_regression",
                         retrain={"min_rows": 100, "max_rows": 400})  # fmt: skip
    rows = _rows([(i // 300) % 2 == 0 for i in range(900)])
    _, retrains = baselines.oracle(config, Const(True), rows, [300, 600], delay=50)
    # after 300: 100 rows (serves from 450), 200 (from 550); 400 would serve after 600
    assert retrains == 4


def _prediction(i: int, version: str, prediction: Any, at: int) -> dict[str, Any]:
    return {"event_id": f"demo-{i:07d}", "version": version, "prediction": prediction,
            "event_time_ms": 10_000 + i, "predicted_at_ms": at}  # fmt: skip


def test_measure_reads_served_accuracy_from_the_predictions() -> None:
    replayed = _rows([True, False, True, True], first=10)
    got = {
        "predictions": [
            _prediction(10, "v1", True, 10_020), _prediction(11, "v1", True, 10_030),
            _prediction(11, "v1", True, 10_030),  # a duplicate: counted, not scored twice
            _prediction(12, "v2", True, 10_040),  # event 13: no prediction
        ],
        "retrain": [{"trigger_id": "t", "created_at_ms": 10_031, "reasons": ["concept_drift"]}],
        "registry": [
            {"version": "v1", "stage": "champion", "stage_changed_at_ms": 1, "lineage": {}},
            {"version": "v2", "stage": "champion", "stage_changed_at_ms": 2,
             "lineage": {"trigger_id": "t"}},
        ],
        "alerts": [],
    }  # fmt: skip
    m = measure(replayed, got)
    assert m["onset_delays"] == []
    assert m["accuracy"] == 2 / 4
    assert (m["missing"], m["duplicates"], m["predictions"]) == (1, 1, 3)
    assert m["rate"] == pytest.approx(2 / 0.002)
    assert (m["triggers"], m["promotions"], m["rollbacks"]) == (1, 1, 0)
    assert m["trigger_to_serving"] == [
        {"version": "v2", "trigger_id": "t", "seconds": 0.009, "events": 1}
    ]
    assert m["reasons"] == {"concept_drift": 1}
    assert math.isnan(m["label_to_learnt_ms"]["p50"])  # no outcomes read: no figure


def _checkpoint(at: int, ranges: list[tuple[int, int, int]]) -> dict[str, Any]:
    return {"version": "online-1", "stage": "checkpoint", "stage_changed_at_ms": at,
            "lineage": {"data_ranges": [{"topic": "o", "partition": p, "start_offset": a,
                                         "end_offset": b} for p, a, b in ranges]}}  # fmt: skip


def test_label_to_learnt_reads_each_partition_and_the_furthest_reach() -> None:
    """Each outcome is learnt when the first checkpoint reaching past its offset on its
    partition is published; a checkpoint that reaches less far (a learner resumed from an
    older state) changes nothing; outcomes past the last checkpoint have no time."""
    outs = [{"label_time_ms": 1_000, "_at": (0, 0, 1_020)},
            {"label_time_ms": 1_000, "_at": (1, 0, 1_030)},
            {"label_time_ms": 1_100, "_at": (0, 1, 1_110)},
            {"label_time_ms": 1_200, "_at": (1, 5, 1_240)}]  # fmt: skip
    cps = [_checkpoint(1_500, [(0, 0, 2), (1, 0, 1)]), _checkpoint(1_600, [(0, 0, 1)]),
           _checkpoint(1_400, [(0, 0, 1)])]  # fmt: skip
    got = lineage.label_to_learnt(outs, cps)
    assert got == {"join": [20, 30, 10, 40], "learnt": [400, 500, 400], "loop": [380, 470, 390]}


def test_measure_places_drift_onsets_alarms_and_serving_in_events() -> None:
    replayed = _rows([True] * 10, first=0)
    got = {
        "predictions": [_prediction(i, "v1" if i < 7 else "v2", True, 1_000 + 10 * i)
                        for i in range(10)],
        "retrain": [], "registry": [],
        "alerts": [{"kind": "feature_drift", "created_at_ms": 1_015},
                   {"kind": "concept_drift", "created_at_ms": 1_045}],
    }  # fmt: skip
    m = measure(replayed, got, [2])
    assert m["onset_delays"] == [{"onset": 2, "alarm": 2, "serving": 5}]


def _process(kind: str, delay: int, acc: float, **extra: Any) -> dict[str, Any]:
    return {
        "task": {"kind": kind, "delay": delay, "seed": 1, "events": 30_000, "drift_every": 7_500},
        "driftline": {"accuracy": acc, "retrains": 3, "promotions": 2, "rollbacks": 0,
                      "rejected": 1, "reasons": {"concept_drift": 3}, "alarms": [1, 2, 3],
                      "delays": [10, 20, 30], "hits": 3, "false_alarms": 0,
                      "feature_alarms": 0},
        "frozen": 0.5, "hat": 0.8, "hat_cost": {"us_per_learn": 150.0},
        "seconds_loop": 10.0, **extra,
    }  # fmt: skip


def _kafka(kind: str, delay: int, rate: float, acc: float, **extra: Any) -> dict[str, Any]:
    return {"task": {"kind": kind, "delay": delay, "rate": rate}, "accuracy": acc,
            "rate": rate * 0.9, "latency_ms": {"p50": 20, "p99": 300}, "triggers": 3,
            "promotions": 2, "rollbacks": 0, "rejected": 1, "reasons": {},
            "t2s_seconds": {"p50": 1.0, "p99": 2.0}, "t2s_events": {"p50": 900, "p99": 1_800},
            "trigger_to_serving": [{}, {}], "missing": 0, "duplicates": 0, "complete": True,
            "seconds": 60.0, "paused_seconds": 0.5, "replay_seconds": 30.0, **extra}  # fmt: skip


def test_summary_and_targets_side_by_side() -> None:
    grid = {"1000": {"accuracy": 0.82, "retrains": 28}, "2000": {"accuracy": 0.84,
            "retrains": 14}}  # fmt: skip
    arf_cost = {"us_per_learn": 1_300.0, "learn_seconds": 36.0}
    oracle = {"accuracy": 0.9, "retrains": 12}
    process = [
        _process("agrawal", 500, 0.86, arf=0.85, arf_cost=arf_cost, oracle=oracle,
                 periodic_grid=grid),
        _process("stationary", 500, 0.85),
    ]  # fmt: skip
    process[0]["driftline"]["onset_delays"] = [
        {"onset": 9_500, "alarm": 700, "serving": 1_900},
        {"onset": 17_000, "alarm": None, "serving": None},
    ]
    kafka = [_kafka("agrawal", 500, 1_000.0, 0.855, challengers=1),
             _kafka("agrawal", 500, 5_000.0, 0.7),
             _kafka("stationary", 500, 1_000.0, 0.85, triggers=1)]  # fmt: skip
    rows = summary.summarize(process, kafka)["rows"]
    assert [r["stream"] for r in rows] == ["agrawal", "stationary"]
    a = rows[0]
    # a run from before the gate kept challengers (no count in its JSON) had none
    assert (a["challengers"], a["kafka"][1_000.0]["challengers"]) == (0, 1)
    assert a["kafka"][5_000.0]["challengers"] == 0
    assert a["best_baseline"] == 0.85 and a["periodic_best_every"] == 2_000
    assert summary.share(a["process"], a["frozen"], a["oracle"]) == pytest.approx(0.9)
    lines = targets(rows)
    assert lines[0] == ("- agrawal delay 500 in process: 0.860; >= best baseline 0.850: met; "
                        "oracle share 90% >= 80%: met")  # fmt: skip
    assert "within 0.01 of in process 0.860: met" in lines[1]
    assert "Kafka 5,000/s: 0.700; >= best baseline 0.850: MISSED" in lines[2]
    assert "oracle share 50% >= 80%: MISSED" in lines[2]
    assert lines[-1].endswith("triggers / promotions / rollbacks 1 / 2 / 0: MISSED")
    text = report({"rows": rows})
    assert "0.855 (900/s)" in text and "0.700 (4,500/s)" in text and "0 of 30" in text
    assert "| agrawal | 500   | in process | 2             | 1: 700 / 700" in text
    assert "| 1: 1,900 / 1,900" in text
    assert "nan" not in text


def test_report_renders_an_earlier_runs_json(tmp_path: Path, capsys: Any) -> None:
    raw = {"process": [_process("stationary", 0, 0.85)],
           "kafka": [_kafka("stationary", 0, 1_000.0, 0.85)]}  # fmt: skip
    path = tmp_path / "run.json"
    path.write_text(json.dumps(raw))
    main(["--report", str(path)])
    out = capsys.readouterr().out
    assert "stationary delay 0 Kafka 1,000/s: 0.850; triggers / promotions / rollbacks 3 / 2" in out


def test_share_without_a_gain_is_undefined() -> None:
    assert math.isnan(summary.share(0.9, 0.9, 0.85))
