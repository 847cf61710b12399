"""The models file at the command line, without a broker: `models check`, `worker` and
`trainer` refusing a broken file (exit 2, one line, no traceback), and `models bootstrap
--config-only` inferring the task, the spec and the columns that drift."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from driftline.cli import cli
from driftline.core.watch import models_file

BROKEN = """\
[models.churn]
task = "classification"
seed = "seven"

[models.churn.gate]
holdout_fraction = 2.0

[models.churn.retrain]
min_rws = 300
"""


def invoke(*args: str, models: Path | None = None) -> tuple[int, str, str]:
    env = {"DRIFTLINE_MODELS_FILE": str(models)} if models else {}
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def test_models_check_prints_every_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(BROKEN)
    code, out, err = invoke("models", "check", str(path))
    assert code == 2
    assert out.splitlines() == [
        f'{path}:3: models.churn.seed: must be an integer, not the string "seven"',
        f"{path}:6: models.churn.gate.holdout_fraction: holdout_fraction must be in (0, 1), "
        "got 2.0",
        f"{path}:9: models.churn.retrain.min_rws: unknown key (did you mean min_rows?)",
    ]
    assert err.strip() == f"{path}: 3 error(s)"
    path.write_text('[models.churn]\ntask = "regression"\n')
    code, out, _ = invoke("models", "check", models=path)  # from DRIFTLINE_MODELS_FILE
    assert (code, out.strip()) == (0, f"{path}: OK (1 model(s): churn)")
    code, _, err = invoke("models", "check", str(tmp_path / "missing.toml"))
    assert code == 2 and "cannot read" in err


@pytest.mark.parametrize("command", ["worker", "trainer"])
def test_a_broken_models_file_stops_a_process_before_it_starts(
    tmp_path: Path, command: str
) -> None:
    """One line naming every error, exit code 2, no traceback; nothing connects (the
    bootstrap servers point nowhere)."""
    path = tmp_path / "models.toml"
    path.write_text(BROKEN)
    env = {**os.environ, "DRIFTLINE_MODELS_FILE": str(path),
           "DRIFTLINE_BOOTSTRAP_SERVERS": "127.0.0.1:9"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "driftline", command], env=env, capture_output=True, text=True,
        timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"driftline {command}: models file {path} refused (3 errors): ")
    assert "models.churn.retrain.min_rws (line 9): unknown key (did you mean min_rows?)" in line
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == [path]  # it wrote nothing either


def test_a_missing_models_file_stops_it_too(tmp_path: Path) -> None:
    code, _, err = invoke("trainer", models=tmp_path / "nope.toml")
    assert code == 2 and "cannot read models file" in err


def _csv(path: Path, label: str, rows: int = 300) -> Path:
    rng = random.Random(4)
    lines = ["event_id,day,amount,plan,y"]
    for i in range(rows):
        y = {"float": f"{rng.gauss(100, 20):.3f}", "bool": "true" if i % 3 else "false",
             "binary float": f"{float(i % 2)}", "many ints": str(i)}[label]  # fmt: skip
        lines.append(f"row-{i:05d},{738_000 + i // 3},{rng.gauss(50, 10):.2f},"
                     f"{rng.choice(['basic', 'pro'])},{y}")  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bootstrap_infers_a_regressor_and_writes_a_models_file(tmp_path: Path) -> None:
    rows = _csv(tmp_path / "history.csv", "float")
    out_file = tmp_path / "models.toml"
    code, out, err = invoke("models", "bootstrap", "price", str(rows), "--label", "y",
                            "--config-only", "--write-config", str(out_file))  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "task: regression (label 'y': numbers with a fraction)"
    assert "features: 3 inferred from 300 rows:" in lines  # event_id is the id, no feature
    assert any(line.startswith("  amount: number in [") for line in lines)
    assert "  plan: category one of basic, pro" in lines
    assert not any("event_id" in line for line in lines)
    assert any(line.startswith("column 'day' drifts by construction") and
               'exclude = ["day"]' in line for line in lines)  # fmt: skip
    assert lines[-1] == f"wrote {out_file}"
    config = models_file.load(out_file)
    price = config["price"]
    assert (price.task, price.join_ttl_ms) == ("regression", 86_400_000)
    assert set(price.drift.exclude) == {"day"}
    spec = {f.name: f for f in price.spec().features}
    assert spec["amount"].min is not None and spec["day"].min is None
    assert invoke("models", "check", str(out_file))[0] == 0
    code, _, err = invoke("models", "bootstrap", "price", str(rows), "--label", "y",
                          "--config-only", "--write-config", str(out_file))  # fmt: skip
    assert code == 2 and "exists" in err  # never overwritten


@pytest.mark.parametrize(
    ("args", "features"),
    [
        ((), ["amount", "day", "plan"]),
        (("--drop", "day"), ["amount", "plan"]),
        (("--id-column", "plan"), ["amount", "day", "event_id"]),
        (("--drop", "day", "--drop", "plan"), ["amount"]),
        (("--time-column", "day"), ["amount", "plan"]),
        (("--segment", "plan", "--drop", "day"), ["amount", "plan"]),  # a segment is a feature
        (("parquet",), ["amount", "day", "plan"]),
    ],
)
def test_bootstrap_columns_id_and_drop(
    tmp_path: Path, args: tuple[str, ...], features: list[str]
) -> None:
    rows = _csv(tmp_path / "rows.csv", "bool")
    if args == ("parquet",):  # the same rows as Parquet: read by the same rules
        pd.read_csv(rows).to_parquet(rows := tmp_path / "rows.parquet", index=False)
        args = ()
    code, out, err = invoke("models", "bootstrap", "m", str(rows), "--label", "y",
                            "--config-only", "--write-config", "-", *args)  # fmt: skip
    assert code == 0, err
    inferred = [line.split(":")[0].strip() for line in out.splitlines() if line.startswith("  ")]
    assert inferred == features
    code, _, err = invoke("models", "bootstrap", "m", str(rows), "--label", "y",
                          "--config-only", "--drop", "nope")  # fmt: skip
    assert code != 0 and "no column nope to drop" in err


@pytest.mark.parametrize(
    ("label", "args", "code", "words"),
    [
        ("bool", (), 0, "task: classification (label 'y': boolean labels)"),
        ("binary float", (), 2, "pass --task regression for a value"),
        ("many ints", (), 2, "pass --task classification or --task regression"),
        ("many ints", ("--task", "regression"), 0, "task: regression (label 'y': --task"),
        ("bool", ("--task", "regression"), 2, "row 1: label False (boolean): regression needs"),
        ("bool", ("--factory", "linear_regression"), 2,
         "models.m.factory: linear_regression is a regression factory"),
    ],
)  # fmt: skip
def test_bootstrap_reads_the_task_from_the_labels_or_asks_for_it(
    tmp_path: Path, label: str, args: tuple[str, ...], code: int, words: str
) -> None:
    rows = _csv(tmp_path / "rows.csv", label)
    got, out, err = invoke("models", "bootstrap", "m", str(rows), "--label", "y",
                           "--config-only", *args)  # fmt: skip
    assert got == code, (out, err)
    assert words in (out if code == 0 else " ".join(err.split()))


def test_bootstrap_follows_the_models_file(tmp_path: Path) -> None:
    rows = _csv(tmp_path / "rows.csv", "bool")
    path = tmp_path / "models.toml"
    path.write_text('[models.m]\ntask = "regression"\n')
    code, _, err = invoke("models", "bootstrap", "m", str(rows), "--label", "y", "--config-only",
                          models=path)  # fmt: skip
    assert code == 2 and "does not fit task regression" in " ".join(err.split())
    code, _, err = invoke("models", "bootstrap", "m", str(rows), "--label", "label",
                          "--config-only")  # fmt: skip
    assert code != 0 and "no label column 'label'" in err
    path.write_text(BROKEN)
    code, _, err = invoke("models", "bootstrap", "m", str(rows), "--label", "y", models=path)
    assert code == 2 and err.startswith("driftline models bootstrap: models file")
