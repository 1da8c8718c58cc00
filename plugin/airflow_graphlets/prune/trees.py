"""A fitted gradient-boosted tree ensemble as plain NumPy arrays, evaluated without scikit-learn.

The gate decides inside a task in a fraction of a second; importing scikit-learn alone takes
about two seconds of CPU on a small machine. So the predictor is trained with scikit-learn's
``HistGradientBoostingClassifier`` and kept as arrays: every tree's nodes side by side, with
each tree's root at an offset. Plain arrays also make the saved file a data file (``.npz``, read
with ``allow_pickle=False``), not a pickle that could run code or break with the next
scikit-learn release.

The decision rule is scikit-learn's: a numeric split sends a row left when its value is ``<=``
the threshold, and a missing value (NaN) the way the split learned during training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_ROWS_PER_BLOCK = 8192  # rows x trees node indices per step stay a few MB


@dataclass(frozen=True)
class TreeEnsemble:
    """Binary-classification trees: P = sigmoid(baseline + sum of each tree's leaf value)."""

    baseline: float
    roots: np.ndarray  # int64, index of each tree's root node in the node arrays
    feature: np.ndarray  # int64, the feature each split node tests
    threshold: np.ndarray  # float64, go left when value <= threshold
    missing_left: np.ndarray  # bool, where NaN goes
    left: np.ndarray  # int64, global index of the left child
    right: np.ndarray  # int64, global index of the right child
    is_leaf: np.ndarray  # bool
    value: np.ndarray  # float64, a leaf's contribution to the raw score

    ARRAYS = ("roots", "feature", "threshold", "missing_left", "left", "right", "is_leaf", "value")

    @classmethod
    def from_sklearn(cls, model) -> TreeEnsemble:
        """Copy a fitted binary ``HistGradientBoostingClassifier`` into arrays.

        Raises:
          ValueError: a multi-class model or one with categorical splits (the gate uses neither).
        """
        baseline = np.asarray(model._baseline_prediction, dtype=np.float64).ravel()
        if baseline.size != 1:
            raise ValueError("only binary classifiers can be converted (one tree per iteration)")
        parts, roots, offset = [], [], 0
        for iteration in model._predictors:
            nodes = iteration[0].nodes
            if nodes["is_categorical"].any():
                raise ValueError("categorical splits are not supported")
            roots.append(offset)
            parts.append((nodes, offset))
            offset += len(nodes)
        nodes = np.concatenate([n for n, _ in parts]) if parts else np.zeros(0, dtype=[
            ("feature_idx", "i8"), ("num_threshold", "f8"), ("missing_go_to_left", "u1"), ("left", "u4"),
            ("right", "u4"), ("is_leaf", "u1"), ("value", "f8")])
        shift = np.concatenate([np.full(len(n), o, dtype=np.int64) for n, o in parts]) if parts else np.zeros(0, np.int64)
        is_leaf = nodes["is_leaf"].astype(bool)
        # Leaves keep child index 0 in scikit-learn; point them at themselves so a walk can idle there.
        own = np.arange(len(nodes), dtype=np.int64)
        left = np.where(is_leaf, own, nodes["left"].astype(np.int64) + shift)
        right = np.where(is_leaf, own, nodes["right"].astype(np.int64) + shift)
        return cls(float(baseline[0]), np.asarray(roots, dtype=np.int64), nodes["feature_idx"].astype(np.int64),
                   nodes["num_threshold"].astype(np.float64), nodes["missing_go_to_left"].astype(bool), left, right,
                   is_leaf, nodes["value"].astype(np.float64))

    def raw_score(self, rows: np.ndarray) -> np.ndarray:
        """The log-odds of each row of ``rows`` (2-D, features in training order)."""
        rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
        out = np.empty(len(rows), dtype=np.float64)
        for start in range(0, len(rows), _ROWS_PER_BLOCK):
            block = rows[start:start + _ROWS_PER_BLOCK]
            out[start:start + len(block)] = self.baseline + self._leaf_values(block).sum(axis=1)
        return out

    def probability(self, rows: np.ndarray) -> np.ndarray:
        """P(positive) of each row."""
        return 1.0 / (1.0 + np.exp(-self.raw_score(rows)))

    def _leaf_values(self, block: np.ndarray) -> np.ndarray:
        # Walk every (row, tree) pair down one level per step; pairs that reach a leaf drop out,
        # so each step touches only the walks still going.
        at = np.broadcast_to(self.roots, (len(block), len(self.roots))).ravel().copy()
        rows = np.repeat(np.arange(len(block)), len(self.roots))
        going = np.flatnonzero(~self.is_leaf[at])
        while going.size:
            node = at[going]
            x = block[rows[going], self.feature[node]]
            go_left = np.where(np.isnan(x), self.missing_left[node], x <= self.threshold[node])
            node = np.where(go_left, self.left[node], self.right[node])
            at[going] = node
            going = going[~self.is_leaf[node]]
        return self.value[at].reshape(len(block), len(self.roots))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The ensemble as named arrays (for ``numpy.savez``)."""
        arrays = {name: getattr(self, name) for name in self.ARRAYS}
        arrays["baseline"] = np.asarray([self.baseline])
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> TreeEnsemble:
        """Rebuild from :meth:`to_arrays`'s output (or an opened ``.npz``); checks the shapes agree.

        Raises:
          ValueError: arrays missing, of other lengths, or child indices out of range.
        """
        missing = [name for name in (*cls.ARRAYS, "baseline") if name not in arrays]
        if missing:
            raise ValueError(f"tree arrays missing: {', '.join(missing)}")
        nodes = len(arrays["value"])
        per_node = ("feature", "threshold", "missing_left", "left", "right", "is_leaf")
        if any(len(arrays[name]) != nodes for name in per_node):
            raise ValueError("tree arrays have different lengths")
        ensemble = cls(float(np.asarray(arrays["baseline"]).ravel()[0]), np.asarray(arrays["roots"], np.int64),
                       np.asarray(arrays["feature"], np.int64), np.asarray(arrays["threshold"], np.float64),
                       np.asarray(arrays["missing_left"], bool), np.asarray(arrays["left"], np.int64),
                       np.asarray(arrays["right"], np.int64), np.asarray(arrays["is_leaf"], bool),
                       np.asarray(arrays["value"], np.float64))
        for name in ("roots", "left", "right"):
            index = getattr(ensemble, name)
            if len(index) and (index.min() < 0 or index.max() >= nodes):
                raise ValueError(f"tree arrays: {name} points outside the nodes")
        return ensemble
