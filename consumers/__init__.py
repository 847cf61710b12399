"""Plain confluent-kafka consumers: thin I/O around :mod:`driftline.core`.

- :mod:`~driftline.consumers.trainer`: answers retrain triggers with gated versions;
- :mod:`~driftline.consumers.projector` and :mod:`~driftline.consumers.sqlview`: the SQL
  view of the registry, training runs, alerts and triggers;
- :mod:`~driftline.consumers.outcomes`: reading outcome windows.

Publishing and following the registry are Kafka client code, in :mod:`driftline.kafka`
(``helpers``, ``registry_follower``). This layer imports the core, ``driftline.kafka``,
``driftline.settings`` and ``driftline.reload``, never ``streams`` or the CLI
(tests/unit/test_layout.py).
"""
