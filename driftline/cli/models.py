"""``driftline trainer|projector|retrain|models ...``: continuous training commands.

Registered on the ``driftline`` group from :data:`COMMANDS`. Kafka clients are imported
inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

import getpass
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from driftline.cli.config import CONFIG_EXIT, checked_models, models_check
from driftline.cli.models_format import parse_since, version_report, version_table
from driftline.core.errors import ConfigError, StageError
from driftline.core.lifecycle.registry import (
    Registry,
    approve,
    retire,
    rollback,
    transition,
    unretire,
)
from driftline.settings import Settings


def _now_ms() -> int:
    return int(time.time() * 1000)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


by_option = click.option("--by", default=_user, show_default="$USER", help="Who asks.")
reason_option = click.option("--reason", required=True, help="Why (kept in the registry).")
port_option = click.option(
    "--metrics-port", type=int, default=None, help="Prometheus port (0: none). [settings]"
)


@click.command("trainer")
@port_option
@click.option("-v", "--verbose", is_flag=True)
@click.pass_obj
def trainer_cmd(settings: Settings, metrics_port: int | None, verbose: bool) -> None:
    """Run the trainer: answer retrain triggers with gated versions on the registry.

    A broken models file stops it before it starts (exit 2); SIGHUP reloads the file."""
    checked_models(settings, "trainer")
    from driftline.consumers import trainer

    _logging(verbose)
    trainer.main(settings, metrics_port)


@click.command("projector")
@port_option
@click.option("--rebuild", is_flag=True, help="Drop the SQL view and replay the topics first.")
@click.option("--once", is_flag=True, help="Exit once caught up with the topics.")
@click.option("-v", "--verbose", is_flag=True)
@click.pass_obj
def projector_cmd(
    settings: Settings, metrics_port: int | None, rebuild: bool, once: bool, verbose: bool
) -> None:
    """Keep the SQL view (settings.sql_url) of versions, runs, alerts and triggers."""
    from driftline.consumers import projector

    _logging(verbose)
    if rebuild:
        click.echo(f"rebuilt {settings.sql_url}: {projector.rebuild(settings)} records")
    if once:
        p = projector.Projector(settings)
        try:
            click.echo(f"projected {p.catch_up()} records into {settings.sql_url}")
        finally:
            p.close()
        return
    projector.main(settings, metrics_port)


@click.command("retrain")
@click.argument("model")
@click.option("--last-n", type=int, default=None, help="Train on at most the last N outcomes.")
@click.option("--since", default=None, help="Outcomes from: ISO time, epoch ms, or 30m/2h/7d ago.")
@click.option("--until", default=None, help="Outcomes before: ISO time, epoch ms, or 1h ago.")
@click.option("--key", default=None, help="Idempotency key (default: a new one).")
@by_option
@click.option("--reason", default="manual request", show_default=True)
@click.option("--wait", type=float, default=0, help="Seconds to wait for the trainer's answer.")
@click.option("--force", is_flag=True, help="Train even on fewer than the model's min_rows rows.")
@click.pass_obj
def retrain_cmd(
    settings: Settings,
    model: str,
    last_n: int | None,
    since: str | None,
    until: str | None,
    key: str | None,
    by: str,
    reason: str,
    wait: float,
    force: bool,
) -> None:
    """Publish a manual retrain trigger for MODEL (trained once its window holds the
    model's retrain.min_rows rows, unless --force)."""
    from driftline.kafka.helpers import Publisher
    from driftline.kafka.registry_follower import RegistryFollower

    now = _now_ms()
    follower = RegistryFollower(settings)
    follower.catch_up()
    champion = follower.registry.champion(model)
    trigger = {
        "trigger_id": f"manual-{uuid.uuid4()}",
        "model": model,
        "idempotency_key": key or f"manual:{uuid.uuid4()}",
        "reasons": ["manual"],
        "evidence": {"reason": reason, **({"force": True} if force else {})},
        "window_start_ms": None if since is None else parse_since(since, now),
        "window_end_ms": None if until is None else parse_since(until, now),
        "last_n": last_n,
        "champion_version": None if champion is None else champion["version"],
        "requested_by": by,
        "created_at_ms": now,
    }
    pub = Publisher(settings, "cli")
    pub.send("retrain", model, "RetrainTrigger", trigger, now)
    pub.close()
    click.echo(f"published trigger {trigger['trigger_id']} (key {trigger['idempotency_key']})")
    try:
        if wait > 0:
            _wait_for_answer(settings, follower, trigger, wait)
    finally:
        follower.close()


def _wait_for_answer(
    settings: Settings, follower: Any, trigger: dict[str, Any], wait: float
) -> None:
    deadline = time.monotonic() + wait
    with click.progressbar(length=int(wait), label="waiting for the trainer") as bar:
        while time.monotonic() < deadline:
            follower.catch_up(idle_s=1.0)
            found = follower.registry.answered(trigger["idempotency_key"])
            if found is not None and found["stage"] != "candidate":
                break
            time.sleep(0.5)
            bar.update(int(wait - (deadline - time.monotonic())) - bar.pos)
    if found is None or found["stage"] == "candidate":
        raise click.ClickException(f"no answer within {wait:.0f} s; see the alerts topic")
    click.echo(f"{found['model']} {found['version']}: {found['stage']}")
    click.echo(f"  gate: {found['gate']['summary'] if found.get('gate') else '-'}")
    click.echo(f"  answered {_since(settings, trigger['created_at_ms'])} the trigger")


def _since(settings: Settings, created_ms: int) -> str:
    """``12.3 s and 12,300 events after``: a wait in seconds and in the stream's events."""
    from driftline.core.errors import KafkaError
    from driftline.kafka.helpers import events_since

    try:
        events = f"{events_since(settings, created_ms):,}"
    except KafkaError:
        events = "?"
    return f"{(_now_ms() - created_ms) / 1000:.1f} s and {events} events (features) after"


@click.group("models")
def models_group() -> None:
    """Model versions on the registry topic (list, show, promote, approve, roll back,
    retire, unretire, bootstrap, register) and the models file (check)."""


def _registry(settings: Settings) -> Registry:
    from driftline.kafka.registry_follower import read_registry

    return read_registry(settings)


def _publish(settings: Settings, records: list[dict[str, Any]]) -> None:
    from driftline.kafka.helpers import Publisher

    pub = Publisher(settings, "cli")
    pub.send_versions(records)
    pub.close()
    for r in records:
        click.echo(f"{r['model']} {r['version']} -> {r['stage']} ({r['stage_reason']})")


@models_group.command("list")
@click.argument("model", required=False)
@click.option("--all", "show_all", is_flag=True, help="Also the retired models.")
@click.pass_obj
def models_list(settings: Settings, model: str | None, show_all: bool) -> None:
    """List versions (of MODEL, or of every model but the retired ones) with their stage."""
    reg = _registry(settings)
    names = [model] if model else reg.models(retired=show_all)
    for line in version_table(r for m in names for r in reg.versions(m)):
        click.echo(line)


@models_group.command("show")
@click.argument("model")
@click.argument("version", required=False)
@click.pass_obj
def models_show(settings: Settings, model: str, version: str | None) -> None:
    """Show VERSION of MODEL (default: the champion), lineage down to Kafka offsets."""
    from driftline.core.model.estimators import verify

    reg = _registry(settings)
    rec = reg.get(model, version) if version else reg.champion(model)
    if rec is None:
        raise click.ClickException(
            f"no {'version ' + version if version else 'champion'} of {model}"
        )
    art = rec["artifact"]
    ok = verify(art["sha256"], art["signature"], settings.signing_key.get_secret_value().encode())
    for line in version_report(rec, reg.changes, ok):
        click.echo(line)


def _stage_command(name: str, help_text: str) -> Callable[[Callable[..., None]], click.Command]:
    """A ``models`` command that changes a stage: it takes --by and a required --reason."""

    def decorate(fn: Callable[..., None]) -> click.Command:
        return models_group.command(name, help=help_text)(
            reason_option(by_option(click.pass_obj(fn)))
        )

    return decorate


def _change(settings: Settings, change: Callable[[Registry], list[dict[str, Any]]]) -> None:
    """Apply one stage change to the registry as it stands and publish its records; a
    change the rules refuse (StageError) is the command's error."""
    reg = _registry(settings)
    try:
        out = change(reg)
    except StageError as exc:
        raise click.ClickException(str(exc)) from exc
    _publish(settings, out)


@_stage_command("promote", "Make VERSION of MODEL the champion (or --to challenger).")
@click.argument("model")
@click.argument("version")
@click.option("--to", "stage", type=click.Choice(["champion", "challenger"]), default="champion")
@click.option("--force", is_flag=True, help="Also from a stage the rules refuse (rejected).")
def models_promote(
    settings: Settings, model: str, version: str, stage: str, force: bool, by: str, reason: str
) -> None:
    _change(settings, lambda reg: transition(
        reg, model, version, stage, by=by, reason=reason, now_ms=_now_ms(), force=force,
        max_challengers=settings.max_challengers,
    ))  # fmt: skip


@_stage_command("approve", "Approve VERSION (passed its gate, waiting) as champion.")
@click.argument("model")
@click.argument("version")
def models_approve(settings: Settings, model: str, version: str, by: str, reason: str) -> None:
    _change(
        settings, lambda reg: approve(reg, model, version, by=by, reason=reason, now_ms=_now_ms())
    )


@_stage_command("rollback", "Republish an earlier version (default: the previous champion).")
@click.argument("model")
@click.option("--to", "version", default=None, help="The version to roll back to.")
def models_rollback(
    settings: Settings, model: str, version: str | None, by: str, reason: str
) -> None:
    _change(
        settings, lambda reg: rollback(reg, model, version, by=by, reason=reason, now_ms=_now_ms())
    )


@_stage_command(
    "retire",
    "Retire MODEL: no worker serves it (its events are dead-lettered as model_retired), "
    "listings leave it out (models list --all shows it), its versions stay on the registry.",
)
@click.argument("model")
def models_retire(settings: Settings, model: str, by: str, reason: str) -> None:
    _change(settings, lambda reg: retire(reg, model, by=by, reason=reason, now_ms=_now_ms()))


@_stage_command("unretire", "Serve a retired MODEL again: its versions return to their stages.")
@click.argument("model")
def models_unretire(settings: Settings, model: str, by: str, reason: str) -> None:
    _change(settings, lambda reg: unretire(
        reg, model, by=by, reason=reason, now_ms=_now_ms(),
        max_challengers=settings.max_challengers,
    ))  # fmt: skip


def _rows(
    path: Path,
    label: str | None,
    segments: tuple[str, ...],
    id_column: str = "event_id",
    drop: tuple[str, ...] = (),
    time_column: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Outcome-like dicts from JSON lines, or from a CSV or Parquet file by the rules of
    ``driftline produce`` (:func:`driftline.replay.plan`): the label, id and time
    columns are no features, ``drop`` columns are ignored, a segment column is a feature
    and a segment attribute."""
    from driftline.replay import feature_events, plan, read_frame

    if path.suffix.lower() not in (".csv", ".parquet"):
        with path.open() as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)
        return
    if label is None:
        raise ConfigError(f"a {path.suffix.lower()} file needs --label COLUMN")
    frame = read_frame(path)
    cols = plan(
        list(frame.columns), "features", label=label, segments=segments, with_labels=True,
        id_column=id_column, drop=drop, time_column=time_column,
    )  # fmt: skip
    for event in feature_events(frame, cols):
        row = {k: event[k] for k in ("features", "label", "segment")}
        for key in ("event_id", "event_time_ms"):
            if event[key] is not None:
                row[key] = event[key]
        yield row


F = TypeVar("F", bound=Callable[..., Any])


def _file_columns(command: F) -> F:
    """The options that say how a CSV/Parquet file's columns are read (one rule for
    ``models bootstrap`` and ``models register``)."""
    for option in reversed((
        click.option("--label", default=None, help="CSV/Parquet: the label column."),
        click.option("--segment", multiple=True,
                     help="CSV/Parquet: a feature that is also a segment (repeat)."),
        click.option("--id-column", default="event_id", show_default=True,
                     help="CSV/Parquet: the event id column, never a feature."),
        click.option("--drop", multiple=True, help="CSV/Parquet: a column to ignore (repeat)."),
        click.option("--time-column", default=None,
                     help="CSV/Parquet: the event time column (epoch ms)."),
    )):  # fmt: skip
        command = option(command)
    return command


@models_group.command("bootstrap")
@click.argument("model")
@click.argument("rows", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_file_columns
@click.option(
    "--task",
    type=click.Choice(["classification", "regression"]),
    default=None,
    help="Default: the models file's, else read from the labels (docs/configuration.md).",
)
@click.option("--factory", default=None, help="Factory name or pkg.module:function.")
@click.option(
    "--write-config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the model's configuration as a models file to review ('-': print it).",
)
@click.option("--config-only", is_flag=True, help="Infer and write the config; train nothing.")
@click.option("--force", is_flag=True, help="Even if MODEL already has a champion.")
@by_option
@click.option("--reason", default="first version", show_default=True)
@click.pass_obj
def models_bootstrap(
    settings: Settings,
    model: str,
    rows: Path,
    label: str | None,
    segment: tuple[str, ...],
    id_column: str,
    drop: tuple[str, ...],
    time_column: str | None,
    task: str | None,
    factory: str | None,
    write_config: Path | None,
    config_only: bool,
    force: bool,
    by: str,
    reason: str,
) -> None:
    """Train MODEL's first champion from ROWS (JSON lines of features/label, or a CSV).

    Without a models file entry for MODEL it reads the task from the labels (refusing an
    ambiguous one: pass --task), infers every feature's type, bounds and categories, and
    flags columns that drift by construction; --write-config writes all of it as a
    models file to review."""
    from driftline.core.lifecycle.training import bootstrap
    from driftline.core.model.config_problems import ModelsFileError
    from driftline.core.model.from_rows import plan
    from driftline.core.watch.models_file import models_toml

    models = checked_models(settings, "models bootstrap")
    if write_config is not None and str(write_config) != "-" and write_config.exists():
        raise click.UsageError(f"{write_config} exists; choose another path or remove it")
    try:
        data = list(_rows(rows, label, segment, id_column, drop, time_column))
        found = plan(model, data, models.get(model), task=task, factory=factory,
                     label_column=label or "label")  # fmt: skip
    except ModelsFileError as exc:
        click.echo(f"driftline models bootstrap: {exc}", err=True)
        raise click.exceptions.Exit(CONFIG_EXIT) from None
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    for line in found.lines(len(data), label or "label"):
        click.echo(line)
    if write_config is not None:
        header = [
            f"Written by `driftline models bootstrap {model} {rows.name}` from {len(data)} rows.",
            "Review it, then set DRIFTLINE_MODELS_FILE to it; `driftline models check` checks",
            "it. Every key: docs/configuration.md.",
        ]
        notes = {"task": found.task_why, "join_ttl_ms": "24 h: see docs/configuration.md"}
        notes.update({n: f"drifts by construction: {why}" for n, why in found.drifting.items()})
        if found.drifting:
            notes["drift.exclude"] = "flagged by bootstrap: remove a name to test it"
        text = models_toml(found.file_config(), header=header, notes=notes)
        if str(write_config) == "-":
            click.echo(text, nl=False)
        else:
            write_config.write_text(text)
            click.echo(f"wrote {write_config}")
    if config_only:
        return
    cfg = found.config
    reg = _registry(settings)
    if reg.champion(model) is not None and not force:
        raise click.ClickException(f"{model} has a champion already (use --force)")
    current = [r for r in (reg.champion(model), *reg.challengers(model)) if r is not None]
    with click.progressbar(length=len(data), label=f"training {model}") as bar:

        def step(done: int, total: int) -> None:
            bar.length = total  # rows x the passes of params.epochs
            bar.update(done - bar.pos)

        run, records = bootstrap(
            data,
            cfg,
            key=settings.signing_key.get_secret_value().encode(),
            by=by,
            reason=f"{reason} ({rows.name})",
            now_ms=_now_ms(),
            current=current,
            existing_versions=[r["version"] for r in reg.versions(model)],
            progress=step,
        )
    click.echo(run.verdict["summary"])
    _publish(settings, records)


def _load_model_file(path: Path) -> Any:
    """The object pickled in ``path`` (``pickle.dump``, or ``joblib.dump`` for .joblib)."""
    import pickle

    if path.suffix.lower() == ".joblib":
        try:
            import joblib  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise click.UsageError(
                f"{path} is a joblib file: `pip install joblib` (or save it with pickle.dump)"
            ) from None
        return joblib.load(path)
    try:
        with path.open("rb") as fh:
            return pickle.load(fh)  # the user's own file, which they ask us to serve
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise click.UsageError(
            f"cannot unpickle {path}: {type(exc).__name__}: {exc} (the classes it holds must "
            "be importable here, and in every worker that serves it)"
        ) from None


@models_group.command("register")
@click.argument("model")
@click.argument("artifact", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--rows",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Labelled rows to check, profile and gate it on (CSV, Parquet or JSON lines).",
)
@_file_columns
@click.option(
    "--candidate",
    "as_candidate",
    is_flag=True,
    help="Publish it as a candidate only (promote it with `models promote`).",
)
@by_option
@click.option("--reason", default=None, help="Why (kept in the registry).")
@click.pass_obj
def models_register(
    settings: Settings,
    model: str,
    artifact: Path,
    rows: Path,
    label: str | None,
    segment: tuple[str, ...],
    id_column: str,
    drop: tuple[str, ...],
    time_column: str | None,
    as_candidate: bool,
    by: str,
    reason: str | None,
) -> None:
    """Register a model trained outside Driftline (ARTIFACT: a pickled river model, or a
    scikit-learn-like one with predict/predict_proba) as a version of MODEL.

    MODEL's task and features come from the models file. The model must score the
    labelled ROWS; they give its reference profile and held-out metrics, and it goes
    through the same gate as a trained candidate (against the champion, if any): it
    becomes champion, challenger or rejected as the gate and the model's promotion
    decide, or stays a candidate with --candidate. Retraining later builds models with
    the models file's factory. Exit 1 when the gate rejects it, 2 on a bad file."""
    from driftline.core.lifecycle.registered import register
    from driftline.core.model.estimators import write_artifact

    models = checked_models(settings, "models register")
    cfg = models.get(model)
    if cfg is None:
        raise click.UsageError(
            f"{model} is not in the models file ({settings.models_file or 'none set'}): its task "
            f"and features come from there; `driftline models bootstrap {model} "
            f"{rows.name} --label COLUMN --config-only --write-config models.toml` writes one"
        )
    estimator = _load_model_file(artifact)
    try:
        data = list(_rows(rows, label, segment, id_column, drop, time_column))
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    reg = _registry(settings)
    existing = [r["version"] for r in reg.versions(model)]
    try:
        run, records = register(
            estimator, data, cfg, key=settings.signing_key.get_secret_value().encode(),
            by=by, source=artifact.name, now_ms=_now_ms(), reason=reason,
            champion=reg.champion(model), current=reg.challengers(model),
            existing_versions=existing,
            stage="candidate" if as_candidate else None, max_challengers=settings.max_challengers,
            store=lambda m, v, b: write_artifact(settings.artifact_dir, m, v, b),
        )  # fmt: skip
    except ConfigError as exc:
        click.echo(f"driftline models register: {exc}", err=True)
        raise click.exceptions.Exit(CONFIG_EXIT) from None
    click.echo(f"checked on {len(data)} rows of {rows.name}; {run.verdict['summary']}")
    _publish(settings, records)
    if records[-1]["stage"] == "rejected":
        raise click.exceptions.Exit(1)


models_group.add_command(models_check)  # the models file check (driftline/cli/config.py)

COMMANDS: tuple[click.Command, ...] = (trainer_cmd, projector_cmd, retrain_cmd, models_group)
