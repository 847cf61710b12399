"""What a worker process imports before it serves (issue 18: a replacement's start-up is
on the recovery path): none of the libraries and modules only other commands use.

It builds a worker of every role the way ``driftline worker`` does (the CLI, the models
file checked, :func:`driftline.streams.app.create_worker`; nothing connects before the
app starts) in a fresh interpreter and lists ``sys.modules``. sqlalchemy is there, but
not through Driftline: river's ``river.drift`` package imports its datasets, which import
``river.stream.iter_sql`` (docs/scaling.md, recovery).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

MODELS = """
[models.churn]
task = "classification"
factory = "logistic_regression"

[[models.churn.features]]
name = "x1"
type = "number"
[[models.churn.features]]
name = "plan"
type = "category"
categories = ["basic", "pro"]

[models.tree]
task = "classification"
factory = "hoeffding_tree"

[[models.tree.features]]
name = "x1"
type = "number"
"""

START_UP = """
import json, sys
from pathlib import Path
import driftline.cli  # the command, as `driftline worker` loads it
from driftline.cli.config import checked_models
from driftline.settings import Settings
from driftline.streams import worker  # noqa: F401
from driftline.streams.app import create_worker
tmp = Path(sys.argv[1])
s = Settings(models_file=tmp / "models.toml", data_dir=tmp / "data")
models = checked_models(s, "worker")
for role in ("all", "score", "join"):
    create_worker(s, models, name=f"w-{role}", role=role)
print(json.dumps(sorted(sys.modules)))
"""

NOT_AT_START_UP = [
    "pandas",  # the trainer's training sets, `driftline produce FILE.parquet`, reports
    "pyarrow",
    "matplotlib",  # the reports' charts (the status page draws its own SVG)
    "alembic",  # the SQL view's migrations
    "psycopg",
    "sklearn",
    "driftline.consumers",  # trainer, live loop, projector, SQL view
    "driftline.replay",
    "driftline.demo.report",
    "driftline.demo.model_report",
    "driftline.demo.drift_panel",
    "driftline.core.lifecycle.trainset",
    "driftline.core.lifecycle.training",
    "driftline.core.lifecycle.gate",
]


@pytest.fixture(scope="module")
def start_up_modules(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    tmp = tmp_path_factory.mktemp("startup")
    (tmp / "models.toml").write_text(MODELS)
    out = subprocess.run([sys.executable, "-c", START_UP, str(tmp)], capture_output=True,
                         text=True, timeout=120, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    modules = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "driftline.streams.app" in modules and "faust" in modules  # it did build them
    return modules


@pytest.mark.parametrize("forbidden", NOT_AT_START_UP)
def test_a_worker_does_not_import_at_start_up(start_up_modules: set[str], forbidden: str) -> None:
    loaded = sorted(m for m in start_up_modules if m == forbidden or m.startswith(forbidden + "."))
    assert not loaded, f"a worker's start-up imports {loaded[:5]}"
