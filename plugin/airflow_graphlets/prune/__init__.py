"""Prune: predict, before a training run starts, whether its model will be pushed, and skip the
runs that will not, with guardrails and a reviewable log (docs/prune.md).

``features/`` computes what is known before training from a pipeline's graphlet history;
nothing here imports Airflow.
"""
