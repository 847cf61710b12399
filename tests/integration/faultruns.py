"""The fault harness (bench/faults) as the fault tests run and judge it."""

from __future__ import annotations

from bench.faults.report import render
from bench.faults.run import Options, Run, run


def checked_run(options: Options) -> tuple[Run, str]:
    """A fault run with ``options``, which found no problem: the run and its report
    (printed). A failure's first line names what went wrong; the whole report follows."""
    r = run(options)
    report = render(r)
    print(report)
    problems = r.problems()
    assert not problems, "; ".join(problems) + "\n" + report
    return r, report


def assert_every_output_once(r: Run, report: str) -> None:
    """Every expected output there exactly once and in order, the run complete, and the
    service recovered from every fault."""
    assert r.result is not None, report
    for row in r.result.rows:
        assert (row.lost, row.duplicated, row.unexpected) == (0, 0, 0), report
        assert row.got == row.expected, report
    assert r.result.order_violations == [], report
    assert r.complete, report
    assert all(f.probe and f.probe.recovered_s is not None for f in r.faults), report
