"""``driftline schemas``: every published record, version and fingerprint.

Other languages and tools need the fingerprints to write or check the single-object
header (see docs/wire-format.md). ``header`` is the 8 bytes as they follow 0xC3 0x01;
``java_long`` is the same fingerprint as Java's
``SchemaNormalization.parsingFingerprint64`` returns it (the bytes read as a
little-endian long, printed as unsigned hex).

>>> row = rows(Schemas.packaged())[0]
>>> sorted(row)
['current', 'file', 'header', 'java_long', 'record', 'version']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from driftline.cli import text
from driftline.core.wire.schemas import Schemas

__all__ = ["COMMANDS", "rows", "schemas_cmd"]


def rows(schemas: Schemas) -> list[dict[str, Any]]:
    """One row per published version: record, version, fingerprints, file, current."""
    out = []
    for sv in schemas:
        out.append(
            {
                "record": sv.name,
                "version": sv.version,
                "header": sv.fingerprint.hex(),
                "java_long": f"0x{int.from_bytes(sv.fingerprint, 'little'):016x}",
                "file": sv.file_name,
                "current": schemas.current(sv.name) is sv,
            }
        )
    return out


@click.command("schemas")
@click.option(
    "--dir",
    "directory",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A schema directory (default: the schemas shipped with Driftline).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def schemas_cmd(directory: Path | None, as_json: bool) -> None:
    """Print every published record, version and CRC-64-AVRO fingerprint."""
    table = rows(Schemas.packaged() if directory is None else Schemas.from_dir(directory))
    if as_json:
        for row in table:
            click.echo(json.dumps(row))
        return
    cells = [("record", "version", "fingerprint (header bytes)", "java long", "file", "")]
    for r in table:
        cells.append(
            (
                r["record"],
                f"v{r['version']}",
                r["header"],
                r["java_long"],
                r["file"],
                "current" if r["current"] else "",
            )
        )
    for line in text.table(cells):
        click.echo(line)


COMMANDS: tuple[click.Command, ...] = (schemas_cmd,)
