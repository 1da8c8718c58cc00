"""The learned push predictor: gradient-boosted trees over the run features, trained across
pipelines on the past and used on the future.

It answers one question, before a run trains: the probability that its model will be pushed.
A policy (:mod:`airflow_graphlets.prune.policy`) turns that into run or skip. Training needs
scikit-learn; using a trained predictor needs only NumPy (:mod:`airflow_graphlets.prune.trees`),
so a gate decides without paying scikit-learn's import.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

import numpy as np

from airflow_graphlets.errors import GraphletsError, NotEnoughHistoryError
from airflow_graphlets.prune.features import NAMES
from airflow_graphlets.prune.policy import Scoring
from airflow_graphlets.prune.trees import TreeEnsemble

FORMAT = "airflow-graphlets/push-predictor/3"
# Features the trees do not learn from. Both are levels that tell one pipeline from another
# rather than what makes any pipeline push: with the deployed model's raw score the trees learned
# each training pipeline's accuracy level, and on pipelines they had never seen ranked runs no
# better than chance (AUC 0.50, against 0.78 without it, on the real-outcome benchmark). Its
# changes (drop since the push, gap to the latest model, distance to the evaluator's bar) carry
# the signal; the expected cost weighs a skip in the policy's score instead.
IGNORED = ("deployed_score", "expected_cost")


@dataclass(frozen=True)
class PushPredictor:
    """A fitted tree ensemble with the feature names it was trained on."""

    trees: TreeEnsemble
    feature_names: tuple[str, ...]
    trained_rows: int
    push_rate: float  # in the training rows
    threshold: float = 0.35  # the operating point it was trained for: skip below this score
    scoring: Scoring = field(default_factory=Scoring)  # how its probability becomes that score (policy.Scoring)
    trained_until: float | None = None  # the newest run it learned from (epoch seconds, logical clock)
    target_pushes_kept: float | None = None  # what its threshold was chosen to keep

    @property
    def version(self) -> str:
        """A name for this exact predictor (its trees, threshold and weighting), logged with
        every decision it makes: ``push-predictor-<12 hex digits>``."""
        digest = hashlib.sha1(json.dumps([self.threshold, self.scoring.staleness_hours, self.scoring.cost_reference,
                                          self.trained_rows]).encode())
        for name, array in sorted(self.trees.to_arrays().items()):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return f"push-predictor-{digest.hexdigest()[:12]}"

    @classmethod
    def fit(cls, features: np.ndarray, pushed: np.ndarray, seed: int = 0) -> PushPredictor:
        """Fit on rows of :data:`~airflow_graphlets.prune.features.NAMES` features and push labels.

        Raises:
          NotEnoughHistoryError: too few rows, or only one outcome, to learn from.
        """
        from sklearn.ensemble import HistGradientBoostingClassifier

        if len(pushed) < 20 or pushed.all() or not pushed.any():
            raise NotEnoughHistoryError(
                f"Cannot train the push predictor on {len(pushed)} runs with {int(pushed.sum())} pushes: it needs "
                "at least 20 finished runs with both outcomes. Record more history first."
            )
        # Small trees, many rows per leaf and strong shrinkage: what generalises across pipelines
        # (on the real-outcome benchmark, AUC on pipelines never seen 0.68 -> 0.77 against
        # 31-leaf trees, and on the future of the pipelines seen 0.76 -> 0.82).
        model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, max_leaf_nodes=8,
                                               min_samples_leaf=int(np.clip(len(pushed) // 50, 5, 50)),
                                               l2_regularization=5.0, random_state=seed)
        features = np.array(features, dtype=np.float64)
        features[:, [NAMES.index(name) for name in IGNORED]] = 0.0
        # A feature the store never holds (no signals, no readable statistics) is all NaN, which
        # the trees cannot bin: as a constant column it is never split on, and NaN at decision
        # time then goes nowhere special.
        features[:, ~np.isfinite(features).any(axis=0)] = 0.0
        model.fit(features, pushed.astype(np.int8))
        return cls(TreeEnsemble.from_sklearn(model), NAMES, len(pushed), float(pushed.mean()))

    def push_probability(self, features: np.ndarray) -> np.ndarray:
        """P(pushed) of each row (a 2-D array, or one row)."""
        return self.trees.probability(np.atleast_2d(np.asarray(features, dtype=np.float64)))

    def save(self, path: str) -> None:
        """Write the predictor to ``path`` as NumPy arrays (``.npz`` data, no pickled code)."""
        meta = {"format": FORMAT, "feature_names": list(self.feature_names), "trained_rows": self.trained_rows,
                "push_rate": self.push_rate, "threshold": self.threshold,
                "staleness_hours": self.scoring.staleness_hours, "cost_reference": self.scoring.cost_reference,
                "trained_until": self.trained_until, "target_pushes_kept": self.target_pushes_kept}
        with open(path, "wb") as handle:  # a handle, so NumPy does not append ".npz" to the name
            np.savez(handle, meta=np.asarray(json.dumps(meta)), **self.trees.to_arrays())

    @classmethod
    def load(cls, path: str) -> PushPredictor:
        """Read a predictor written by :meth:`save`.

        Raises:
          GraphletsError: no such file, not a predictor file, or one trained on other features.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {name: data[name] for name in data.files if name != "meta"}
        except FileNotFoundError as err:
            raise GraphletsError(f"No push predictor at {path}: train one with `graphlets train-predictor`.") from err
        except (OSError, ValueError, KeyError) as err:
            raise GraphletsError(f"{path} is not an airflow-graphlets push predictor ({FORMAT}): {err}") from err
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise GraphletsError(f"{path} is not an airflow-graphlets push predictor ({FORMAT}); train it again "
                                 "with `graphlets train-predictor`.")
        if tuple(meta.get("feature_names", ())) != NAMES:
            raise GraphletsError(f"{path} was trained on other features; train it again with this version.")
        try:
            trees = TreeEnsemble.from_arrays(arrays)
        except ValueError as err:
            raise GraphletsError(f"{path} is damaged: {err}. Train the predictor again.") from err
        hours, reference = meta.get("staleness_hours"), meta.get("cost_reference")
        until, target = meta.get("trained_until"), meta.get("target_pushes_kept")
        return cls(trees, NAMES, int(meta.get("trained_rows", 0)), float(meta.get("push_rate", 0.0)),
                   float(meta.get("threshold", 0.35)),
                   Scoring(float(hours) if hours else None, float(reference) if reference else None),
                   float(until) if until is not None else None, float(target) if target is not None else None)

    def with_operating_point(self, threshold: float, scoring: Scoring, trained_until: float | None,
                             target_pushes_kept: float | None) -> PushPredictor:
        """The same trees, operating at ``threshold`` on the score ``scoring`` makes."""
        return replace(self, threshold=threshold, scoring=scoring, trained_until=trained_until,
                       target_pushes_kept=target_pushes_kept)
