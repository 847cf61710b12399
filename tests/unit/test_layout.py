"""The core's rooms import downward only, and the core imports no I/O library.

The rooms and their order are drawn in ``driftline/core/__init__.py``; this test reads
every module's imports (top level and inside functions) with ``ast`` and fails on an
import of a room above the importer's, or of Kafka, Faust, SQL or Prometheus code.
"""

from __future__ import annotations

import ast
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
