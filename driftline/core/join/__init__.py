"""The join rule: each prediction meets its delayed label.

``rules`` is the pure state machine per key (held prediction or label, joined,
expired, orphaned, duplicates and late arrivals); ``joiner`` is one step of the join
loop (decode, check, apply the rules, say what to publish and store); ``leanentry`` is
the compact form of a held prediction; ``expiry`` finds the entries whose TTL passed.

May import: ``model``, ``wire``, ``driftline.core.errors``.
"""
