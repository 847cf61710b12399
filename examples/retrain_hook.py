"""A retrain hook: answers Driftline's retrain triggers with your own training job.

For each trigger it runs --command, a template whose {fields} are filled from the
trigger: {model}, {trigger_id}, {idempotency_key}, {reasons} (comma-separated),
{champion_version}, {window_start_ms}, {window_end_ms}, {last_n} ('' when unset).
The template is split like a shell line first and each word filled in after, so
a value never becomes extra arguments and no shell is involved.

    python examples/retrain_hook.py --bootstrap localhost:9092 \\
        --command "python train.py --model {model} --trigger {trigger_id}"

A trigger is committed only after its job succeeded: if the job fails the hook
stops (exit 1) and the trigger is handed out again at the next start. Triggers
repeating an idempotency key already handled in this run are skipped; a real hook
would remember handled keys durably (a database, or the job's own output).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys

from driftline.client import RetrainTrigger, Subscriber
from driftline.settings import Settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: settings)")
    parser.add_argument("--prefix", help="Driftline topic prefix (default: settings)")
    parser.add_argument("--model", help="only this model's triggers (default: all)")
    parser.add_argument("--command", required=True, help="training job command template")
    parser.add_argument("--timeout", type=float, default=3600, help="job timeout, seconds")
    parser.add_argument("--count", type=int, default=0, help="stop after N jobs run")
    parser.add_argument("--idle-timeout", type=float, help="stop after S seconds of silence")
    parser.add_argument(
        "--from-beginning", action="store_true", help="a new group starts at the oldest"
    )
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment (DRIFTLINE_*), overridden by the command line."""
    given = {"bootstrap_servers": args.bootstrap, "topic_prefix": args.prefix}
    return Settings(**{k: v for k, v in given.items() if v is not None})


def command_for(template: str, trigger: RetrainTrigger) -> list[str]:
    """The job's argv: the template split like a shell line, each word filled in."""
    fields = {
        "model": trigger.model,
        "trigger_id": trigger.trigger_id,
        "idempotency_key": trigger.idempotency_key,
        "reasons": ",".join(trigger.reasons),
        "champion_version": trigger.champion_version or "",
        "window_start_ms": "" if trigger.window_start_ms is None else trigger.window_start_ms,
        "window_end_ms": "" if trigger.window_end_ms is None else trigger.window_end_ms,
        "last_n": "" if trigger.last_n is None else trigger.last_n,
    }
    return [word.format(**fields) for word in shlex.split(template)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    handled: set[str] = set()
    ran = 0
    with Subscriber(
        RetrainTrigger,
        settings_from(args),
        app="retrain-hook-example",
        model=args.model,
        start="earliest" if args.from_beginning else "latest",
        commit="manual",
        idle_timeout=args.idle_timeout,
    ) as triggers:
        for got in triggers:
            trigger = got.record
            if trigger.idempotency_key in handled:
                print(f"skipped {trigger.trigger_id}: {trigger.idempotency_key} already handled")
                triggers.commit()
                continue
            cmd = command_for(args.command, trigger)
            print(
                f"trigger {trigger.trigger_id} for {trigger.model} "
                f"({', '.join(trigger.reasons)}): running {shlex.join(cmd)}",
                flush=True,
            )
            job = subprocess.run(
                cmd, capture_output=True, text=True, timeout=args.timeout, check=False
            )
            for line in job.stdout.splitlines():
                print(f"  | {line}")
            if job.returncode != 0:
                print(f"job failed with exit code {job.returncode}: {job.stderr.strip()}")
                print("stopping; the trigger stays uncommitted and comes back next start")
                return 1
            print(f"ran: {shlex.join(cmd)} -> exit 0", flush=True)
            handled.add(trigger.idempotency_key)
            triggers.commit()  # only now: a crash during the job re-runs it
            ran += 1
            if ran == args.count:
                break
    print(f"ran {ran} training jobs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
