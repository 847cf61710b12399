"""Text of the models commands, and their --help (no broker needed)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from driftline.cli import cli
from driftline.cli.models_format import parse_since, typed, version_report, version_table
from driftline.core.errors import ConfigError
from driftline.core.lifecycle.registry import StageChange
from tests.unit.core.examples import model_version

NOW = 1_700_000_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", NOW - 30_000),
        ("2h", NOW - 7_200_000),
        ("7d", NOW - 604_800_000),
        ("1w", NOW - 604_800_000),
        ("1699999999000", 1_699_999_999_000),
        ("2023-11-14T22:13:20Z", NOW),
        ("2023-11-14T22:13:20", NOW),
        ("2023-11-14T23:13:20+01:00", NOW),
    ],
)
def test_parse_since(text: str, expected: int) -> None:
    assert parse_since(text, NOW) == expected


def test_parse_since_refuses_garbage() -> None:
    with pytest.raises(ConfigError, match="not a time"):
        parse_since("yesterday", NOW)


@pytest.mark.parametrize(
    ("cell", "value"),
    [("", None), ("7", 7), ("-2", -2), ("0.5", 0.5), ("TRUE", True), ("false", False), ("x", "x")],
)
def test_typed(cell: str, value: object) -> None:
    assert typed(cell) == value and type(typed(cell)) is type(value)


def test_version_table() -> None:
    lines = version_table([model_version(), model_version(version="v5", gate=None)])
    assert lines[0].split() == ["MODEL", "VERSION", "STAGE", "CREATED", "(UTC)", "METRIC", "GATE",
                                "SET", "BY"]  # fmt: skip
    assert lines[1].split()[:3] == ["churn", "v4", "challenger"]
    assert "accuracy 0.9300" in lines[1] and "passed" in lines[1]
    assert lines[2].split()[7] == "-"  # no gate


def test_version_report_goes_down_to_offsets() -> None:
    rec = model_version()
    history = [
        StageChange("churn", "v4", "candidate", None, "trainer", "trained", 1),
        StageChange("churn", "v4", "challenger", "candidate", "policy", "gate passed", 2),
        StageChange("churn", "v3", "champion", None, "x", "y", 3),
    ]
    text = "\n".join(version_report(rec, history, signature_ok=True))
    assert text.startswith("churn v4: challenger since 2023-11-15 00:13:20 (by policy: passed")
    assert "data: outcomes partition 0 offsets [100, 50100)" in text
    assert "data: outcomes partition 1 offsets [0, 49800)" in text
    assert "trigger trg-0001 (key churn:feature_drift:2023-11-14T23), run run-0042" in text
    assert "trained on 99800 rows, 24950 held out; seed 42; params l2=0.01, lr=0.05" in text
    assert "compared with champion v3" in text
    assert "signature valid" in text
    assert "region=eu: accuracy=0.94" in text
    assert "candidate -> challenger  by policy: gate passed" in text
    assert "v3" not in text.split("stage history")[1]
    assert "signature not checked" in "\n".join(version_report(rec, [], None))
    assert "completed with 1000 earlier rows from the training sample of v3" in text
    assert "training sample: 8 bytes (compressed)" in text
    assert "calibration: isotonic on 2000 held-out rows, ECE 0.0800 raw -> 0.0200" in text
    assert "importance (permutation, held-out; mean ± spread): age 0.1200 ± 0.0100, plan" in text
    lineage = {**rec["lineage"], "importance": {f"f{i}": {"mean": i / 10, "std": 0.0}
                                                for i in range(7)}}  # fmt: skip
    bare = "\n".join(version_report({**rec, "lineage": lineage, "calibration": None}, [], None))
    assert "f6 0.6000 ± 0.0000, f5" in bare and "f2 0.2000 ± 0.0000, 2 more" in bare
    assert "calibration:" not in bare


@pytest.mark.parametrize(
    "args",
    [
        ["trainer"],
        ["projector"],
        ["retrain"],
        ["models"],
        ["models", "list"],
        ["models", "show"],
        ["models", "promote"],
        ["models", "approve"],
        ["models", "rollback"],
        ["models", "bootstrap"],
    ],
)
def test_every_command_has_help(args: list[str]) -> None:
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
