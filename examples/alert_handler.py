"""An alert handler: reads Driftline's alerts and acts on each by severity.

critical pages the on-call engineer, warning opens a ticket, info is logged. An
incident is paged once when it opens (and again if it escalates); its ``resolved``
record closes the page or ticket (``incident_id`` says which). Here the actions are
printed; put your pager or ticket API in ``act``. (With Prometheus, Alertmanager does
this for you: docs/on-call.md.)

    python examples/alert_handler.py --bootstrap localhost:9092 --min-severity warning
"""

from __future__ import annotations

import argparse
import sys

from driftline.client import Alert, Subscriber
from driftline.settings import Settings

SEVERITIES = ("info", "warning", "critical")
ACTIONS = {"critical": "PAGE", "warning": "TICKET", "info": "LOG"}
RESOLVED = "resolved"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: settings)")
    parser.add_argument("--prefix", help="Driftline topic prefix (default: settings)")
    parser.add_argument("--model", help="only this model's alerts (default: all)")
    parser.add_argument("--min-severity", choices=SEVERITIES, default="info")
    parser.add_argument("--count", type=int, default=0, help="stop after N alerts handled")
    parser.add_argument("--idle-timeout", type=float, help="stop after S seconds of silence")
    parser.add_argument(
        "--from-beginning", action="store_true", help="a new group starts at the oldest"
    )
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment (DRIFTLINE_*), overridden by the command line."""
    given = {"bootstrap_servers": args.bootstrap, "topic_prefix": args.prefix}
    return Settings(**{k: v for k, v in given.items() if v is not None})


def act(alert: Alert) -> str:
    """What to do about one alert; returns the line it printed."""
    where = alert.model + (f"/{alert.version}" if alert.version else "")
    where += f" segment {alert.segment}" if alert.segment else ""
    evidence = ", ".join(f"{k}={v}" for k, v in sorted(alert.evidence.items()))
    action = "CLOSE" if alert.state == RESOLVED else ACTIONS.get(alert.severity, "LOG")
    line = f"{action} [{alert.severity}] {where} {alert.kind}: "
    line += f"{alert.message} ({evidence})"
    print(line, flush=True)
    return line


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    floor = SEVERITIES.index(args.min_severity)
    handled = ignored = 0
    with Subscriber(
        Alert,
        settings_from(args),
        app="alert-handler-example",
        model=args.model,
        start="earliest" if args.from_beginning else "latest",
        idle_timeout=args.idle_timeout,
        on_error="skip_and_count",
    ) as alerts:
        for got in alerts:
            alert = got.record
            rank = SEVERITIES.index(alert.severity) if alert.severity in SEVERITIES else 2
            if rank < floor:
                ignored += 1
                continue
            act(alert)
            handled += 1
            if handled == args.count:
                break
        skipped = sum(alerts.skipped.values())
    print(
        f"handled {handled} alerts, ignored {ignored} below {args.min_severity}, "
        f"skipped {skipped} undecodable"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
