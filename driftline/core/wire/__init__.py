"""Bytes on topics: the Avro single-object codec and its schemas, record envelopes and
size limits, Kafka headers, dead-letter records, the pass-through copy of a feature
map's bytes, and the topic declarations.

May import: ``driftline.core.errors``. Imported by every other room.
"""
