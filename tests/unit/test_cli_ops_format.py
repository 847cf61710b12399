"""The pure parts of ``driftline tail``, ``produce`` and ``status``: record lines, the
status text, lag arithmetic, and rows of CSV/Parquet files as records."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from driftline.cli import cli
from driftline.cli.ops_format import (
    jsonable,
    status_lines,
    tail_line,
    tail_record,
    topic_name,
)
from driftline.cli.text import table, when
from driftline.core.errors import ConfigError
from driftline.kafka.status import lag_rows, model_rows
from driftline.replay import Pacer, cell, feature_events, labels, plan, read_frame

WHERE: dict[str, Any] = {"topic": "t.deadletter", "partition": 1, "offset": 42,
                         "timestamp_ms": 1_700_000_000_000, "key": b"e-1"}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "full"),
    [("features", "p.features"), ("predictions.shadow", "p.predictions.shadow"),
     ("deadletter", "p.deadletter"), ("registry", "p.registry"), ("other.topic", "other.topic"),
     ("p.features", "p.features")],
)  # fmt: skip
def test_topic_name(name: str, full: str) -> None:
    assert topic_name(name, "p.") == full


@pytest.mark.parametrize(
    ("value", "shown"),
    [(b"eu", "eu"), (b"\xc3\x01\xff", "0xc301ff"), (b"a\x00b", "0x610062"), (bytearray(b"x"), "x"),
     (float("inf"), "inf"), (1.5, 1.5), ({"k": [b"v", None]}, {"k": ["v", None]}),
     (pd.Timestamp("2024-01-01T00:00:00Z").to_pydatetime(), "2024-01-01T00:00:00+00:00")],
)  # fmt: skip
def test_jsonable(value: object, shown: object) -> None:
    assert jsonable(value) == shown


def test_long_bytes_are_cut_with_their_length() -> None:
    assert jsonable(b"\xff" * 300, limit=4) == "0xffffffff... (300 bytes)"


def test_dead_letters_show_stage_reason_and_source_first() -> None:
    value = {"source_topic": "t.features", "source_partition": 2, "source_offset": 7,
             "source_key": b"e-1", "stage": "validate", "reason": "type_mismatch",
             "detail": "x1: expected number", "model": "churn", "failed_at_ms": 1,
             "raw": b"\xc3\x01" + b"\x00" * 400, "headers": []}  # fmt: skip
    rec = tail_record(**WHERE, schema="io.driftline.DeadLetter", value=value)
    assert list(rec)[:9] == ["topic", "partition", "offset", "timestamp", "key", "schema",
                             "stage", "reason", "source"]  # fmt: skip
    assert (rec["stage"], rec["reason"], rec["source"]) == (
        "validate", "type_mismatch", "t.features[2]@7")  # fmt: skip
    assert rec["value"]["raw"].endswith("... (402 bytes)")
    assert rec["timestamp"] == "2023-11-14T22:13:20.000Z" and rec["key"] == "e-1"
    json.loads(tail_line(rec))  # valid JSON


def test_undecodable_values_and_tombstones() -> None:
    bad = tail_record(**WHERE, schema=None, value=None, error="undecodable", raw=b"\x00\x01")
    assert bad["error"] == "undecodable" and bad["raw"] == "0x0001" and "value" not in bad
    tomb = tail_record(**dict(WHERE, key=None), schema=None, value=None)
    assert tomb["value"] is None and tomb["key"] is None


def test_headers_are_shown_only_when_asked() -> None:
    rec = tail_record(**WHERE, schema="x", value={}, headers=[("schema", b"io.x"), ("n", None)])
    assert rec["headers"] == {"schema": "io.x", "n": None}
    assert "headers" not in tail_record(**WHERE, schema="x", value={})


def test_tail_lines_are_valid_json_even_with_nan() -> None:
    rec = tail_record(**WHERE, schema="x", value={"v": float("nan")})
    assert json.loads(tail_line(rec))["value"] == {"v": "nan"}


@pytest.mark.parametrize(
    ("committed", "ends", "rows"),
    [
        ({"t": {0: 10, 1: 5}}, {"t": {0: (0, 10), 1: (0, 8)}},
         [{"topic": "t", "partitions": 2, "committed": 15, "lag": 3}]),
        # a partition without a commit counts its whole retained log
        ({"t": {0: 10}}, {"t": {0: (0, 10), 1: (4, 9)}},
         [{"topic": "t", "partitions": 1, "committed": 10, "lag": 5}]),
        # committed past the end (a truncated topic) never gives negative lag
        ({"t": {0: 20}}, {"t": {0: (0, 10)}},
         [{"topic": "t", "partitions": 1, "committed": 20, "lag": 0}]),
        # nothing committed at all: the group does not read the topic
        ({"t": {0: -1001}}, {"t": {0: (0, 10)}}, []),
        ({}, {"t": {0: (0, 10)}}, []),
    ],
)  # fmt: skip
def test_lag_rows(
    committed: dict[str, dict[int, int]],
    ends: dict[str, dict[int, tuple[int, int]]],
    rows: list[dict[str, Any]],
) -> None:
    assert lag_rows(committed, ends) == rows


def test_status_text_has_every_section() -> None:
    doc: dict[str, Any] = {
        "prefix": "p.",
        "topics": [{"topic": "p.features", "exists": True, "partitions": 3,
                    "retained_offsets": 1200, "end_offsets": 1500},
                   {"topic": "p.labels", "exists": False}],
        "groups": [{"group": "p-worker-scorer", "topic": "p.features", "partitions": 3,
                    "committed": 1400, "lag": 100}],
        "models": model_rows([("churn", [
            {"version": "v1", "stage": "archived", "created_at_ms": 0},
            {"version": "v2", "stage": "champion", "created_at_ms": 1000}])]),
        "alerts": [{"created_at_ms": 0, "model": "churn", "version": "v2", "severity": "warning",
                    "kind": "concept_drift", "message": "ADWIN shrank"},
                   {"created_at_ms": 0, "model": "churn", "version": "v2", "severity": "warning",
                    "kind": "skew_rate", "message": "1.0% ...", "state": "resolved"}],
    }  # fmt: skip
    text = "\n".join(status_lines(doc))
    assert "Topics (p.*)" in text
    assert "TOPIC       PARTITIONS  RETAINED OFFSETS  END OFFSETS" in text
    assert "p.features  3           1,200             1,500" in text
    assert "offsets, not records" in text  # issue 23: 1,492 "messages" for 750 predictions
    assert "p.labels    missing" in text
    assert "p-worker-scorer  p.features  3           1,400      100" in text
    assert "churn  v2       champion  1970-01-01T00:00:01.000Z" in text
    assert "warning  churn v2 concept_drift: ADWIN shrank" in text
    assert "warning  churn v2 skew_rate (resolved): 1.0% ..." in text
    assert doc["models"][0]["champion"] == "v2" and doc["models"][0]["challenger"] is None


def test_status_text_of_an_empty_cluster() -> None:
    text = "\n".join(status_lines({"prefix": "p.", "topics": [], "groups": [], "models": [],
                                   "alerts": []}))  # fmt: skip
    assert "no group has committed offsets" in text
    assert "no model version on the registry topic" in text
    assert "Last alerts\n  (none)" in text


@pytest.mark.parametrize(
    ("rows", "indent", "expected"),
    [
        ([("A", "B"), ("long", "x")], "  ", ["  A     B", "  long  x"]),
        ([("A", "B"), ("long", "x")], "", ["A     B", "long  x"]),
        ([("MODEL", "NOTE"), ("m", "")], "", ["MODEL  NOTE", "m"]),
        ([], "  ", []),
    ],
)
def test_table_pads_columns_and_strips_the_right(rows, indent, expected) -> None:
    assert table(rows, indent=indent) == expected


@pytest.mark.parametrize(
    ("ms", "precise", "expected"),
    [
        (0, True, "1970-01-01T00:00:00.000Z"),
        (1_700_000_000_123, True, "2023-11-14T22:13:20.123Z"),
        (1_700_000_000_999, False, "2023-11-14 22:13:20"),
        (None, True, "-"),
        (None, False, "-"),
    ],
)
def test_one_time_formatter(ms, precise, expected) -> None:
    assert when(ms, precise=precise) == expected


# -- replay: files as records --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "out"),
    [(np.int64(3), 3), (np.float64(0.25), 0.25), (np.bool_(False), False), (True, True),
     (float("nan"), None), (np.nan, None), (None, None), (pd.NA, None), (pd.NaT, None),
     ("pro", "pro"), (7, 7)],
)  # fmt: skip
def test_cell(value: object, out: object) -> None:
    got = cell(value)
    assert got == out and type(got) is type(out)


def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "event_id": ["a", "b", "c"],
        "event_time_ms": [1, 2, 3],
        "x1": [0.5, float("nan"), 2.0],
        "n": [1, 2, 3],
        "plan": ["pro", "basic", None],
        "segment.region": ["eu", None, "us"],
        "label": [True, False, True],
    })  # fmt: skip


def test_features_take_every_other_column_typed() -> None:
    cols = plan(list(frame().columns), "features", segments=["plan"])
    assert cols.features == ("x1", "n", "plan") and cols.label is None
    rows = list(feature_events(frame(), cols))
    features = {"x1": None, "n": 2, "plan": "basic"}
    segment = {"plan": "basic"}  # region is missing: no attribute
    assert rows[1] == {
        "event_id": "b",
        "event_time_ms": 2,
        "features": features,
        "segment": segment,
    }
    assert rows[0]["segment"] == {"region": "eu", "plan": "pro"}
    assert rows[2]["segment"] == {"region": "us"} and rows[2]["features"]["plan"] is None
    assert type(rows[0]["features"]["n"]) is int


def test_features_with_labels_carry_the_label() -> None:
    cols = plan(list(frame().columns), "features", with_labels=True)
    assert [r["label"] for r in feature_events(frame(), cols)] == [True, False, True]


def test_without_id_and_time_columns_they_are_left_to_the_producer() -> None:
    cols = plan(["x1"], "features")
    (row,) = feature_events(pd.DataFrame({"x1": [1.0]}), cols)
    assert row["event_id"] is None and row["event_time_ms"] is None


def test_labels_need_event_id_and_label() -> None:
    rows = list(labels(frame(), plan(list(frame().columns), "labels")))
    assert rows[0] == {"event_id": "a", "label": True, "label_time_ms": None}
    with pytest.raises(ConfigError, match="event_id"):
        plan(["label"], "labels")
    with pytest.raises(ConfigError, match="no label column 'y'"):
        plan(["event_id", "label"], "labels", label="y")


def test_an_id_column_of_its_own_and_dropped_columns() -> None:
    f = frame().rename(columns={"event_id": "order_id"})
    cols = plan(list(f.columns), "features", id_column="order_id", drop=["plan", "n"])
    assert cols.features == ("x1",) and cols.event_id == "order_id"
    assert [r["event_id"] for r in feature_events(f, cols)] == ["a", "b", "c"]
    rows = list(labels(f, plan(list(f.columns), "labels", id_column="order_id")))
    assert rows[2]["event_id"] == "c"
    g = frame().rename(columns={"event_time_ms": "ts"})
    cols = plan(list(g.columns), "features", time_column="ts")
    assert "ts" not in cols.features
    assert [r["event_time_ms"] for r in feature_events(g, cols)] == [1, 2, 3]
    with pytest.raises(ConfigError, match="no time column 'when'"):
        plan(list(g.columns), "features", time_column="when")


@pytest.mark.parametrize(
    ("columns", "topic", "kw", "message"),
    [(["x"], "predictions", {}, "only to features or labels"),
     (["x", "y"], "features", {"drop": ["z"]}, "no column z to drop"),
     (["k", "label"], "labels", {"id_column": "order_id"}, "need an 'order_id' column"),
     (["x"], "features", {"segments": ["region"]}, "no segment column region"),
     (["event_id", "label"], "features", {}, "no feature column"),
     (["x"], "features", {"with_labels": True}, "no label column")],
)  # fmt: skip
def test_plan_refuses_what_cannot_work(
    columns: list[str], topic: str, kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        plan(columns, topic, **kw)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_csv_and_parquet_read_back_alike(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"events{suffix}"
    if suffix == ".csv":
        frame().to_csv(path, index=False)
    else:
        frame().to_parquet(path, index=False)
    got = read_frame(path)
    cols = plan(list(got.columns), "features")
    rows = list(feature_events(got, cols))
    assert [r["features"]["n"] for r in rows] == [1, 2, 3]
    assert rows[1]["features"]["x1"] is None and math.isclose(rows[2]["features"]["x1"], 2.0)
    assert rows[2]["features"]["plan"] is None


def test_other_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not a \.csv or \.parquet"):
        read_frame(tmp_path / "events.json")


def test_pacer_keeps_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    p = Pacer(4, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        p.tick()
    assert now[0] == pytest.approx(1.0) and len(slept) == 4
    now[0] += 10  # fell behind: no sleeping to catch up past the due time
    slept.clear()
    p.tick()
    assert slept == []
    with pytest.raises(ValueError):
        Pacer(0)
    Pacer(None).tick()


@pytest.mark.parametrize("command", ["tail", "produce", "status"])
def test_commands_have_help(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: cli {command}" in result.output or f"driftline {command}" in result.output
