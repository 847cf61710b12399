"""One model version: the models file (``config``), the feature spec and its validation,
estimator factories and the served model (``estimators``), signed artifacts, and the
scorer's pure step (``scoring``: decode, validate, predict, encode).

May import: ``wire``, ``driftline.core.errors``.
"""
