"""The printed report: faults with their recovery, what the outputs did around each,
worker exits, the verification table."""

from __future__ import annotations

from bench.faults.run import Run
from bench.faults.timeline import Window

TARGETS_S = {"leader": 10.0, "controller": 15.0}
"""Issue 26's targets: outputs flow again within 10 s of a leader SIGKILL, 15 s of a
controller SIGKILL (reported, not enforced: the run passes on exactness)."""


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def _window(w: Window | None) -> str:
    if w is None:
        return f"{'':>6} {'':>6} {'':>6} {'':>7}"
    return f"{w.stop:6.1f} {_s(w.p50):>6} {_s(w.p99):>6} {_s(w.outcome_p99):>7}"


def render(r: Run) -> str:
    lines = [
        "",
        "faults (recovery: until every partition of predictions and outcomes holds an",
        "        event produced after the fault, read_committed; of the trainer, until",
        "        its online learner publishes a checkpoint again; from the fault to the",
        "        next one: stop = the longest time a partition of predictions or outcomes",
        "        went without a record, p50/p99 = end-to-end latency of the predictions of",
        "        the events produced then, out p99 = of the outcomes of their labels,",
        "        retried = transactions read again: aborted/fenced/stuck)",
        f"  {'#':>2} {'t (s)':>7} {'progress':>8}  {'fault':<26} {'recovery (s)':>12} "
        f"{'stop':>6} {'p50':>6} {'p99':>6} {'out p99':>7} {'retried':>8}  last partition",
    ]
    if r.baseline is not None:
        lines.append(f"  {'':>2} {0.0:7.1f} {0.0:8.1%}  {'(before the first fault)':<26} "
                     f"{'':>12} {_window(r.baseline)}")  # fmt: skip
    for k, f in enumerate(r.faults, 1):
        rec = f.probe.recovered_s if f.probe else None
        text = "NOT RECOVERED" if rec is None else f"{rec:.1f}"
        last = f.probe.lagging() if f.probe else ""
        retried = f"{f.retried['aborted']}/{f.retried['fenced']}/{f.retried['stuck']}"
        lines.append(f"  {k:>2} {f.t:7.1f} {f.progress:8.1%}  {f.name():<26} {text:>12} "
                     f"{_window(f.window)} {retried:>8}  {last}")  # fmt: skip
        if f.detail:
            lines.append(f"  {'':>2} {'':>7} {'':>8}    {f.detail}")
        for t, what in f.steps:
            lines.append(f"  {'':>2} {t:7.1f} {'':>8}    {what}")
    if not r.faults:
        lines.append("  (none: --no-faults)")
    for f in r.faults:
        if f.kind in TARGETS_S and f.probe is not None:
            goal, rec = TARGETS_S[f.kind], f.probe.recovered_s
            verdict = "not recovered" if rec is None else "met" if rec <= goal else "missed"
            lines.append(f"target: outputs again within {goal:.0f} s of {f.name()}: "
                         f"{_s(rec)} s, {verdict}")  # fmt: skip
    lines += [f"note: {n}" for n in r.notes]
    lines.append(f"worker exits the harness did not cause: {len(r.exits)}")
    lines += [f"  {e}" for e in r.exits]
    lines += ["", "verification (read_committed; 'uncommitted': what read_uncommitted sees)",
              f"  {'kind':<28} {'expected':>9} {'got':>9} {'lost':>6} {'dup':>6} "
              f"{'unexpected':>10} {'uncommitted':>11}"]  # fmt: skip
    res = r.result
    for row in res.rows if res else []:
        lines.append(f"  {row.kind:<28} {row.expected:>9} {row.got:>9} {row.lost:>6} "
                     f"{row.duplicated:>6} {row.unexpected:>10} {row.uncommitted:>11}")  # fmt: skip
    if res is not None:
        lines.append(f"order violations: {len(res.order_violations)}")
        lines += [f"  {v}" for v in res.order_violations[:10]]
    if r.learning is not None:
        lines.append(r.learning.line())
    lines.append(f"run time {r.seconds:.0f} s (from the first event to the verification); "
                 f"load average {' -> '.join(r.load)}")  # fmt: skip
    problems = r.problems()
    lines += [f"problem: {p}" for p in problems]
    lines.append(f"RESULT: FAIL (logs: {r.run_dir})" if problems else "RESULT: PASS")
    return "\n".join(lines)
