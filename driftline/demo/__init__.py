"""``driftline demo``: the closed loop on a drifting stream, end to end through Kafka."""
