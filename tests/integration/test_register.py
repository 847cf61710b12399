"""`driftline models register`: a model trained outside Driftline becomes a gated version
on the registry topic of the real broker, promotable like any other; a model or a file
that cannot serve is refused with its reason and publishes nothing."""

from __future__ import annotations

import pickle
import random
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from river import compose, linear_model, preprocessing, tree

from driftline.cli import cli
from driftline.core.errors import KafkaError
from driftline.core.model.estimators import load_version
from driftline.kafka.registry_follower import read_registry
from driftline.settings import Settings
from tests.integration.loop_helpers import loop_settings
from tests.unit.core.examples import known

MODELS = """
[models.churn]
task = "classification"
factory = "hoeffding_tree"
[models.churn.gate]
min_segment_samples = 50
[[models.churn.features]]
name = "amount"
type = "integer"
[[models.churn.features]]
name = "plan"
type = "category"
categories = ["basic", "pro"]
"""


def history(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{"amount": rng.randrange(0, 10), "plan": rng.choice(["basic", "pro"]),
             "churned": None} for _ in range(n)]  # fmt: skip


def labelled(n: int, seed: int) -> list[dict[str, Any]]:
    rows = history(n, seed)
    for r in rows:
        r["churned"] = r["amount"] > 4
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    lines = ["event_id,amount,plan,churned"]
    lines += [f"e{i},{r['amount']},{r['plan']},{str(r['churned']).lower()}"
              for i, r in enumerate(rows)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def pickled(path: Path, model: Any) -> Path:
    with path.open("wb") as fh:
        pickle.dump(model, fh)
    return path


@pytest.fixture
def s(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    (tmp_path / "models.toml").write_text(MODELS)
    s = loop_settings(settings, tmp_path).model_copy(
        update={"models_file": tmp_path / "models.toml"}
    )
    for name in ("bootstrap_servers", "topic_prefix", "sql_url", "artifact_dir", "models_file"):
        monkeypatch.setenv(f"DRIFTLINE_{name.upper()}", str(getattr(s, name)))
    deadline = time.monotonic() + 30  # a new topic's metadata reaches every broker view late
    while True:
        try:
            read_registry(s)
            return s
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_a_model_trained_elsewhere_is_registered_gated_and_promotable(
    s: Settings, tmp_path: Path
) -> None:
    rows = write_csv(tmp_path / "rows.csv", labelled(400, seed=2))
    outside = tree.HoeffdingTreeClassifier(grace_period=50)
    for r in labelled(3_000, seed=1):
        outside.learn_one({"amount": r["amount"], "plan": r["plan"]}, r["churned"])
    path = pickled(tmp_path / "tree.pkl", outside)

    out = run("models", "register", "churn", str(path), "--rows", str(rows), "--label",
              "churned", "--by", "ana")  # fmt: skip
    assert "checked on 400 rows of rows.csv; passed:" in out
    reg = read_registry(s)
    champ = reg.champion("churn")
    assert champ is not None and champ["stage_changed_by"] == "ana"
    assert "registered from tree.pkl (river.tree.hoeffding_tree_classifier" in champ["stage_reason"]
    assert champ["metrics"]["accuracy"] > 0.95 and champ["lineage"]["holdout_rows"] == 400
    assert champ["factory"] == "hoeffding_tree"  # what a retrain builds
    served = load_version(champ, s.signing_key.get_secret_value().encode())
    assert served.predict_one({"amount": 8, "plan": "pro"})[0] is True
    assert "segments" in champ["gate"]["checks"]

    # a worse one against that champion: published as rejected, exit 1
    worse = compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())
    for r in labelled(50, seed=3):
        worse.learn_one({"amount": r["amount"]}, not r["churned"])
    path = pickled(tmp_path / "worse.pkl", compose.Select("amount") | worse)
    out = run("models", "register", "churn", str(path), "--rows", str(rows), "--label",
              "churned", code=1)  # fmt: skip
    assert "-> rejected" in out and "failed improvement" in out
    assert known(read_registry(s).champion("churn"))["version"] == champ["version"]

    # as a candidate only, then promoted by a person like a trained candidate
    path = pickled(tmp_path / "again.pkl", outside)
    out = run("models", "register", "churn", str(path), "--rows", str(rows), "--label",
              "churned", "--candidate")  # fmt: skip
    version = out.strip().splitlines()[-1].split()[1]
    assert out.strip().endswith(f"churn {version} -> candidate (registered from again.pkl "
                                "(river.tree.hoeffding_tree_classifier.HoeffdingTreeClassifier, "
                                "trained outside Driftline))")  # fmt: skip
    run("models", "promote", "churn", version, "--reason", "registered by hand")
    assert known(read_registry(s).champion("churn"))["version"] == version


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("not-in-file", "other is not in the models file"),
        ("not-a-pickle", "cannot unpickle"),
        ("no-predict", "a dict is no model Driftline can serve"),
        ("other-labels", "are none of the labels"),
        ("missing-column", "no label column 'label' (columns: event_id, amount, plan, churned)"),
    ],
)
def test_what_cannot_serve_is_refused_with_its_reason_and_publishes_nothing(
    s: Settings, tmp_path: Path, what: str, message: str
) -> None:
    rows = write_csv(tmp_path / "rows.csv", labelled(200, seed=2))
    model = tree.HoeffdingTreeClassifier()
    for r in labelled(500, seed=1):
        model.learn_one({"amount": r["amount"], "plan": r["plan"]}, "yes" if r["churned"] else "no")
    path = pickled(tmp_path / "m.pkl", model if what == "other-labels" else {"a": 1})
    name, label = "churn", "churned"
    if what == "not-in-file":
        name = "other"
    elif what == "not-a-pickle":
        path.write_bytes(b"not a pickle")
    elif what == "missing-column":
        label = "label"
        path = pickled(path, model)
    result = CliRunner().invoke(cli, ["models", "register", name, str(path), "--rows", str(rows),
                                      "--label", label])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert read_registry(s).versions(name) == []
