"""Feature events written by Apache Avro's own libraries, as they are, scored by a worker.

The same events are produced three ways to the test broker, and a running worker must
score them alike:

- fastavro, through Driftline's codec (the reference);
- Apache Avro for Python (``avro``, its default ``DatumWriter``, which writes the ints and
  bools of the feature union as doubles), with the block of docs/wire-format.md;
- Apache Avro for Java (``GenericDatumWriter`` via ``BinaryMessageEncoder``) and
  kafka-clients: tests/integration/java/AvroFeatureProducer.java, compiled here with the
  machine's JDK against the jars of tests/integration/java/pom.xml (Maven Central, kept
  under .cache/java-avro, as infra/kafka/fetch.sh keeps the broker's).

A value that still does not fit (41.5 for an integer, 2.0 for a boolean) is
dead-lettered with a detail that says how to write it, and a Java Integer, which no
branch of the union takes, is refused by the Java writer before anything is sent.
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from driftline.core.lifecycle.training import bootstrap
from driftline.core.model.config import ModelsConfig
from driftline.core.wire.codec import default_codec
from driftline.kafka import admin
from driftline.settings import Settings
from tests.integration import harness

ROOT = Path(__file__).resolve().parents[2]
JAVA = Path(__file__).parent / "java"
DOC = ROOT / "docs" / "wire-format.md"
SCHEMA = ROOT / "schemas" / "feature_event.v2.avsc"
CODEC = default_codec()

MODELS = """
[models.shop]
task = "classification"
factory = "logistic_regression"

[[models.shop.features]]
name = "age"
type = "integer"
min = 0.0
max = 130.0

[[models.shop.features]]
name = "plan"
type = "category"
categories = ["basic", "family", "pro"]

[[models.shop.features]]
name = "income"
type = "number"

[[models.shop.features]]
name = "vip"
type = "boolean"
"""


def features(rng: random.Random) -> dict[str, Any]:
    return {
        "age": rng.randrange(18, 90),
        "plan": rng.choice(["basic", "family", "pro"]),
        "income": round(rng.uniform(10_000, 90_000), 2),
        "vip": rng.random() < 0.4,
    }


def apache_single_object() -> Any:
    """The documented Apache avro block (docs/wire-format.md), run: its function."""
    mine = r"<!-- tested: tests/integration/test_avro_writers.py[^>]*-->\n```python\n(.*?)```"
    (block,) = re.findall(mine, DOC.read_text(), re.S)
    namespace: dict[str, Any] = {}
    exec(compile(block, f"{DOC}:apache", "exec"), namespace)
    return namespace["apache_single_object"]


def java_producer() -> tuple[list[str], Path]:
    """Compile the Java producer (once per source and pom: cached under .cache/java-avro);
    its class path and the directory of its classes."""
    if shutil.which("javac") is None or shutil.which("mvn") is None:
        pytest.fail("javac or mvn is missing: run infra/bootstrap.sh")
    source, pom = JAVA / "AvroFeatureProducer.java", JAVA / "pom.xml"
    digest = hashlib.sha256(source.read_bytes() + pom.read_bytes()).hexdigest()[:16]
    home = ROOT / ".cache" / "java-avro" / digest
    libs, classes = home / "libs", home / "classes"
    if not (home / ".complete").exists():
        shutil.rmtree(home, ignore_errors=True)
        subprocess.run(
            ["mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(pom),
             "dependency:copy-dependencies", "-DincludeScope=runtime",
             f"-DoutputDirectory={libs}"],
            check=True, timeout=600, capture_output=True,
        )  # fmt: skip
        classes.mkdir(parents=True)
        subprocess.run(["javac", "-cp", f"{libs}/*", "-d", str(classes), str(source)],
                       check=True, timeout=300, capture_output=True)  # fmt: skip
        (home / ".complete").write_text(digest)
    return [f"{classes}:{libs}/*"], classes


def java_line(event_id: str, model: str, t: int, f: dict[str, Any], age_type: str = "L") -> str:
    cols = [event_id, model, str(t), f"age={age_type}:{f['age']}", f"plan=S:{f['plan']}",
            f"income=D:{f['income']}", f"vip=B:{str(f['vip']).lower()}"]  # fmt: skip
    return "\t".join(cols)


@pytest.fixture
def shop(settings: Settings, tmp_path: Path) -> Any:
    """Topics, a bootstrapped ``shop`` champion (integer, category, number and boolean
    features), and a running worker."""
    models_file = tmp_path / "models.toml"
    models_file.write_text(MODELS)
    s = settings.model_copy(update={"models_file": models_file, "data_dir": tmp_path / "w"})
    admin.apply(s)
    rng = random.Random(3)
    rows = []
    for i in range(500):  # 100 held out: the gate's min_holdout_rows
        f = features(rng)
        rows.append({"event_id": f"t{i}", "event_time_ms": 1_700_000_000_000 + i,
                     "features": f, "label": f["vip"] or f["age"] > 50})  # fmt: skip
    config = ModelsConfig.load(models_file)["shop"]
    key = s.signing_key.get_secret_value().encode()
    _, records = bootstrap(rows, config, key=key, by="test", reason="avro writers",
                           now_ms=int(time.time() * 1000))  # fmt: skip
    harness.publish(s, "registry", "io.driftline.ModelVersion", records,
                    key=lambda r: f"{r['model']}/{r['version']}")  # fmt: skip
    proc = harness.worker(s, tmp_path).start()
    try:
        yield s
    finally:
        proc.stop()


def test_events_from_apache_avros_writers_are_scored_as_meant(
    shop: Settings, tmp_path: Path
) -> None:
    s = shop
    rng = random.Random(11)
    n = 12
    events = [features(rng) for _ in range(n)]
    t0 = 1_700_000_100_000
    topic = s.topic("features")

    def event(prefix: str, i: int, f: dict[str, Any]) -> dict[str, Any]:
        return {"event_id": f"{prefix}-{i}", "model": "shop", "event_time_ms": t0 + i,
                "features": f, "segment": {}}  # fmt: skip

    # the reference: fastavro, through Driftline's codec
    reference = [event("ref", i, f) for i, f in enumerate(events)]
    harness.produce(s, "features", harness.encoded("io.driftline.FeatureEvent", reference))
    # Apache avro for Python, as documented; and two values it cannot mean
    write = apache_single_object()
    py = [event("py", i, f) for i, f in enumerate(events)]
    py += [event("py-bad-age", 0, {**events[0], "age": 41.5}),
           event("py-bad-vip", 0, {**events[0], "vip": 2.0})]  # fmt: skip
    raw = [(e["event_id"].encode(), write(str(SCHEMA), {**e, "source": None})) for e in py]
    body = raw[0][1][10:]
    assert CODEC.decode(raw[0][1]).value["features"]["age"] == float(events[0]["age"])  # a double
    assert body  # the writer wrote the record, not only the header
    harness.produce(s, "features", raw)
    # Apache Avro for Java (GenericDatumWriter) and kafka-clients; an Integer it refuses
    classpath, _ = java_producer()
    lines = [java_line(f"java-{i}", "shop", t0 + i, f) for i, f in enumerate(events)]
    lines.append(java_line("java-int", "shop", t0, events[0], age_type="I"))
    events_file = tmp_path / "events.tsv"
    events_file.write_text("\n".join(lines) + "\n")
    run = subprocess.run(
        ["java", "-cp", classpath[0], "AvroFeatureProducer", s.bootstrap_servers, topic,
         str(SCHEMA), str(events_file)],
        capture_output=True, text=True, timeout=180, check=True,
    )  # fmt: skip
    out = run.stdout.splitlines()
    assert [ln for ln in out if ln.startswith("sent ")] == [f"sent java-{i}" for i in range(n)]
    (refused,) = [ln for ln in out if ln.startswith("refused ")]
    assert refused.startswith("refused java-int: Not in union")

    want = {f"{p}-{i}" for p in ("ref", "py", "java") for i in range(n)}
    predictions = harness.collect(
        s, "predictions", lambda got: want <= {p["event_id"] for p in got}, timeout=120
    )
    by_id = {p["event_id"]: p for p in predictions}
    assert want <= set(by_id), sorted(want - set(by_id))
    for i, f in enumerate(events):
        ref, py_p, java_p = by_id[f"ref-{i}"], by_id[f"py-{i}"], by_id[f"java-{i}"]
        for p in (py_p, java_p):
            assert p["prediction"] == ref["prediction"]
            assert p["scores"] == pytest.approx(ref["scores"])
            assert p["features"] == f  # the values meant, typed as the spec says
            assert type(p["features"]["age"]) is int and type(p["features"]["vip"]) is bool

    dead = harness.collect(
        s, "deadletter", lambda got: {"py-bad-age-0", "py-bad-vip-0"} <= {
            (d["source_key"] or b"").decode() for d in got}, timeout=60,
    )  # fmt: skip
    detail = {(d["source_key"] or b"").decode(): (d["reason"], d["detail"]) for d in dead}
    assert detail["py-bad-age-0"] == (
        "type_mismatch",
        "type_mismatch: feature 'age' = 41.5: expected integer (an Avro long), got a double "
        "that is not whole; write a long (a Python int, a java.lang.Long)",
    )
    assert detail["py-bad-vip-0"][0] == "type_mismatch"
    assert "got a double other than 0.0 or 1.0; write a boolean" in detail["py-bad-vip-0"][1]
    assert not {k for k in detail if k.startswith(("ref-", "py-", "java-")) and "bad" not in k}
