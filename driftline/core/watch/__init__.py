"""What is measured about a served model, and when it asks for a retrain.

``performance`` and ``window_stats``: rolling metrics per version and segment;
``concept_drift``: detectors on the error stream; ``feature_drift`` and ``profile``:
feature and prediction drift against a version's reference profile; ``alerts``: the
alert rules; ``retrain_policy``: when to retrain; ``monitor``: all of it for one model.

May import: ``join``, ``model``, ``wire``, ``driftline.core.errors``.
"""
