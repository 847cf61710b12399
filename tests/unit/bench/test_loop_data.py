"""The loop bench on a user's own file (bench/loop/data.py, ``python -m bench.loop
--data``): which columns are features, the order of the rows, the model configuration,
and a whole run on a real data set that ships with river (Phishing, 1,250 rows)."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
from river import datasets

from bench.loop.cli import main
from bench.loop.data import Source, config_for, load_rows
from driftline.core.errors import ConfigError

FRAME = pd.DataFrame(
    {
        "event_id": ["a", "b", "c", "d"],
        "ts": [4, 1, 3, 2],
        "age": [40.0, 31.0, None, 52.0],
        "plan": ["basic", "pro", "pro", "basic"],
        "note": ["x", "y", "z", "w"],
        "churned": [True, False, False, True],
    }
)


@pytest.fixture(params=["csv", "parquet"])
def history(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / f"history.{request.param}"
    if request.param == "csv":
        FRAME.to_csv(path, index=False)
    else:
        FRAME.to_parquet(path, index=False)
    return path


def test_columns_follow_produce_rules_and_time_orders_the_rows(history: Path) -> None:
    rows = load_rows(Source(str(history), "churned", time="ts", segments=("plan",),
                            drop=("note",)))  # fmt: skip
    assert [r.index for r in rows] == [0, 1, 2, 3]
    assert [r.label for r in rows] == [False, True, False, True]  # by ts: b, d, c, a
    assert rows[0].features == {"age": 31.0, "plan": "pro"}  # id, time, label, dropped: not
    assert rows[2].features == {"plan": "pro"}  # a missing value is no feature


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (Source("h.csv", "label"), "no column 'label'"),
        (Source("h.csv", "churned", segments=("region",)), "no column 'region'"),
        (Source("h.csv", "churned", time="when"), "no column 'when'"),
        (Source("h.txt", "churned"), "reads a .csv or .parquet file"),
    ],
)
def test_bad_sources_say_what_is_wrong(tmp_path: Path, source: Source, message: str) -> None:
    path = tmp_path / source.path
    FRAME.to_csv(path, index=False)
    with pytest.raises(ConfigError, match=message):
        load_rows(Source(str(path), source.label, source.time, source.segments))


def test_config_from_the_models_file_or_inferred(tmp_path: Path, history: Path) -> None:
    source = Source(str(history), "churned", drop=("note", "ts"))
    inferred = config_for(source, load_rows(source))
    assert inferred.task == "classification"
    assert sorted(f["name"] for f in inferred.features) == ["age", "plan"]
    models = tmp_path / "models.toml"
    models.write_text('[models.churn]\ntask = "classification"\nfactory = "logistic_regression"'
                      "\n[models.churn.retrain]\nlast_n = 300\n")  # fmt: skip
    named = Source(source.path, "churned", model_config=str(models))
    cfg = config_for(named, load_rows(named))
    assert (cfg.name, cfg.factory, cfg.retrain["last_n"]) == ("churn", "logistic_regression", 300)
    with pytest.raises(ConfigError, match="has no model 'other'"):
        config_for(Source(source.path, "churned", model_config=str(models), model="other"), [])


def test_a_regression_label_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    pd.DataFrame({"x": range(50), "y": [i * 0.37 for i in range(50)]}).to_csv(path, index=False)
    source = Source(str(path), "y")
    with pytest.raises(ConfigError, match="scores classification"):
        config_for(source, load_rows(source))


def test_the_bench_runs_on_a_real_data_set(tmp_path: Path, capsys) -> None:
    path = tmp_path / "phishing.csv"
    rows = list(datasets.Phishing())
    names = list(rows[0][0])
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["event_id", *names, "is_phishing"])
        for i, (x, y) in enumerate(rows):
            w.writerow([f"p{i}", *(x[n] for n in names), y])
    main(["--data", str(path), "--label", "is_phishing", "--delays", "100", "--workers",
          "1", "--warmup", "600", "--json", str(tmp_path / "out.json")])  # fmt: skip
    out = capsys.readouterr().out
    lines = out.splitlines()
    table = [line for line in lines if line.startswith("| phishing.csv")]
    assert len(table) >= 3  # accuracy, retrains, grid... one row each for the one file
    assert "elevel" not in out
    first = lines.index(table[0])
    header = [c.strip() for c in lines[first - 2].strip("|").split("|")]
    cells = [c.strip() for c in table[0].strip("|").split("|")]
    row = dict(zip(header, cells, strict=True))
    accuracy = float(row["in process"].split("±")[0]) if "in process" in row else float(
        cells[3].split("±")[0])  # fmt: skip
    assert 0.5 < accuracy <= 1
    assert "1 in-process and 0 Kafka runs in" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--label", "y"], "has 50 rows, not more than --warmup 2,000"),
        (["--label", "y", "--warmup", "50"], "has 50 rows, not more than --warmup 50"),
        (["--label", "nope"], "has no column 'nope'"),
    ],
)
def test_a_file_that_leaves_nothing_to_replay_is_refused(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """Before: every column of the tables read 0.000, as if the loop had lost."""
    path = tmp_path / "small.csv"
    pd.DataFrame({"x": range(50), "y": [i % 2 == 0 for i in range(50)]}).to_csv(path, index=False)
    with pytest.raises(SystemExit, match=message):
        main(["--data", str(path), "--workers", "1", *args])
