"""The ``driftline`` command: one click group, one module per command group.

:mod:`~driftline.cli.app` holds the root group, its own commands (settings, kafka,
worker, demo) and the one place every other module's commands are registered (each
module lists them in ``COMMANDS``). Modules: ``broker`` (the local broker), ``topics``,
``models`` (trainer, projector, retrain, models ...), ``config`` (the models file check),
``ops`` (tail, produce, status), ``deadletters``, ``schemas``, ``acls``. Text comes from
pure modules: :mod:`~driftline.cli.text` (the one table and time formatter),
``models_format`` and ``ops_format``.

The CLI is the top layer: it may import everything below it (core, kafka, client,
streams, consumers); nothing imports it but ``driftline.__main__``. Kafka clients are
imported inside the commands so ``driftline --help`` stays fast.
"""

from driftline.cli.app import cli, main

__all__ = ["cli", "main"]
