"""``driftline worker --processes N``: what each child gets."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from driftline.settings import Settings
from driftline.streams.fanout import child_settings


@pytest.mark.parametrize(
    ("instance", "port", "data", "i", "expected"),
    [
        ("pod-3", 7000, Path("/data"), 0, ("pod-3-0", 7000, Path("/data/process-0"))),
        ("pod-3", 7000, Path("/data"), 2, ("pod-3-2", 7002, Path("/data/process-2"))),
        (None, 6066, Path("/d"), 1, (f"{socket.gethostname()}-1", 6067, Path("/d/process-1"))),
    ],
)
def test_each_child_has_its_own_instance_id_port_and_data_dir(
    instance: str | None, port: int, data: Path, i: int, expected: tuple[str, int, Path]
) -> None:
    s = Settings(instance_id=instance, worker_web_port=port, data_dir=data)
    child = child_settings(s, i)
    assert (child.instance_id, child.worker_web_port, child.data_dir) == expected
    assert child.topic_prefix == s.topic_prefix  # the same groups and topics


def test_without_a_data_dir_children_use_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert child_settings(Settings(data_dir=None), 0).data_dir == tmp_path / "process-0"
