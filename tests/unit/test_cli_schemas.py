"""``driftline schemas``: records, versions and fingerprints (no broker)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from click.testing import CliRunner

from driftline.cli import cli
from driftline.cli.schemas import rows
from driftline.core.wire.codec import encode
from driftline.core.wire.schemas import Schemas
from tests.schema_compat import FIXTURES
from tests.unit.core.examples import label

PACKAGED = Schemas.packaged()


def test_the_table_lists_every_record_with_its_header_fingerprint() -> None:
    result = CliRunner().invoke(cli, ["schemas"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["record", "version", "fingerprint"]
    assert len(lines) == 1 + len(list(PACKAGED))  # one line per published version
    for name in PACKAGED.names:
        sv = PACKAGED.current(name)
        (line,) = [ln for ln in lines if ln.startswith(name + " ") and ln.endswith("current")]
        assert sv.fingerprint.hex() in line and f" v{sv.version} " in line
    fe = [ln.split()[1] for ln in lines if ln.startswith("io.driftline.FeatureEvent ")]
    assert fe == ["v1", "v2"]


def test_json_rows_match_what_the_codec_writes() -> None:
    result = CliRunner().invoke(cli, ["schemas", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["record"]: r for r in map(json.loads, result.output.splitlines())}
    data = encode("Label", label())
    assert rows["io.driftline.Label"]["header"] == data[2:10].hex()
    java = int(rows["io.driftline.Label"]["java_long"], 16)
    assert java.to_bytes(8, "little") == data[2:10]  # how Java's encoder writes its long


def test_a_directory_with_three_versions_marks_the_current_one(tmp_path: Path) -> None:
    for sv in PACKAGED:
        shutil.copy(Path(__file__).parents[2] / "schemas" / sv.file_name, tmp_path)
    shutil.copy(FIXTURES / "feature_event.v3.avsc", tmp_path)
    result = CliRunner().invoke(cli, ["schemas", "--json", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    fe = [r for r in map(json.loads, result.output.splitlines()) if "FeatureEvent" in r["record"]]
    assert [(r["version"], r["current"]) for r in fe] == [(1, False), (2, False), (3, True)]


def test_the_wire_format_doc_lists_every_published_version() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "wire-format.md").read_text()
    table = re.findall(
        r"^\| (io\.driftline\.\w+) \| [^|]+ \| (\d+)( \(current\))? \| `([0-9a-f]{16})` \| "
        r"`(0x[0-9a-f]{16})` \|$",
        doc,
        re.M,
    )
    documented = {(r, int(v), bool(c), h, j) for r, v, c, h, j in table}
    published = {
        (r["record"], r["version"], r["current"] and r["version"] > 1, r["header"], r["java_long"])
        for r in rows(PACKAGED)
    }
    assert documented == published
