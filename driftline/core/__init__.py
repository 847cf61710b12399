"""Driftline's pure logic: no Kafka, Faust, SQL or Prometheus imports live here.

The core is five rooms. Each may import the rooms below it and ``errors``, never one
above (``tests/unit/test_layout.py`` checks it)::

    lifecycle   what a retrain trigger becomes: training sets, training, the gate,
       │        registry rules, the trainer's answers
    watch       what is measured about a served model and when it asks for a retrain:
       │        rolling performance, concept and feature drift, alerts, retrain policy,
       │        the per-model monitor
    join        the join rule: a prediction meets its delayed label (rules, the join
       │        step, the lean held entry, expiry)
    model       one model version: its configuration, feature spec and validation,
       │        estimator factories, signed artifacts, the scoring step
    wire        bytes on topics: Avro codec and schemas, envelopes, headers, dead
                letters, pass-through copies, topic declarations

``errors`` (the exception tree) is shared by all of them. Agents (``driftline.streams``)
and consumers (``driftline.consumers``) are thin I/O around these modules.
"""
