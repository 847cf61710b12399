"""The models file at the command line: ``driftline models check``, and the check every
command that reads the file runs first (:func:`checked_models`).

A broken file stops a command before it does anything: one line naming every error and
exit code 2 (:data:`CONFIG_EXIT`), never a traceback. ``models check`` prints each error
on its own line as ``FILE:LINE: KEY: REASON`` (``-`` when the line is unknown).
"""

from __future__ import annotations

from pathlib import Path

import click

from driftline.core.errors import ConfigError
from driftline.core.model.config import ModelsConfig
from driftline.settings import Settings

CONFIG_EXIT = 2
"""Exit code of a command refused because of its models file (a usage error)."""


def checked_models(settings: Settings, command: str) -> ModelsConfig:
    """The models file of ``settings``, checked whole; a broken or unreadable one prints
    one line naming every error and exits with :data:`CONFIG_EXIT`."""
    from driftline.core.watch import models_file  # imports river: only when needed

    try:
        return models_file.load(settings.models_file)
    except ConfigError as exc:
        click.echo(f"driftline {command}: {exc}", err=True)
        raise click.exceptions.Exit(CONFIG_EXIT) from None


@click.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def models_check(settings: Settings, file: Path | None) -> None:
    """Check a models file (default: DRIFTLINE_MODELS_FILE) and print every error with
    its line and key; exit 2 when it has any."""
    from driftline.core.watch import models_file

    path = file or settings.models_file
    if path is None:
        raise click.UsageError("give a FILE or set DRIFTLINE_MODELS_FILE")
    try:
        text = path.read_text()
    except OSError as exc:
        click.echo(f"{path}: cannot read: {exc}", err=True)
        raise click.exceptions.Exit(CONFIG_EXIT) from None
    config, problems = models_file.check(text, str(path))
    for p in problems:
        click.echo(f"{path}:{p.line or '-'}: {p.key}: {p.reason}")
    if problems:
        click.echo(f"{path}: {len(problems)} error(s)", err=True)
        raise click.exceptions.Exit(CONFIG_EXIT)
    names = ", ".join(config.models) or "none"
    click.echo(f"{path}: OK ({len(config.models)} model(s): {names})")
