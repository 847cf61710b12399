"""docs/configuration.md names every key the models-file parser accepts, in the table of
its section, and no key the parser does not accept."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from driftline.core.model.config import (
    DRIFT_KEYS,
    FEATURE_KEYS,
    GATE_KEYS,
    KEYS,
    LIVE_KEYS,
    ONLINE_KEYS,
)
from driftline.core.watch.models_file import RETRAIN_KEYS

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
SECTIONS = {
    "### `[models.NAME]`": KEYS,
    "### `[[models.NAME.features]]`": FEATURE_KEYS,
    "### `[models.NAME.gate]`": GATE_KEYS,
    "### `[models.NAME.retrain]`": RETRAIN_KEYS,
    "### `[models.NAME.drift]`": DRIFT_KEYS,
    "### `[models.NAME.online]`": ONLINE_KEYS,
    "### `[models.NAME.live]`": LIVE_KEYS,
}


def table_keys(heading: str) -> set[str]:
    """The keys in the first column of the table under ``heading``."""
    text = DOC.read_text()
    start = text.index(heading + "\n")
    end = text.find("\n#", start + len(heading))
    body = text[start : end if end != -1 else len(text)]
    keys: set[str] = set()
    for row in re.findall(r"^\| (`[^|]+`) \|", body, flags=re.M):
        keys.update(re.findall(r"`([a-z_]+)`", row))
    return keys


@pytest.mark.parametrize("heading", list(SECTIONS))
def test_every_parser_key_is_documented_in_its_section(heading: str) -> None:
    assert table_keys(heading) == set(SECTIONS[heading])
