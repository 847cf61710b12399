"""What a retrain trigger becomes: the training set (``trainset``), a trained and
profiled version (``training``), the validation gate (``gate``), the registry's stage
rules (``registry``) and the trainer's answers (``answers``).

May import: ``watch``, ``join``, ``model``, ``wire``, ``driftline.core.errors``.
"""
