"""``python -m driftline`` is the ``driftline`` command."""

from driftline.cli import main

main()
