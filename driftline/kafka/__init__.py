"""Every Kafka client Driftline makes, in one place.

- :mod:`~driftline.kafka.clients`: the configuration of every client (confluent-kafka
  and Faust) from the settings;
- :mod:`~driftline.kafka.admin` and :mod:`~driftline.kafka.acls`: topics and ACLs as code;
- :mod:`~driftline.kafka.helpers`: publish with delivery confirmed, partitions and
  offsets, read assigned partitions to an end;
- :mod:`~driftline.kafka.registry_follower`: the registry topic folded into a
  :class:`~driftline.core.lifecycle.registry.Registry` (trainer, CLI, status);
- :mod:`~driftline.kafka.status`: what ``driftline status`` reads.

It imports only the core and ``driftline.settings``: streams/, consumers/, the client
and the CLI import it, never the other way (tests/unit/test_layout.py).
"""
