"""Driftline: keep machine-learning models healthy in production on Apache Kafka."""

__version__ = "0.1.0"
