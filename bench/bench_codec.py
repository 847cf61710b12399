"""Microseconds per encode/decode of a FeatureEvent with 10 features, and per feature-spec
check of its features (as typed, and as Apache avro's Python writer sends them).

Run: .venv/bin/python bench/bench_codec.py  (not a test: timings vary by machine)
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

from fastavro import schemaless_reader, schemaless_writer

from driftline.core.errors import CodecError
from driftline.core.model.validation import Spec
from driftline.core.wire.codec import Codec
from driftline.core.wire.schemas import Schemas
from tests.schema_compat import FIXTURES, schema_dir_with
from tests.unit.core.examples import feature_event


def per_call_us(fn: Callable[[], object], number: int = 50_000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    codec = Codec()
    event = feature_event()
    data = codec.encode("FeatureEvent", event)
    schema = codec.schemas.current("FeatureEvent").schema
    body = data[10:]
    with tempfile.TemporaryDirectory() as tmp:
        v3 = (FIXTURES / "feature_event.v3.avsc").read_text()
        v3_codec = Codec(
            Schemas.from_dir(schema_dir_with(Path(tmp), {"feature_event.v3.avsc": v3}))
        )
    features = event["features"]
    spec = Spec.infer([features, {**features, "last_login_days": 3}])
    as_apache = {  # Apache avro's Python DatumWriter: ints and bools of the union as doubles
        k: float(v) if isinstance(v, int) else v for k, v in features.items()
    }

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
        ("Codec.decode current bytes into a v3", lambda: v3_codec.decode(data)),
        (
            "Codec.decode unknown fingerprint (error)",
            lambda: _swallow(codec, b"\xc3\x01" + bytes(8)),
        ),
        ("Spec.check", lambda: spec.check(features)),
        ("Spec.conform (as typed: the scorer's path)", lambda: spec.conform(features)),
        ("Spec.conform (ints, bools as doubles)", lambda: spec.conform(as_apache)),
    ]
    print(f"FeatureEvent, 10 features, {len(data)} bytes")
    for name, fn in rows:
        print(f"{name:45s} {per_call_us(fn):6.2f} µs")


def _swallow(codec: Codec, data: bytes) -> None:
    with contextlib.suppress(CodecError):
        codec.decode(data)


if __name__ == "__main__":
    main()
