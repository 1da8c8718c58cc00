"""The learned push predictor: gradient-boosted trees over the run features, trained across
pipelines on the past and used on the future.

It answers one question, before a run trains: the probability that its model will be pushed.
A policy (:mod:`airflow_graphlets.prune.policy`) turns that into run or skip.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass

import numpy as np

from airflow_graphlets.errors import GraphletsError
from airflow_graphlets.prune.features import NAMES

FORMAT = "airflow-graphlets/push-predictor/1"


@dataclass
class PushPredictor:
    """A fitted model with the feature names it was trained on."""

    model: object
    feature_names: tuple[str, ...]
    trained_rows: int
    push_rate: float  # in the training rows

    @classmethod
    def fit(cls, features: np.ndarray, pushed: np.ndarray, seed: int = 0) -> PushPredictor:
        """Fit on rows of :data:`~airflow_graphlets.prune.features.NAMES` features and push labels.

        Raises:
          GraphletsError: too few rows, or only one outcome, to learn from.
        """
        from sklearn.ensemble import HistGradientBoostingClassifier

        if len(pushed) < 20 or pushed.all() or not pushed.any():
            raise GraphletsError(
                f"Cannot train the push predictor on {len(pushed)} runs with {int(pushed.sum())} pushes: it needs "
                "at least 20 finished runs with both outcomes. Record more history first."
            )
        model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.08, max_leaf_nodes=31,
                                               l2_regularization=1.0, random_state=seed)
        model.fit(features, pushed.astype(np.int8))
        return cls(model, NAMES, len(pushed), float(pushed.mean()))

    def push_probability(self, features: np.ndarray) -> np.ndarray:
        """P(pushed) of each row (a 2-D array, or one row)."""
        rows = np.atleast_2d(np.asarray(features, dtype=np.float64))
        return self.model.predict_proba(rows)[:, 1]

    def save(self, path: str) -> None:
        with open(path, "wb") as handle:
            pickle.dump({"format": FORMAT, "predictor": self}, handle)

    @classmethod
    def load(cls, path: str) -> PushPredictor:
        """Raises GraphletsError: not a predictor file, or one made for other features."""
        with open(path, "rb") as handle:
            payload = pickle.load(handle)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise GraphletsError(f"{path} is not an airflow-graphlets push predictor ({FORMAT}).")
        predictor = payload["predictor"]
        if tuple(predictor.feature_names) != NAMES:
            raise GraphletsError(f"{path} was trained on other features; train it again with this version.")
        return predictor
