"""Closed-loop quality benchmark: Driftline's retrain loop against baselines, in process.

Run ``python -m bench.loop`` (``--quick`` for CI). See :mod:`bench.loop.cli`.
"""
