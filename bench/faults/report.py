"""The printed report: faults with their recovery, worker exits, the verification table."""

from __future__ import annotations

from bench.faults.run import Run


def render(r: Run) -> str:
    lines = [
        "",
        "faults (recovery: until every partition of predictions and outcomes holds an",
        "        event produced after the fault, read_committed)",
        f"  {'#':>2} {'t (s)':>7} {'progress':>8}  {'fault':<26} {'recovery (s)':>12}"
        "  last partition",
    ]
    for k, f in enumerate(r.faults, 1):
        rec = f.probe.recovered_s if f.probe else None
        text = "NOT RECOVERED" if rec is None else f"{rec:.1f}"
        last = f.probe.lagging() if f.probe else ""
        lines.append(f"  {k:>2} {f.t:7.1f} {f.progress:8.1%}  {f.name():<26} {text:>12}  {last}")
    if not r.faults:
        lines.append("  (none: --no-faults)")
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
    lines.append(f"run time {r.seconds:.0f} s (from the first event to the verification)")
    problems = r.problems()
    lines += [f"problem: {p}" for p in problems]
    lines.append(f"RESULT: FAIL (logs: {r.run_dir})" if problems else "RESULT: PASS")
    return "\n".join(lines)
