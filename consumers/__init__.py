"""Plain confluent-kafka consumers: thin I/O around :mod:`driftline.core`.

- :mod:`~driftline.consumers.trainer`: answers retrain triggers with gated versions;
- :mod:`~driftline.consumers.projector` and :mod:`~driftline.consumers.sqlview`: the SQL
  view of the registry, training runs, alerts and triggers;
- :mod:`~driftline.consumers.kafka_io`, :mod:`~driftline.consumers.registry_io` and
  :mod:`~driftline.consumers.outcomes`: publishing, following the registry, reading
  outcome windows.
"""
