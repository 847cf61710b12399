"""The demo report's page: the estimator checked against labels, calibration and the top
importances per version, beside what it showed before."""

from __future__ import annotations

from pathlib import Path

from driftline.demo import report
from tests.unit.core.examples import model_version

CHECK = {
    "version": "v4", "window_start_ms": 1, "metrics": {
        "estimated_accuracy": 0.71, "estimated_accuracy_lower": 0.68,
        "estimated_accuracy_upper": 0.74, "realized_accuracy": 0.64,
        "estimation_error_accuracy": -0.07, "estimation_mae_accuracy": 0.03,
        "labelled_share": 0.5},
}  # fmt: skip


def test_report_shows_estimated_against_realized_calibration_and_importance(
    tmp_path: Path,
) -> None:
    png = tmp_path / "accuracy.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    path = report.write(tmp_path, {"stream": "agrawal"}, png, [model_version()], ["@1: x"],
                        checks=[(3_000, CHECK), (1_000, {**CHECK, "version": "v3"})])  # fmt: skip
    page = path.read_text()
    assert "<h2>Estimated against realized accuracy</h2>" in page
    row = "<td>0.710 [0.680, 0.740]</td><td>0.640</td><td>-0.070</td><td>0.030</td><td>50%</td>"
    assert row in page
    assert page.index("<td>v3</td><td>1000</td>") < page.index("<td>v4</td><td>3000</td>")
    assert "isotonic, ECE 0.080 -&gt; 0.020" in page
    assert "age 0.120 ± 0.010, plan 0.000 ± 0.000" in page
    bare = report.write(tmp_path, {}, png, [{**model_version(), "calibration": None}], [])
    text = bare.read_text()
    assert "no chunk checked yet" in text and "<td>-</td>" in text
