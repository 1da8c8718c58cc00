"""The prior: the cross-pipeline predictor a gate decides with until its own store has the
history to train one.

A new deployment has no history, and a short one cannot show out of sample that a threshold
keeps the pushes (``graphlets train-predictor`` refuses it then). The prior is a predictor
trained on a real-outcome benchmark's development seed (``benchmarks/prune_real_outcomes.py
--train-prior``: 48 pipelines whose pushes come from really training and evaluating models),
measured there on pipelines it never saw. Each gate corrects it by how it fares on its own
pipeline (:mod:`.calibration`), and the guardrails still run every training until a pipeline
has ``min_history`` graphlets. It compares the bare probability with its threshold: how much
compute a run costs is not comparable between deployments.
"""

from __future__ import annotations

import os

from airflow_graphlets.prune.predictor import PushPredictor

PRIOR_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prior", "push-predictor.npz")
PRIOR_LABEL = "prior"


def load_prior() -> PushPredictor:
    """The prior shipped with the package.

    Raises:
      GraphletsError: the package's file is missing or damaged (reinstall the package).
    """
    return PushPredictor.load(PRIOR_PATH)
