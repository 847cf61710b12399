"""The committed top level is what it claims: ``streams/``, ``consumers/`` and ``schemas/``
hold the files, and ``driftline/streams`` etc. are the only symlinks git holds, each
pointing at its top-level folder (so ``import driftline.streams`` reads ``streams/``).

A commit once held a symlink where files should have been (``git add`` of the link
instead of the files behind it) and broke CI; this test reads ``git ls-files -s``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINKS = {
    "driftline/streams": "../streams",
    "driftline/consumers": "../consumers",
    "driftline/schemas": "../schemas",
}
"""The symlinks git holds, and their targets: nothing else may be one."""


def problems(staged: str, target_of: dict[str, str]) -> list[str]:
    """What is wrong with ``git ls-files -s`` output ``staged``, given each symlink's
    target as git stores it (``target_of``), one line each."""
    out = []
    entries = [line.split(None, 3) for line in staged.splitlines() if line.strip()]
    paths = {e[3] for e in entries}
    links = {e[3] for e in entries if e[0] == "120000"}
    for path in sorted(links - set(LINKS)):
        out.append(f"{path} is a symlink: commit the files, not a link to them")
    for path in sorted(set(LINKS) - links):
        out.append(f"{path} is not the symlink it should be (-> {LINKS[path]})")
    for path in sorted(links & set(LINKS)):
        if target_of.get(path) != LINKS[path]:
            out.append(f"{path} points to {target_of.get(path)!r}, not {LINKS[path]!r}")
    for link, target in LINKS.items():
        top = target.removeprefix("../")
        if not any(p.startswith(top + "/") for p in paths):
            out.append(f"{top}/ holds no committed file (behind {link})")
        inside = sorted(p for p in paths if p.startswith(link + "/"))
        out += [f"{p} is committed behind the symlink {link}" for p in inside]
    return out


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout  # fmt: skip


def test_the_committed_tree_holds_files_where_it_claims():
    staged = git("ls-files", "-s")
    targets = {p: git("cat-file", "-p", f":{p}") for p in LINKS}
    assert problems(staged, targets) == []


def test_the_links_resolve_to_the_top_level_folders():
    for link, target in LINKS.items():
        assert (ROOT / link).is_symlink(), link
        assert (ROOT / link).resolve() == (ROOT / link).parent.joinpath(target).resolve()


GOOD = (
    "120000 aaa 0\tdriftline/consumers\n120000 bbb 0\tdriftline/schemas\n"
    "120000 ccc 0\tdriftline/streams\n100644 ddd 0\tconsumers/trainer.py\n"
    "100644 eee 0\tschemas/label.v1.avsc\n100644 fff 0\tstreams/scorer.py\n"
)


@pytest.mark.parametrize(
    ("staged", "targets", "expected"),
    [
        (GOOD, LINKS, None),
        (GOOD + "120000 ggg 0\tstreams/new.py\n", LINKS,
         "streams/new.py is a symlink: commit the files"),
        (GOOD.replace("120000 ccc", "040000 ccc"), LINKS,
         "driftline/streams is not the symlink"),
        (GOOD, {**LINKS, "driftline/schemas": "/home/me/schemas"},
         "driftline/schemas points to '/home/me/schemas'"),
        (GOOD.replace("streams/scorer.py", "driftline/streams/scorer.py"), LINKS,
         "streams/ holds no committed file"),
        (GOOD + "100644 hhh 0\tdriftline/consumers/x.py\n", LINKS,
         "driftline/consumers/x.py is committed behind the symlink"),
    ],
)  # fmt: skip
def test_problems_names_each_wrong_arrangement(staged, targets, expected):
    found = problems(staged, targets)
    if expected is None:
        assert found == []
    else:
        assert any(expected in f for f in found), found
