"""The core's rooms import downward only, the core imports no I/O library, and the
layers around the core (settings, kafka, the services, the CLI) import downward only.

The rooms and their order are drawn in ``driftline/core/__init__.py``, the layers in
docs/architecture.md; this test reads every module's imports (top level and inside
functions) with ``ast`` and fails on an import of a room or layer above the importer's
(or a sibling layer), or of Kafka, Faust, SQL or Prometheus code in the core.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "driftline" / "core"
ROOMS = ("wire", "model", "join", "watch", "lifecycle")
"""Lowest first: a room may import the rooms before it."""
SHARED = ("errors",)
"""Modules of the core's root that every room may import."""
IO = ("confluent_kafka", "aiokafka", "faust", "mode", "sqlalchemy", "prometheus_client")


def room_of(module: str) -> str | None:
    """The room of a ``driftline.core`` module name (None: not in the core, or shared)."""
    parts = module.split(".")
    if parts[:2] != ["driftline", "core"] or len(parts) < 3:
        return None
    return parts[2] if parts[2] in ROOMS else None


def imports_of(source: str, module: str) -> list[tuple[int, str]]:
    """Every module ``source`` imports, absolute, with its line (``from x import y`` gives
    ``x.y`` too, since ``y`` may be a module)."""
    out: list[tuple[int, str]] = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


def violations(sources: dict[str, str]) -> list[str]:
    """Import-direction and I/O violations among ``{module name: source}``, one per line."""
    found = []
    for module, source in sorted(sources.items()):
        mine = room_of(module)
        seen: set[int] = set()
        for line, target in imports_of(source, module):
            top = target.split(".")[0]
            why = None
            if top in IO:
                why = "I/O in the core"
            elif top != "driftline" or target in ("driftline", "driftline.__version__"):
                continue
            elif not target.startswith("driftline.core"):
                why = "outside the core"
            else:
                theirs = room_of(target)
                if theirs is None:
                    continue
                if mine is None:
                    why = f"shared -> {theirs}"
                elif ROOMS.index(theirs) > ROOMS.index(mine):
                    why = f"{mine} -> {theirs}"
            if why is not None and line not in seen:
                seen.add(line)
                found.append(f"{module}:{line} imports {target} ({why})")
    return found


def core_sources() -> dict[str, str]:
    out = {}
    for path in CORE.rglob("*.py"):
        rel = path.relative_to(CORE.parent.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        out[name] = path.read_text()
    return out


def test_every_module_of_the_core_is_in_a_room_or_shared():
    loose = [
        m for m in core_sources()
        if m.count(".") == 2 and m.rsplit(".", 1)[1] not in (*ROOMS, *SHARED)
    ]  # fmt: skip
    assert loose == [], f"modules at the core's root outside every room: {loose}"


def test_the_core_imports_downward_only_and_no_io():
    assert violations(core_sources()) == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("driftline.core.wire.codec", "from driftline.core.join import rules\n",
         "wire -> join"),
        ("driftline.core.model.scoring", "def f():\n    import driftline.core.watch.monitor\n",
         "model -> watch"),
        ("driftline.core.join.joiner", "from ..lifecycle import gate\n", "join -> lifecycle"),
        ("driftline.core.watch.monitor", "import confluent_kafka\n", "I/O in the core"),
        ("driftline.core.lifecycle.gate", "from driftline.streams import scorer\n",
         "outside the core"),
        ("driftline.core.errors", "from driftline.core.wire import codec\n", "shared -> wire"),
    ],
)  # fmt: skip
def test_an_upward_or_io_import_is_refused(module, source, expected):
    found = violations({module: source})
    assert len(found) == 1 and expected in found[0], found


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("driftline.core.lifecycle.gate", "from driftline.core.model import estimators\n"),
        ("driftline.core.join.joiner", "from driftline.core.wire.codec import Codec\n"),
        ("driftline.core.watch.monitor", "from driftline.core.errors import ConfigError\n"),
        ("driftline.core.watch.alerts", "from . import concept_drift\n"),
    ],
)
def test_a_downward_or_sideways_import_is_allowed(module, source):
    assert violations({module: source}) == []


# -- the layers around the core ------------------------------------------------------

ROOT = CORE.parent.parent
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("settings",),
    ("kafka", "broker", "procs", "reload", "replay"),
    ("client", "streams", "consumers", "demo"),
    ("cli",),
    ("__main__",),
)
"""Lowest first, as docs/architecture.md draws them: a package (or module) of
``driftline`` imports only those of the layers below its own, never a sibling of its
layer nor anything above. ``streams`` and ``consumers`` are the top-level folders
(``driftline/streams`` and ``driftline/consumers`` are symlinks to them)."""
OUTER = {name: i for i, layer in enumerate(LAYERS) for name in layer}
EVERYONE = ("driftline", "driftline.__version__")
"""The package itself (its version) may be imported from anywhere."""


def layer_of(module: str) -> str | None:
    """The ``driftline`` package or root module ``module`` belongs to (None: not ours)."""
    parts = module.split(".")
    if parts[0] != "driftline" or len(parts) < 2:
        return None
    return parts[1]


def layer_violations(sources: dict[str, str]) -> list[str]:
    """Imports against :data:`LAYERS` among ``{module name: source}``, one per line."""
    found = []
    for module, source in sorted(sources.items()):
        mine = layer_of(module)
        seen: set[int] = set()
        for line, target in imports_of(source, module):
            theirs = layer_of(target)
            if target in EVERYONE or theirs is None or theirs == mine or line in seen:
                continue
            if mine not in OUTER or theirs not in OUTER:
                why = f"{theirs if mine in OUTER else mine} is in no layer"
            elif OUTER[theirs] > OUTER[mine]:
                why = f"{mine} -> {theirs}: upward"
            elif OUTER[theirs] == OUTER[mine]:
                why = f"{mine} -> {theirs}: a sibling"
            else:
                continue
            seen.add(line)
            found.append(f"{module}:{line} imports {target} ({why})")
    return found


def tree_sources() -> dict[str, str]:
    """Every module of the package, streams/ and consumers/ named as they are imported
    (``driftline.streams.scorer``), read once at their real place."""
    out = {}
    for top in ("driftline", "streams", "consumers"):
        for path in (ROOT / top).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            if top == "driftline" and rel.parts[1] in ("streams", "consumers"):
                continue  # the symlinks: read at the top level
            parts = rel.parts if top == "driftline" else ("driftline", *rel.parts)
            out[".".join(parts).removesuffix(".__init__")] = path.read_text()
    return out


def test_every_package_of_driftline_is_in_a_layer():
    loose = sorted({m.split(".")[1] for m in tree_sources() if m.count(".")} - set(OUTER))
    assert loose == [], f"packages or modules of driftline in no layer: {loose}"


def test_the_layers_import_downward_only():
    assert layer_violations(tree_sources()) == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("driftline.kafka.status", "def f():\n    from driftline.consumers import trainer\n",
         "kafka -> consumers: upward"),
        ("driftline.streams.scorer", "from driftline.consumers.trainer import run\n",
         "streams -> consumers: a sibling"),
        ("driftline.consumers.trainer", "from driftline.cli.models import retrain_cmd\n",
         "consumers -> cli: upward"),
        ("driftline.settings", "from driftline.kafka.clients import admin_config\n",
         "settings -> kafka: upward"),
        ("driftline.client.producer", "from ..streams import telemetry\n",
         "client -> streams: a sibling"),
        ("driftline.core.wire.codec", "import driftline.settings\n", "core -> settings: upward"),
        ("driftline.kafka.admin", "from driftline.newthing import x\n", "newthing is in no layer"),
    ],
)  # fmt: skip
def test_an_upward_or_sideways_layer_import_is_refused(module, source, expected):
    found = layer_violations({module: source})
    assert len(found) == 1 and expected in found[0], found


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("driftline.cli.app", "from driftline.streams import worker\n"),
        ("driftline.streams.scorer", "from driftline.kafka.clients import consumer_config\n"),
        ("driftline.consumers.trainer", "from driftline.core.lifecycle import answer\n"),
        ("driftline.kafka.status", "from driftline import __version__\n"),
        ("driftline.streams.app", "from . import telemetry\n"),
    ],
)
def test_a_downward_layer_import_is_allowed(module, source):
    assert layer_violations({module: source}) == []


def test_the_architecture_picture_names_every_layer_and_room():
    """docs/architecture.md draws :data:`LAYERS` top down, one row between rules
    (``__main__`` shares the CLI's), and the core's :data:`ROOMS`."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    picture = text.split("## Rooms and import directions", 1)[1].split("```")[1]
    rows = re.split(r"\n *─+ *\n", picture)[::-1]  # lowest first, like LAYERS
    assert len(rows) == len(LAYERS) - 1
    placed: dict[str, int] = {}
    for i, row in enumerate(rows):
        for name in OUTER:
            if re.search(rf"(driftline/|[ {{,]){re.escape(name)}(/|\.py|,|}})", row):
                placed.setdefault(name, i)
    assert sorted(placed) == sorted(OUTER)
    assert placed == {name: min(layer, len(rows) - 1) for name, layer in OUTER.items()}
    assert [room for room in ROOMS if f"   {room}/" not in picture] == []


KAFKA_LAYER_REFUSES = ("prometheus_client", "sqlalchemy")
"""``driftline/kafka`` is Kafka client code only: the worker's metrics reach its loops'
transactions through an observer (``driftline.kafka.txn.TxnObserver``). (Faust's client
settings are built there, so Faust is not refused.)"""


def kafka_layer_violations(sources: dict[str, str]) -> list[str]:
    """Imports of metrics or SQL code from ``driftline.kafka``, one per line."""
    return [
        f"{module}:{line} imports {target}"
        for module, source in sorted(sources.items())
        if layer_of(module) == "kafka"
        for line, target in imports_of(source, module)
        if target.split(".")[0] in KAFKA_LAYER_REFUSES
    ]


def test_the_kafka_layer_imports_no_metrics_or_sql():
    assert kafka_layer_violations(tree_sources()) == []


def test_a_metrics_import_in_the_kafka_layer_is_refused():
    found = kafka_layer_violations(
        {"driftline.kafka.txn": "from prometheus_client import Counter\n"}
    )
    assert found[0] == "driftline.kafka.txn:1 imports prometheus_client", found
