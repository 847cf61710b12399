"""Every Kafka client Driftline makes is configured here (confluent-kafka and Faust)."""
