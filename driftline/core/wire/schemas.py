"""The published Avro schemas: every version of every record, parsed once.

A schema directory holds one record per file, named ``<record>.v<N>.avsc`` (for
example ``feature_event.v1.avsc`` for ``io.driftline.FeatureEvent``). Every
published version stays in the directory; the highest ``N`` of a record is its
*current* version, the one Driftline writes and reads into. A reader must be
given the schema directory of every version a writer may use, so upgrade readers'
schema files before writers start producing a new version.

Loading parses each file with fastavro and computes its CRC-64-AVRO fingerprint
(the 8 bytes the single-object header carries, little-endian as the Avro spec
says). Fingerprinting costs ~0.5 ms a schema, so it happens here, once.

>>> schemas = Schemas.packaged()
>>> fe = schemas.current("FeatureEvent")
>>> fe.name, fe.version, [sv.version for sv in schemas.versions("FeatureEvent")]
('io.driftline.FeatureEvent', 2, [1, 2])
>>> schemas.by_fingerprint(fe.fingerprint) is fe
True
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from driftline.core.errors import ConfigError, UnknownSchemaError

__all__ = ["SchemaVersion", "Schemas", "crc64_avro"]

_FILE_NAME = re.compile(r"^(?P<stem>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.avsc$")


def crc64_avro(canonical_form: str) -> bytes:
    """The CRC-64-AVRO fingerprint of a parsing canonical form, in header byte order.

    fastavro returns the hex of the little-endian bytes, which is the order the
    single-object header uses (checked against the Apache implementation in tests).

    >>> crc64_avro('"null"').hex()
    '8a8f25cce724dd63'
    """
    return bytes.fromhex(_fastavro_fingerprint(canonical_form, "CRC-64-AVRO"))


def _snake(name: str) -> str:
    """``FeatureEvent`` -> ``feature_event``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


@dataclass(frozen=True, slots=True, eq=False)
class SchemaVersion:
    """One published version of one record.

    ``schema`` is fastavro's parsed schema, ready for the schemaless reader and
    writer; ``fingerprint`` is the 8-byte CRC-64-AVRO fingerprint.
    """

    name: str
    version: int
    file_name: str
    schema: dict[str, Any]
    canonical_form: str
    fingerprint: bytes

    @property
    def short_name(self) -> str:
        """The record name without its namespace."""
        return self.name.rpartition(".")[2]

    @classmethod
    def parse(cls, file_name: str, text: str) -> SchemaVersion:
        """Parse one ``<record>.v<N>.avsc`` file; raise ConfigError if it is not one."""
        match = _FILE_NAME.match(file_name)
        if match is None:
            raise ConfigError(f"{file_name}: schema files are named <record>.v<N>.avsc")
        try:
            # Each file gets its own named-types table: versions of a record share names.
            parsed = parse_schema(json.loads(text), named_schemas={})
        except Exception as exc:  # json and fastavro raise many kinds
            raise ConfigError(f"{file_name}: not a valid Avro schema: {exc}") from exc
        if not isinstance(parsed, dict) or parsed.get("type") != "record":
            raise ConfigError(f"{file_name}: the top-level schema must be a record")
        name = str(parsed["name"])
        if _snake(name.rpartition(".")[2]) != match["stem"]:
            raise ConfigError(f"{file_name}: holds record {name}, file name does not match")
        canonical = to_parsing_canonical_form(parsed)
        return cls(
            name=name,
            version=int(match["version"]),
            file_name=file_name,
            schema=parsed,
            canonical_form=canonical,
            fingerprint=crc64_avro(canonical),
        )

    def __repr__(self) -> str:
        return f"SchemaVersion({self.name} v{self.version}, {self.fingerprint.hex()})"


class Schemas:
    """Every published version of every record, looked up by name or fingerprint.

    Names may be full (``io.driftline.Label``) or short (``Label``) when the short
    name is unambiguous.
    """

    def __init__(self, versions: Iterable[SchemaVersion]) -> None:
        by_record: dict[str, list[SchemaVersion]] = {}
        for sv in versions:
            by_record.setdefault(sv.name, []).append(sv)
        if not by_record:
            raise ConfigError("no schemas given")
        self._versions: dict[str, tuple[SchemaVersion, ...]] = {}
        self._fingerprints: dict[bytes, SchemaVersion] = {}
        for name, svs in sorted(by_record.items()):
            svs.sort(key=lambda sv: sv.version)
            numbers = [sv.version for sv in svs]
            if len(set(numbers)) != len(numbers):
                raise ConfigError(f"{name}: a version number is published twice: {numbers}")
            self._versions[name] = tuple(svs)
            for sv in svs:  # ascending: a fingerprint shared by versions maps to the latest
                other = self._fingerprints.get(sv.fingerprint)
                if other is not None and other.name != name:
                    raise ConfigError(f"{sv!r} and {other!r} share a fingerprint")
                self._fingerprints[sv.fingerprint] = sv
        self._current = {name: svs[-1] for name, svs in self._versions.items()}
        short: dict[str, list[str]] = {}
        for name in self._versions:
            short.setdefault(name.rpartition(".")[2], []).append(name)
        self._aliases = {s: names[0] for s, names in short.items() if len(names) == 1}
        self._aliases.update({name: name for name in self._versions})

    @classmethod
    def from_dir(cls, directory: Traversable | str | Path) -> Schemas:
        """Load every ``*.avsc`` file of ``directory`` (a path or package resource)."""
        root: Traversable = Path(directory) if isinstance(directory, str | Path) else directory
        if not root.is_dir():
            raise ConfigError(f"schema directory {directory} does not exist")
        entries = sorted((e for e in root.iterdir() if e.name.endswith(".avsc")), key=_name)
        return cls(SchemaVersion.parse(e.name, e.read_text(encoding="utf-8")) for e in entries)

    @staticmethod
    def packaged() -> Schemas:
        """The schemas shipped with Driftline (``driftline/schemas``), loaded once."""
        return _packaged()

    @property
    def names(self) -> tuple[str, ...]:
        """Full names of every record, sorted."""
        return tuple(self._versions)

    def full_name(self, name: str) -> str:
        """The full name of a record given its full or short name."""
        try:
            return self._aliases[name]
        except KeyError:
            raise UnknownSchemaError(f"no published record named {name!r}") from None

    def current(self, name: str) -> SchemaVersion:
        """The current (highest) version of a record."""
        return self._current[self.full_name(name)]

    def versions(self, name: str) -> tuple[SchemaVersion, ...]:
        """Every published version of a record, oldest first."""
        return self._versions[self.full_name(name)]

    def by_fingerprint(self, fingerprint: bytes) -> SchemaVersion | None:
        """The version with this 8-byte fingerprint, or None."""
        return self._fingerprints.get(fingerprint)

    def __iter__(self) -> Iterator[SchemaVersion]:
        for svs in self._versions.values():
            yield from svs

    def __repr__(self) -> str:
        parts = (f"{n.rpartition('.')[2]} v{sv.version}" for n, sv in self._current.items())
        return f"Schemas({', '.join(parts)})"


def _name(entry: Traversable) -> str:
    return entry.name


@cache
def _packaged() -> Schemas:
    return Schemas.from_dir(files("driftline") / "schemas")
