"""`driftline demo` end to end at a small size: its own broker, worker and trainer; drift
detected, a retrain triggered, a validated version promoted, accuracy recovering."""

from __future__ import annotations

import json
from pathlib import Path

from driftline.demo.run import Options, run


def test_demo_closes_the_loop(tmp_path: Path) -> None:
    lines: list[str] = []
    opts = Options(
        stream="agrawal", events=14_000, drift_every=4_000, warmup=2_000, label_delay=300,
        rate=1_000.0, seed=7, min_rows=1_500, out=tmp_path / "report",
        broker_dir=tmp_path / "broker",
    )  # fmt: skip
    path = run(opts, echo=lines.append)
    assert path.is_file() and (tmp_path / "report" / "accuracy.png").stat().st_size > 10_000
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    log = "\n".join(lines)
    assert summary["outcomes"] == opts.events - opts.warmup, log
    assert summary["incidents opened"] >= 1, log
    assert (
        summary["incidents opened"]
        == summary["incidents resolved"] + summary["incidents firing at the end"]
    )
    assert summary["retrain triggers"] >= 1, log
    assert summary["versions promoted"] >= 1, log
    after = summary["served accuracy after the first change"]
    frozen = summary["frozen accuracy after the first change"]
    assert after > frozen, log
    html = path.read_text()
    assert "Versions, lineage and gate verdicts" in html and "data:image/png;base64," in html
    assert "champion" in html and "<h2>Incidents</h2>" in html
    # the per-feature drift panel: drawn when a feature drifted, else says none did
    drifted = (tmp_path / "report" / "feature_drift.png").is_file()
    assert "<h2>Feature drift</h2>" in html
    assert ('alt="feature drift"' in html) == drifted and ("No feature drifted" in html) != drifted
