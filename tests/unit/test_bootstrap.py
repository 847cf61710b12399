"""infra/bootstrap.sh: what each command installs, and how it reports (a stand-in
apt-get on PATH records its calls; nothing is installed)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APT = """#!/bin/bash
echo "$*" >> "$CALLS"
for i in $(seq 100); do echo "Get:$i http://deb.example bookworm/main package-$i"; done
if [[ $1 == install && -n ${FAIL:-} ]]; then echo "E: Unable to locate package $FAIL"; exit 100; fi
"""


def bootstrap(
    tmp_path: Path, *args: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    (tmp_path / "bin").mkdir(exist_ok=True)
    apt = tmp_path / "bin" / "apt-get"
    apt.write_text(APT)
    apt.chmod(0o755)
    calls = tmp_path / "calls"
    calls.write_text("")
    full = {
        **os.environ,
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "CALLS": str(calls),
        "DRIFTLINE_BOOTSTRAP_LOG": str(tmp_path / "bootstrap.log"),
        **env,
    }
    if os.geteuid() != 0:  # sudo would run the real apt-get
        (tmp_path / "bin" / "sudo").write_text('#!/bin/bash\nexec "$@"\n')
        (tmp_path / "bin" / "sudo").chmod(0o755)
    done = subprocess.run(
        ["bash", str(ROOT / "infra" / "bootstrap.sh"), *args],
        env=full, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done, calls.read_text().splitlines()


@pytest.mark.parametrize(
    ("args", "checked", "not_checked"),
    [
        ([], ["java", "mvn", "python3"], ["chromium", "prometheus", "kcat", "postgresql"]),
        (["--for", "demo"], ["java", "mvn"], ["chromium", "prometheus", "postgresql"]),
        (["--for", "test"], ["java", "chromium", "prometheus", "kcat", "postgresql"], []),
    ],
)
def test_each_command_checks_only_what_it_needs(tmp_path, args, checked, not_checked) -> None:
    done, calls = bootstrap(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert calls == []  # this machine has everything: apt-get is not run
    for what in checked:
        assert f"bootstrap: {what}" in done.stderr
    for what in not_checked:
        assert what not in done.stderr


def test_an_install_prints_one_line_per_step_and_logs_apt(tmp_path) -> None:
    # no PostgreSQL binaries where pg.sh is told to look: the test set installs them
    done, calls = bootstrap(tmp_path, "--for", "test", "--quiet", DRIFTLINE_PG_BINDIR="/none")
    assert calls == ["update", "install -y postgresql"]
    lines = [re.sub(r"ok \(\d+s\)", "ok (Ns)", line) for line in done.stderr.splitlines()]
    assert lines[:3] == [
        "bootstrap: postgresql (server binaries) missing",
        "bootstrap: apt-get update ... ok (Ns)",
        "bootstrap: apt-get install postgresql (for test) ... ok (Ns)",
    ]
    assert "Get:" not in done.stderr  # apt's output is in the log, not on the terminal
    assert (tmp_path / "bootstrap.log").read_text().count("Get:") == 200
    # the stand-in installed nothing, and the script says so
    assert done.returncode == 1 and "still missing after the install" in lines[-1]


def test_a_failed_step_shows_the_log_tail_and_its_path(tmp_path) -> None:
    done, _ = bootstrap(
        tmp_path, "--for", "test", "--quiet", DRIFTLINE_PG_BINDIR="/none", FAIL="postgresql"
    )
    assert done.returncode == 1
    assert "apt-get install postgresql (for test) ... FAILED" in done.stderr
    assert "  | E: Unable to locate package postgresql" in done.stderr
    assert done.stderr.count("  | ") == 25
    assert done.stderr.rstrip().endswith(f"the whole output is in {tmp_path}/bootstrap.log")


def test_an_unknown_target_is_refused(tmp_path) -> None:
    done, calls = bootstrap(tmp_path, "--for", "prod")
    assert done.returncode == 2 and "usage:" in done.stderr and calls == []
