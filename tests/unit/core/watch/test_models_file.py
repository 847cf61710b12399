"""The models file checked whole: a table of broken files, one per section and kind of
mistake, each with the key, line and reason it must report; every problem of a file at
once; the config_rejected alert; the written (bootstrap) file read back."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

from driftline.core.errors import ConfigError
from driftline.core.model.config import DriftConfig, GateConfig, ModelConfig, ModelsConfig
from driftline.core.model.config_problems import ModelsFileError
from driftline.core.watch import models_file
from driftline.core.watch.retrain_policy import RetrainPolicy
from driftline.core.wire.codec import default_codec

GOOD = """\
[models.churn]
task = "classification"
factory = "logistic_regression"
join_ttl_ms = 600000
promotion = "manual"
positive_class = "True"

[models.churn.params]
lr = 0.05
epochs = 3

[models.churn.gate]
min_segment_samples = 50

[models.churn.retrain]
min_rows = 300
cooldown_ms = 60000
watch = ["accuracy"]

[models.churn.drift]
exclude = ["signup_day"]

[[models.churn.features]]
name = "amount"
type = "number"
min = 0
max = 1000.0

[[models.churn.features]]
name = "signup_day"
type = "integer"

[models.price]
task = "regression"
"""

# (case, a [models.m] file body after the header, (key, line, words of the reason))
CASES: list[tuple[str, str, tuple[str, int | None, str]]] = [
    # -- the file itself
    ("not TOML", 'task = "classification\n', ("(file)", 2, "not valid TOML")),
    ("a table outside [models]", '[model.x]\ntask = "regression"\n',
     ("model", 1, "unknown key (did you mean models?)")),
    ("a model that is not a table", "[models]\nm = 1\n", ("models.m", 2, "must be a table")),
    # -- model keys
    ("unknown model key", "join_ttl = 5\n", ("models.m.join_ttl", 2, "did you mean join_ttl_ms?")),
    ("wrong type", 'seed = "7"\n', ("models.m.seed", 2, 'must be an integer, not the string "7"')),
    ("bool for an integer", "seed = true\n", ("models.m.seed", 2, "not the boolean true")),
    ("unknown task", 'task = "regresion"\n',
     ("models.m.task", 2, 'must be one of classification, regression, not "regresion"')),
    ("unknown promotion", 'promotion = "automatic"\n', ("models.m.promotion", 2, "auto, manual")),
    ("ttl below 1 ms", "join_ttl_ms = 0\n", ("models.m.join_ttl_ms", 2, "must be >= 1 (ms)")),
    ("float ttl", "join_ttl_ms = 1.5\n", ("models.m.join_ttl_ms", 2, "must be an integer")),
    ("flag not a bool", 'allow_extra_features = "yes"\n',
     ("models.m.allow_extra_features", 2, "must be true or false")),
    ("positive class of a regressor", 'task = "regression"\npositive_class = "1"\n',
     ("models.m.positive_class", 3, "classification only")),
    # -- factory and params
    ("unknown factory", 'factory = "random_forest"\n',
     ("models.m.factory", 2, "unknown model factory 'random_forest'")),
    ("factory that cannot import", 'factory = "no_such_pkg.mod:make"\n',
     ("models.m.factory", 2, "cannot import model factory")),
    ("factory of the other task", 'task = "regression"\nfactory = "hoeffding_tree"\n',
     ("models.m.factory", 3, "hoeffding_tree is a classification factory; task is regression")),
    ("params not a table", "params = 3\n", ("models.m.params", 2, "must be a table")),
    ("unknown parameter", "[models.m.params]\ngrace_perod = 50\n",
     ("models.m.params.grace_perod", 3, "not a parameter of factory hoeffding_tree")),
    ("epochs below 1", "[models.m.params]\nepochs = 0\n",
     ("models.m.params.epochs", 3, "must be an integer >= 1")),
    ("a value the estimator refuses",
     'factory = "logistic_regression"\n[models.m.params]\nlr = "fast"\nl2 = 0.1\n',
     ("models.m.params.lr", 4, "refused it: could not convert string to float")),
    # -- features
    ("features not an array of tables", "features = [1, 2]\n",
     ("models.m.features", 2, "must be an array of tables")),
    ("feature without a name", '[[models.m.features]]\ntype = "number"\n',
     ("models.m.features[0].name", 2, "missing")),
    ("unknown feature type", '[[models.m.features]]\nname = "a"\ntype = "float"\n',
     ("models.m.features[0].type", 4, "number, integer, boolean, category")),
    ("unknown feature key", '[[models.m.features]]\nname = "a"\ntype = "number"\nmaxi = 3\n',
     ("models.m.features[0].maxi", 5, "did you mean max?")),
    ("bound not a number", '[[models.m.features]]\nname = "a"\ntype = "number"\nmin = "0"\n',
     ("models.m.features[0].min", 5, "must be a number")),
    ("min above max", '[[models.m.features]]\nname = "a"\ntype = "number"\nmin = 5\nmax = 1\n',
     ("models.m.features[0].min", 5, "min 5.0 > max 1.0")),
    ("categories of a number",
     '[[models.m.features]]\nname = "a"\ntype = "number"\ncategories = ["x"]\n',
     ("models.m.features[0].categories", 5, "categories need type 'category'")),
    ("categories not strings",
     '[[models.m.features]]\nname = "a"\ntype = "category"\ncategories = ["x", 2]\n',
     ("models.m.features[0].categories", 5, "item 1 is the integer 2")),
    ("duplicate feature",
     '[[models.m.features]]\nname = "a"\ntype = "number"\n'
     '[[models.m.features]]\nname = "a"\ntype = "integer"\n',
     ("models.m.features[1].name", 6, "duplicate feature 'a' (also features[0])")),
    # -- gate
    ("unknown gate key", "[models.m.gate]\nholdout = 0.3\n",
     ("models.m.gate.holdout", 3, "did you mean holdout_fraction or min_holdout_rows?")),
    ("unknown gate key, one close key", "[models.m.gate]\nholdout_fractoin = 0.3\n",
     ("models.m.gate.holdout_fractoin", 3, "(did you mean holdout_fraction?)")),
    ("gate value of the wrong type", '[models.m.gate]\nmin_segment_samples = "50"\n',
     ("models.m.gate.min_segment_samples", 3, "must be an integer")),
    ("gate threshold out of range", "[models.m.gate]\nholdout_fraction = 1.5\n",
     ("models.m.gate.holdout_fraction", 3, "must be in (0, 1), got 1.5")),
    ("gate not a table", "gate = 0.5\n", ("models.m.gate", 2, "must be a table")),
    ("improvement_alpha out of range", "[models.m.gate]\nimprovement_alpha = 1.5\n",
     ("models.m.gate.improvement_alpha", 3, "improvement_alpha must be in (0, 1), got 1.5")),
    ("improvement_alpha of the wrong type", '[models.m.gate]\nimprovement_alpha = "5%"\n',
     ("models.m.gate.improvement_alpha", 3, 'must be a number, not the string "5%"')),
    ("min_holdout_rows below 1", "[models.m.gate]\nmin_holdout_rows = 0\n",
     ("models.m.gate.min_holdout_rows", 3, "min_holdout_rows must be >= 1, got 0")),
    ("min_holdout_rows not an integer", "[models.m.gate]\nmin_holdout_rows = 99.5\n",
     ("models.m.gate.min_holdout_rows", 3, "must be an integer")),
    # -- retrain (the policy's own arguments)
    ("the trial's typo", "[models.m.retrain]\nmin_rws = 300\n",
     ("models.m.retrain.min_rws", 3, "unknown key (did you mean min_rows?)")),
    ("retrain value of the wrong type", '[models.m.retrain]\ncooldown_ms = "1h"\n',
     ("models.m.retrain.cooldown_ms", 3, 'must be an integer, not the string "1h"')),
    ("retrain value out of range", "[models.m.retrain]\nmin_rows = 0\n",
     ("models.m.retrain.min_rows", 3, "must be >= 1")),
    ("max_rows below min_rows", "[models.m.retrain]\nmin_rows = 500\nmax_rows = 100\n",
     ("models.m.retrain.max_rows", 4, "max_rows must be >= min_rows")),
    ("unknown drift reason", '[models.m.retrain]\ndrift_reasons = ["label_drift"]\n',
     ("models.m.retrain", 2, "unknown drift reasons ['label_drift']")),
    ("watch a metric of the other task", '[models.m.retrain]\nwatch = ["rmse"]\n',
     ("models.m.retrain.watch[0]", 3, '"rmse" is not a classification metric')),
    ("retrain inline table", "retrain = { min_rws = 300 }\n",
     ("models.m.retrain.min_rws", 2, "did you mean min_rows?")),
    # -- drift
    ("unknown drift key", '[models.m.drift]\nexclued = ["a"]\n',
     ("models.m.drift.exclued", 3, "did you mean exclude?")),
    ("exclude not a list", '[models.m.drift]\nexclude = "date"\n',
     ("models.m.drift.exclude", 3, "must be a list of strings")),
    ("exclude an undeclared feature",
     '[[models.m.features]]\nname = "a"\ntype = "number"\n[models.m.drift]\nexclude = ["date"]\n',
     ("models.m.drift.exclude[0]", 6, "'date' is not a declared feature")),
]  # fmt: skip


def test_the_good_file_loads() -> None:
    config, problems = models_file.check(GOOD)
    assert problems == []
    churn = config["churn"]
    assert (churn.task, churn.promotion, churn.join_ttl_ms) == ("classification", "manual", 600_000)
    assert churn.retrain == {"min_rows": 300, "cooldown_ms": 60_000, "watch": ["accuracy"]}
    assert churn.drift == DriftConfig(("signup_day",))
    assert churn.gate.min_segment_samples == 50
    assert config["price"].factory == "linear_regression"


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_broken_file_names_the_key_line_and_reason(
    body: str, expected: tuple[str, int | None, str]
) -> None:
    whole = body.startswith(("[model.", "[models]\n"))
    text = body if whole else "[models.m]\n" + body
    _, problems = models_file.check(text)
    key, line, words = expected
    found = [(p.key, p.line, p.reason) for p in problems]
    assert any(k == key and n == line and words in r for k, n, r in found), found
    with pytest.raises(ModelsFileError) as info:
        ModelsConfig.from_toml(text, "m.toml", [models_file.check_retrain])
    assert "\n" not in str(info.value) and key in str(info.value)


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    """The five planted mistakes of issue 21: wrong type, unknown key, a feature without a
    name, a bad section, a gate threshold out of range; plus the trial's typo."""
    text = textwrap.dedent("""\
        [models.churn]
        seed = "seven"
        join_ttl = 5
        segments = ["plan"]

        [models.churn.gate]
        holdout_fraction = 2.0

        [models.churn.retrain]
        min_rws = 300

        [[models.churn.features]]
        type = "number"
        """)
    _, problems = models_file.check(text, "models.toml")
    assert [(p.key, p.line) for p in problems] == [
        ("models.churn.seed", 2),
        ("models.churn.join_ttl", 3),
        ("models.churn.segments", 4),
        ("models.churn.gate.holdout_fraction", 7),
        ("models.churn.retrain.min_rws", 10),
        ("models.churn.features[0].name", 12),
    ]
    assert all(p.model == "churn" for p in problems)
    with pytest.raises(ModelsFileError) as info:
        ModelsConfig.from_toml(text, "models.toml", [models_file.check_retrain])
    assert str(info.value).startswith("models file models.toml refused (6 errors): ")


def test_every_bad_gate_threshold_is_reported_at_its_key() -> None:
    """The gate's range checks run per key: three bad thresholds, three problems."""
    text = "[models.m.gate]\nholdout_fraction = 2.0\nimprovement_alpha = 0\nmin_holdout_rows = -5\n"
    _, problems = models_file.check("[models.m]\n" + text)
    assert [(p.key, p.line) for p in problems] == [
        ("models.m.gate.holdout_fraction", 3),
        ("models.m.gate.improvement_alpha", 4),
        ("models.m.gate.min_holdout_rows", 5),
    ]
    good, problems = models_file.check("[models.m.gate]\nimprovement_alpha = 0.1\n"
                                       "min_holdout_rows = 300\n")  # fmt: skip
    assert problems == []
    assert (good["m"].gate.improvement_alpha, good["m"].gate.min_holdout_rows) == (0.1, 300)


def test_load_reads_and_checks_the_file(tmp_path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(GOOD)
    assert set(models_file.load(path).models) == {"churn", "price"}
    assert models_file.load(None).models == {}
    path.write_text("[models.churn.retrain]\nmin_rws = 300\n")
    with pytest.raises(ModelsFileError, match="min_rws"):
        models_file.load(path)
    with pytest.raises(ConfigError, match="cannot read models file"):
        models_file.load(tmp_path / "missing.toml")


def test_retrain_keys_follow_the_policy_signature() -> None:
    """The retrain section accepts exactly RetrainPolicy's keyword arguments, so a new
    argument is accepted as soon as the policy has it."""
    import inspect

    params = inspect.signature(RetrainPolicy.__init__).parameters
    assert set(models_file.RETRAIN_KEYS) == {
        n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    for key in models_file.RETRAIN_KEYS:  # every default passes its own check
        default = params[key].default
        if default is not None:
            cfg = ModelConfig("m", retrain={key: list(default) if isinstance(default, tuple)
                                            else default})  # fmt: skip
            assert models_file.check_retrain(cfg) == [], key


def test_a_rejected_reload_alerts_every_model_concerned() -> None:
    text = "[models.churn.retrain]\nmin_rws = 3\n[models.fraud]\nseed = 'x'\n"
    _, problems = models_file.check(text, "m.toml")
    error = ModelsFileError(problems, "m.toml")
    alerts = models_file.rejected_alerts(error, ["churn", "price"], process="worker", now_ms=5)
    assert [a["model"] for a in alerts] == ["churn", "fraud"]
    churn = alerts[0]
    assert (churn["kind"], churn["severity"], churn["created_at_ms"]) == (
        "config_rejected", "warning", 5)  # fmt: skip
    assert "min_rws" in churn["message"] and "last good configuration" in churn["message"]
    assert churn["evidence"]["errors"] == 1 and churn["evidence"]["process"] == "worker"
    codec = default_codec()
    for a in alerts:
        assert codec.decode(codec.encode("io.driftline.Alert", a)).value == a
    # a problem of the whole file concerns every model in force
    broken = ModelsFileError(models_file.check("[models\n")[1], "m.toml")
    whole = models_file.rejected_alerts(broken, ["churn", "price"], process="trainer", now_ms=1)
    assert [a["model"] for a in whole] == ["churn", "price"]
    assert [a["model"] for a in models_file.rejected_alerts(broken, [], process="t", now_ms=1)] == [
        "*"
    ]


def test_the_written_file_reads_back_to_the_same_configuration() -> None:
    features = (
        {"name": "amount", "type": "number", "required": True, "min": -3.0, "max": 9.0,
         "categories": []},
        {"name": "plan", "type": "category", "required": False, "min": None, "max": None,
         "categories": ["a", "b"]},
        {"name": "day", "type": "integer", "required": True, "min": None, "max": None,
         "categories": []},
    )  # fmt: skip
    cfg = ModelConfig(
        "churn model",
        task="regression",
        params={"lr": 0.01},
        features=features,
        join_ttl_ms=86_400_000,
        gate=GateConfig(min_segment_samples=20),
        retrain={"min_rows": 500, "drift_reasons": ["concept_drift"]},
        drift=DriftConfig(("day",)),
    )
    text = models_file.models_toml(
        cfg, header=["written by a test"], notes={"task": "numbers", "day": "monotonic"}
    )
    assert text.startswith("# written by a test\n")
    assert "# min_rows" not in text and "# cooldown_ms = 3600000" in text
    assert '# watch = ["mae", "rmse"]' in text  # what the monitor watches by default
    config, problems = models_file.check(text)
    assert problems == []
    back = config["churn model"]
    assert back.spec() == cfg.spec()
    fields = [f.name for f in dataclasses.fields(ModelConfig) if f.name != "features"]
    assert [getattr(back, f) for f in fields] == [getattr(cfg, f) for f in fields]
