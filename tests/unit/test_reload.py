"""SIGHUP reload of the models file: a good file replaces the configuration in force, a
broken or unreadable one is refused with config_rejected alerts and the last good one
stays; the worker's monitors take the new configuration."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from driftline.core.model.config import ModelConfig, ModelsConfig
from driftline.core.watch import models_file
from driftline.core.wire.codec import default_codec
from driftline.reload import ModelsReloader
from driftline.streams.monitors import Monitors

GOOD = '[models.churn]\ntask = "classification"\n[models.churn.retrain]\nmin_rows = 300\n'
CHANGED = GOOD.replace("min_rows = 300", "min_rows = 500") + '[models.price]\ntask = "regression"\n'
BROKEN = GOOD.replace("min_rows = 300", "min_rws = 300")


def reloader(path: Path) -> tuple[ModelsReloader, list[ModelsConfig], list[dict[str, Any]]]:
    changes: list[ModelsConfig] = []
    alerts: list[dict[str, Any]] = []
    r = ModelsReloader(path, models_file.load(path), process="worker",
                       on_change=changes.append, on_alert=alerts.append)  # fmt: skip
    return r, changes, alerts


def test_a_good_file_is_applied(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "models.toml"
    path.write_text(GOOD)
    r, changes, alerts = reloader(path)
    path.write_text(CHANGED)
    with caplog.at_level(logging.INFO, "driftline.reload"):
        assert r.reload() is True
    assert r.current["churn"].retrain == {"min_rows": 500}
    assert changes == [r.current] and alerts == [] and r.reloads == 1
    assert "reloaded models file" in caplog.text and "changed: churn, price" in caplog.text


@pytest.mark.parametrize("broken", ["file", "unreadable"])
def test_a_broken_file_keeps_the_last_good_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, broken: str
) -> None:
    path = tmp_path / "models.toml"
    path.write_text(GOOD)
    r, changes, alerts = reloader(path)
    before = r.current
    if broken == "file":
        path.write_text(BROKEN)
    else:
        path.unlink()
    with caplog.at_level(logging.ERROR, "driftline.reload"):
        assert r.reload() is False
    assert r.current is before and changes == [] and r.rejected == 1
    assert "refused models file" in caplog.text
    (alert,) = alerts
    assert (alert["kind"], alert["model"]) == ("config_rejected", "churn")
    words = "min_rws" if broken == "file" else "cannot read models file"
    assert words in alert["message"] and words in caplog.text
    codec = default_codec()
    assert codec.decode(codec.encode("io.driftline.Alert", alert)).value == alert


def test_sighup_requests_a_reload_that_the_loop_applies(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text(GOOD)
    r, changes, _ = reloader(path)
    previous = signal.getsignal(signal.SIGHUP)
    try:
        r.install()
        assert r.poll() is False  # nothing asked yet
        path.write_text(CHANGED)
        os.kill(os.getpid(), signal.SIGHUP)
        deadline = time.monotonic() + 5
        while not r.requested.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert r.poll() is True and r.poll() is False
        assert changes and "price" in r.current
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_no_models_file_to_reload() -> None:
    r = ModelsReloader(None, ModelsConfig(), process="trainer")
    assert r.reload() is False


def test_the_monitors_take_the_reloaded_configuration() -> None:
    monitors = Monitors(ModelsConfig({"churn": ModelConfig("churn", retrain={"min_rows": 300})}))
    churn = monitors.get("churn")
    other = monitors.get("other", "regression")
    monitors.reconfigure(ModelsConfig({"churn": ModelConfig("churn", retrain={"min_rows": 700})}))
    assert monitors.get("churn") is churn and churn.policy.config["min_rows"] == 700
    assert other.config == ModelConfig("other", task="regression")  # unchanged: not in the file
    monitors.reconfigure(ModelsConfig())  # the file no longer names churn: defaults
    assert churn.config == ModelConfig("churn") and churn.policy.config["min_rows"] == 2_000
