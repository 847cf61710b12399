"""What a retrain trigger becomes: the training set (``trainset``), a trained and
profiled version (``training``), the validation gate (``gate``), the registry's stage
rules (``registry``) and how a trigger is answered (``answer``).

May import: ``watch``, ``join``, ``model``, ``wire``, ``driftline.core.errors``.
"""
