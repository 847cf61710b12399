"""Microseconds per encode/decode of a FeatureEvent with 10 features.

Run: .venv/bin/python bench/bench_codec.py  (not a test: timings vary by machine)
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import timeit
from pathlib import Path

from fastavro import schemaless_reader, schemaless_writer

from driftline.core.errors import CodecError
from driftline.core.wire.codec import Codec
from driftline.core.wire.schemas import Schemas
from tests.schema_compat import FIXTURES, schema_dir_with
from tests.unit.core.examples import feature_event


def per_call_us(fn, number: int = 50_000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    codec = Codec()
    event = feature_event()
    data = codec.encode("FeatureEvent", event)
    schema = codec.schemas.current("FeatureEvent").schema
    body = data[10:]
    with tempfile.TemporaryDirectory() as tmp:
        v2 = (FIXTURES / "feature_event.v2.avsc").read_text()
        v2_codec = Codec(
            Schemas.from_dir(schema_dir_with(Path(tmp), {"feature_event.v2.avsc": v2}))
        )

    def raw_write() -> bytes:
        out = io.BytesIO()
        schemaless_writer(out, schema, event)
        return out.getvalue()

    rows = [
        ("fastavro schemaless_writer (baseline)", raw_write),
        ("Codec.encode", lambda: codec.encode("FeatureEvent", event)),
        (
            "fastavro schemaless_reader (baseline)",
            lambda: schemaless_reader(io.BytesIO(body), schema, None),
        ),
        ("Codec.decode (writer = current)", lambda: codec.decode(data)),
        ("Codec.decode(expect=...)", lambda: codec.decode(data, expect="FeatureEvent")),
        ("Codec.decode v1 bytes into v2", lambda: v2_codec.decode(data)),
        (
            "Codec.decode unknown fingerprint (error)",
            lambda: _swallow(codec, b"\xc3\x01" + bytes(8)),
        ),
    ]
    print(f"FeatureEvent, 10 features, {len(data)} bytes")
    for name, fn in rows:
        print(f"{name:45s} {per_call_us(fn):6.2f} µs")


def _swallow(codec: Codec, data: bytes) -> None:
    with contextlib.suppress(CodecError):
        codec.decode(data)


if __name__ == "__main__":
    main()
