"""Driftline's pure logic: no Kafka, Faust, SQL or Prometheus imports live here.

Agents (``driftline.streams``) and consumers (``driftline.consumers``) are thin I/O
around these modules.
"""
