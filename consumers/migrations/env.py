"""Alembic's environment for the SQL view: runs on the connection that
:func:`driftline.consumers.sqlview.upgrade` hands over (``config.attributes["connection"]``),
in its transaction. For a new revision, from the repository's root::

    alembic -c consumers/migrations/alembic.ini revision --autogenerate -m "what changes"

with ``sqlalchemy.url`` pointing at a database at the head revision.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from driftline.consumers.sqlview import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # the alembic command line: a URL from alembic.ini or -x url=...
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    with create_engine(url or "sqlite://").begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
