"""Every Kafka client Driftline makes, in one place.

- :mod:`~driftline.kafka.clients`: the configuration of every client (confluent-kafka
  and Faust) from the settings;
- :mod:`~driftline.kafka.admin` and :mod:`~driftline.kafka.acls`: topics and ACLs as code;
- :mod:`~driftline.kafka.helpers`: publish with delivery confirmed, partitions and
  offsets, read assigned partitions to an end;
- :mod:`~driftline.kafka.txn`: the worker loops' exactly-once transactions (their
  metrics reach Prometheus through an observer: this package imports none);
- :mod:`~driftline.kafka.registry_follower`: the registry topic folded into a
  :class:`~driftline.core.lifecycle.registry.Registry`, the one follower of the worker,
  the trainer, the CLI and status;
- :mod:`~driftline.kafka.status`: what ``driftline status`` reads.

It imports only the core and ``driftline.settings`` (no Prometheus):
streams/, consumers/, the client and the CLI import it, never the other way
(tests/unit/test_layout.py).
"""
