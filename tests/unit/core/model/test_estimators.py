"""Model factories (contract checks run against every shipped factory), ServedModel,
signed artifacts and load_version."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from driftline.core.errors import ArtifactError, ConfigError
from driftline.core.model import estimators as models
from driftline.core.model.artifact import deserialize
from driftline.core.model.estimators import (
    FACTORIES,
    ServedModel,
    artifact_record,
    build,
    estimator_params,
    is_finite_output,
    load_version,
    resolve_factory,
    serialize,
    sha256_hex,
    sign,
    training_epochs,
    verify,
    write_artifact,
)
from driftline.core.model.validation import Spec
from tests.unit.core.examples import model_version

KEY = b"test-signing-key"


def toy_rows(n: int = 600, seed: int = 3) -> list[tuple[dict[str, Any], Any]]:
    """Features of every Avro type (numbers, ints, bools, strings, nulls), sorted by name."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        x: dict[str, Any] = {
            "amount": rng.random() * 100,
            "flag": rng.random() > 0.5,
            "n": rng.randint(0, 9),
            "note": None,
            "plan": rng.choice(["basic", "family", "pro"]),
        }
        y = x["amount"] / 100 + (x["plan"] == "pro") * 0.4 + rng.random() * 0.2 > 0.8
        rows.append((x, y))
    return rows


def trained(name: str, rows: list[tuple[dict[str, Any], Any]] | None = None) -> Any:
    task = FACTORIES[name][0]
    model = build(name, {}, seed=42)
    for x, y in rows or toy_rows():
        clean = {k: v for k, v in x.items() if v is not None}
        model.learn_one(clean, y if task == "classification" else float(x["amount"]) * 2 + y)
    return model


def served(model: Any, task: str, version: str = "v1") -> ServedModel:
    return ServedModel("churn", version, task, model, Spec(()), "{}")


def version_record(model: Any, task: str = "classification", **artifact: Any) -> dict[str, Any]:
    rec = model_version(version="v9", task=task)
    rec["artifact"] = {**artifact_record(serialize(model), KEY), **artifact}
    return rec


# -- contract checks, one per shipped factory --------------------------------------------


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_factory_predicts_the_types_the_prediction_record_takes(name: str) -> None:
    task = FACTORIES[name][0]
    model = served(trained(name), task)
    for x, _ in toy_rows(50, seed=9):
        value, scores = model.predict_one(x)
        assert is_finite_output(value, scores)
        if task == "classification":
            assert isinstance(value, bool)
            assert set(scores) <= {"True", "False"}
            assert math.isclose(sum(scores.values()), 1.0, rel_tol=1e-6)
            assert max(scores, key=scores.__getitem__) == str(value)
        else:
            assert type(value) is float
            assert scores == {}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_artifact_round_trip_predicts_the_same(name: str) -> None:
    task = FACTORIES[name][0]
    model = trained(name)
    loaded = load_version(version_record(model, task), KEY)
    rows = [x for x, _ in toy_rows(40, seed=11)]
    assert loaded.predict_many(rows) == served(model, task).predict_many(rows)
    assert loaded.task == task
    assert loaded.version == "v9"
    assert loaded.spec.names == {"age", "plan"}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_same_data_same_seed_same_digest(name: str) -> None:
    assert sha256_hex(serialize(trained(name))) == sha256_hex(serialize(trained(name)))
    assert sha256_hex(serialize(trained(name))) != sha256_hex(
        serialize(trained(name, toy_rows(seed=4)))
    )


DIGEST_SCRIPT = textwrap.dedent(
    """
    from driftline.core.model.estimators import FACTORIES, serialize, sha256_hex
    from tests.unit.core.model.test_estimators import trained
    for name in sorted(FACTORIES):
        print(name, sha256_hex(serialize(trained(name))))
    """
)


def test_digest_does_not_depend_on_the_hash_seed() -> None:
    root = Path(__file__).resolve().parents[4]
    outputs = []
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)}
        proc = subprocess.run(
            [sys.executable, "-c", DIGEST_SCRIPT],
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
            check=True,
            timeout=120,
        )
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1]
    assert outputs[0].count("\n") == len(FACTORIES)
    in_process = {n: sha256_hex(serialize(trained(n))) for n in FACTORIES}
    assert dict(line.split() for line in outputs[0].splitlines()) == in_process


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_a_snapshot_serves_as_the_canonical_artifact_does(name: str) -> None:
    """An online checkpoint's bytes (``canonical=False``: the C pickler) load into a model
    that predicts as the canonical artifact's does, its generators seeded the same way."""
    model = trained(name)
    rows = [x for x, _ in toy_rows(40, seed=11)]
    task = FACTORIES[name][0]
    snapshot = deserialize(serialize(model, canonical=False))
    canonical = deserialize(serialize(model))
    assert type(snapshot) is type(model)
    assert served(snapshot, task).predict_many(rows) == served(canonical, task).predict_many(rows)


def test_sets_and_random_generators_serialize_canonically() -> None:
    a = {"s": {f"k{i}" for i in range(50)}, "r": random.Random()}
    b = {"s": {f"k{i}" for i in reversed(range(50))}, "r": random.Random()}
    assert serialize(a) == serialize(b)
    assert serialize(frozenset({1, "1", 2.5})) == serialize(frozenset({2.5, "1", 1}))


# -- factories by name and dotted path --------------------------------------------------


def my_factory(params: Any, seed: int) -> Any:
    return models.hoeffding_tree(params, seed)


@pytest.mark.parametrize(
    "path",
    [
        "tests.unit.core.model.test_estimators:my_factory",
        "tests.unit.core.model.test_estimators.my_factory",
    ],
)
def test_user_factory_by_dotted_path(path: str) -> None:
    assert resolve_factory(path) is my_factory
    assert type(build(path, {"grace_period": 50}, 1)).__name__ == "HoeffdingTreeClassifier"


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("no_such_factory", {}, "unknown model factory"),
        ("nope.module:fn", {}, "cannot import"),
        ("tests.unit.core.model.test_estimators:KEY", {}, "not callable"),
        ("hoeffding_tree", {"no_such_param": 1}, "refused params"),
    ],
)
def test_bad_factories_are_config_errors(name: str, params: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(name, params, 0)


def test_untrained_classifier_abstains() -> None:
    assert served(build("hoeffding_tree", {}, 0), "classification").predict_one({"a": 1}) == (
        None,
        {},
    )


@pytest.mark.parametrize(
    ("value", "scores", "finite"),
    [
        (True, {"True": 0.7, "False": 0.3}, True),
        (1.5, {}, True),
        ("a", {"a": float("nan")}, False),
        (float("inf"), {}, False),
        (float("nan"), {}, False),
        (None, {}, True),
        (True, {"True": float("-inf")}, False),
    ],
)
def test_is_finite_output(value: Any, scores: dict[str, float], finite: bool) -> None:
    assert is_finite_output(value, scores) is finite


# -- signatures and tampering --------------------------------------------------------------


def test_signature_depends_on_digest_and_key() -> None:
    digest = sha256_hex(b"abc")
    sig = sign(digest, KEY)
    assert verify(digest, sig, KEY)
    assert verify(digest, sig.upper(), KEY)
    assert not verify(digest, sig, b"other-key")
    assert not verify(sha256_hex(b"abd"), sig, KEY)
    assert not verify(digest, "zz", KEY)
    with pytest.raises(ValueError):
        sign(digest, b"")


def tamper_bytes(rec: dict[str, Any]) -> None:
    data = bytearray(rec["artifact"]["inline"])
    data[len(data) // 2] ^= 0xFF
    rec["artifact"]["inline"] = bytes(data)


def tamper_bytes_and_digest(rec: dict[str, Any]) -> None:
    tamper_bytes(rec)
    rec["artifact"]["sha256"] = sha256_hex(rec["artifact"]["inline"])


def resign_with_other_key(rec: dict[str, Any]) -> None:
    rec["artifact"]["signature"] = sign(rec["artifact"]["sha256"], b"attacker")


def drop_bytes(rec: dict[str, Any]) -> None:
    rec["artifact"]["inline"] = None


def signed_garbage(rec: dict[str, Any]) -> None:
    rec["artifact"].update(artifact_record(b"not a pickle", KEY))


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (tamper_bytes, "digest_mismatch"),
        (tamper_bytes_and_digest, "bad_signature"),
        (resign_with_other_key, "bad_signature"),
        (drop_bytes, "missing_artifact"),
        (signed_garbage, "undeserializable"),
    ],
)
def test_tampered_artifacts_are_refused_before_unpickling(tamper: Any, reason: str) -> None:
    rec = version_record(trained("hoeffding_tree"))
    tamper(rec)
    with pytest.raises(ArtifactError) as info:
        load_version(rec, KEY)
    assert info.value.reason == reason
    assert reason in ArtifactError.REASONS


def test_malicious_pickle_with_a_bad_signature_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> Any:
            return (os.mkdir, (str(marker),))

    data = serialize(Evil())
    rec = version_record(trained("hoeffding_tree"))
    rec["artifact"].update(artifact_record(data, b"attacker-key"))
    with pytest.raises(ArtifactError, match="bad_signature"):
        load_version(rec, KEY)
    assert not marker.exists()


def test_artifact_by_uri(tmp_path: Path) -> None:
    model = trained("logistic_regression")
    data = serialize(model)
    uri = write_artifact(tmp_path, "churn", "v9", data)
    path = tmp_path / "churn" / "v9.pkl"
    assert uri == path.as_uri() and path.read_bytes() == data
    for uri in (str(path), path.as_uri()):
        rec = version_record(model, **artifact_record(data, KEY, uri=uri))
        assert rec["artifact"]["inline"] is None
        assert load_version(rec, KEY).sha256 == sha256_hex(data)
    rec = version_record(model, **artifact_record(data, KEY, uri=str(tmp_path / "gone.pkl")))
    with pytest.raises(ArtifactError, match="missing_artifact"):
        load_version(rec, KEY)
    rec["artifact"]["uri"] = "s3://bucket/x"
    with pytest.raises(ArtifactError, match="unsupported"):
        load_version(rec, KEY)


def test_unknown_format_is_refused() -> None:
    rec = version_record(trained("hoeffding_tree"), format="onnx")
    with pytest.raises(ArtifactError, match="undeserializable"):
        load_version(rec, KEY)


def test_served_model_refuses_unknown_task() -> None:
    with pytest.raises(ConfigError):
        ServedModel("m", "v", "ranking", None, Spec(()), "{}")


# -- training parameters ------------------------------------------------------------------


def test_epochs_is_for_the_trainer_not_the_factory() -> None:
    params = {"grace_period": 50, "delta": 0.01, "epochs": 5}
    assert estimator_params(params) == {"grace_period": 50, "delta": 0.01}
    assert training_epochs(params) == 5 and training_epochs({}) == 1
    tree = build("hoeffding_tree", params, 0)  # the factory never sees epochs
    assert type(tree).__name__ == "HoeffdingTreeClassifier" and tree.grace_period == 50


@pytest.mark.parametrize("epochs", [0, -1, 2.5, "3", True])
def test_bad_epochs_are_config_errors(epochs: Any) -> None:
    with pytest.raises(ConfigError, match="epochs"):
        training_epochs({"epochs": epochs})
