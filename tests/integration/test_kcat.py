"""Other tools speak Driftline's wire format: kcat (Debian's package) against the broker.

A FeatureEvent value prepared outside the client is produced by the ``kcat`` binary
with its key and headers; Driftline's codec decodes it on the consumer side, and it
lands on the partition Java's murmur2 partitioner gives (the one Driftline's own
confluent-kafka producer, with ``partitioner=murmur2_random``, picks too). The
Python blocks of docs/wire-format.md marked as tested run here, so the docs stay true.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest

from driftline.client import FeatureEvent, Producer, Subscriber
from driftline.core.wire import headers
from driftline.core.wire.codec import decode, encode
from driftline.kafka import admin
from driftline.settings import Settings
from tests.integration.clienthelpers import java_partition, take
from tests.unit.core.examples import known

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "wire-format.md"
KEYS = [f"evt-{i}" for i in range(8)]


def documented(index: int) -> dict[str, Any]:
    """Run the ``index``-th tested Python block of the wire-format doc; its globals."""
    mine = r"<!-- tested: tests/integration/test_kcat.py[^>]*-->\n```python\n(.*?)```"
    blocks = re.findall(mine, DOC.read_text(), re.S)
    namespace: dict[str, Any] = {}
    exec(compile(blocks[index], f"{DOC}:block{index}", "exec"), namespace)
    return namespace


def kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        pytest.fail("kcat is not installed: run `bash infra/bootstrap.sh`")
    return path


def event(key: str) -> dict[str, Any]:
    return {
        "event_id": key,
        "model": "churn",
        "event_time_ms": 1_700_000_000_000,
        "features": {"age": 41, "plan": "family", "income": 52300.5, "vip": True, "x": None},
        "segment": {"region": "eu"},
    }


def test_the_documented_builder_writes_what_the_codec_writes() -> None:
    single_object = documented(0)["single_object"]
    for key in KEYS:
        built = single_object(str(ROOT / "schemas" / "feature_event.v2.avsc"), event(key))
        assert built == encode("FeatureEvent", event(key))


def test_kcat_produces_a_value_driftline_decodes_on_the_java_partition(
    settings: Settings, tmp_path: Path
) -> None:
    admin.apply(settings)
    s, n = settings, settings.data_partitions
    topic = s.topic("features")
    # the keys must tell the partitioners apart: librdkafka's default hashes with CRC32
    assert any(java_partition(k, n) != zlib.crc32(k.encode()) % n for k in KEYS)

    for key in KEYS:
        value = tmp_path / f"{key}.bin"
        value.write_bytes(encode("FeatureEvent", event(key)))
        subprocess.run(
            [
                kcat(), "-P", "-b", s.bootstrap_servers, "-t", topic, "-m", "30",
                "-X", "partitioner=murmur2_random",
                "-k", key,
                "-H", f"{headers.CONTENT_TYPE}={headers.AVRO_SINGLE_OBJECT}",
                "-H", f"{headers.SCHEMA}={FeatureEvent.SCHEMA}",
                "-H", f"{headers.EVENT_TIME}=1700000000000",
                str(value),
            ],
            check=True, timeout=60, capture_output=True,
        )  # fmt: skip
    with Producer(s, app="same-keys") as producer:  # confluent-kafka, murmur2_random
        ours = {k: producer.send(FeatureEvent.from_dict(event(k))).wait(30) for k in KEYS}

    with Subscriber(FeatureEvent, s, app="check", start="earliest") as sub:
        got = take(sub, 2 * len(KEYS))
    from_kcat = [g for g in got if headers.TRACE_ID not in g.headers]  # kcat set no trace id
    assert sorted(known(g.key) for g in from_kcat) == sorted(KEYS)
    for g in from_kcat:
        assert g.key is not None
        assert g.record == FeatureEvent.from_dict(event(g.key))
        assert g.partition == java_partition(g.key, n) == ours[g.key].partition
        assert g.headers[headers.SCHEMA] == FeatureEvent.SCHEMA
        assert g.headers[headers.CONTENT_TYPE] == headers.AVRO_SINGLE_OBJECT

    # kcat reads them back as the doc shows: text columns, and length-framed values
    listing = subprocess.run(
        [
            kcat(), "-C", "-b", s.bootstrap_servers, "-t", topic, "-o", "beginning", "-e",
            "-m", "30", "-f", "key=%k partition=%p offset=%o headers=%h\n",
        ],
        check=True, timeout=60, capture_output=True, text=True,
    ).stdout.splitlines()  # fmt: skip
    assert len(listing) == 2 * len(KEYS)
    for key in KEYS:
        mine = [ln for ln in listing if ln.startswith(f"key={key} ")]
        assert len(mine) == 2
        assert all(f"partition={java_partition(key, n)} " in ln for ln in mine)
        assert all(f"{headers.SCHEMA}={FeatureEvent.SCHEMA}" in ln for ln in mine)
    framed = subprocess.run(
        [
            kcat(), "-C", "-b", s.bootstrap_servers, "-t", topic, "-o", "beginning", "-e",
            "-m", "30", "-f", "%R%s",
        ],
        check=True, timeout=60, capture_output=True,
    ).stdout  # fmt: skip
    values = list(documented(1)["framed_values"](framed))
    assert len(values) == 2 * len(KEYS)
    decoded = [decode(v, expect="FeatureEvent").value for v in values]
    assert sorted(d["event_id"] for d in decoded) == sorted(KEYS * 2)
    assert all(d == {**event(d["event_id"]), "source": None} for d in decoded)  # FeatureEvent v2


def test_kcat_features_and_labels_go_through_the_pipeline(pipeline, tmp_path: Path) -> None:
    """kcat, not Driftline's client, feeds a running worker: its features are scored and
    its labels joined, exactly as if a Driftline producer had sent them."""
    import random

    from tests.integration import churn, harness

    s, champion, proc = pipeline
    rng = random.Random(21)
    events = [churn.example(rng, i) for i in range(6)]
    for topic, name, records in (
        ("features", "FeatureEvent", [churn.feature_event(e) for e in events]),
        ("labels", "Label", [churn.label(e) for e in events]),
    ):
        for r in records:
            value = tmp_path / f"{topic}-{r['event_id']}.bin"
            value.write_bytes(encode(name, r))
            subprocess.run(
                [kcat(), "-P", "-b", s.bootstrap_servers, "-t", s.topic(topic),
                 "-X", "partitioner=murmur2_random", "-k", r["event_id"], str(value)],
                check=True, timeout=60, capture_output=True,
            )  # fmt: skip
    ids = sorted(e["event_id"] for e in events)
    preds = harness.collect(s, "predictions", lambda got: len(got) >= len(events))
    assert sorted(p["event_id"] for p in preds) == ids, proc.tail()
    assert {p["version"] for p in preds} == {champion}
    outcomes = harness.collect(s, "outcomes", lambda got: len(got) >= len(events))
    assert sorted(o["event_id"] for o in outcomes) == ids, proc.tail()
    dead = harness.collect(s, "deadletter", lambda got: False, timeout=2)
    assert dead == [], dead
