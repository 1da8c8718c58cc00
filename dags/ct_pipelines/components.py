"""What each component of a continuous-training pipeline computes, as plain functions over files.

The shapes follow TFX: ExampleGen writes a span, StatisticsGen summarises it, SchemaGen infers a
schema, ExampleValidator compares statistics with the schema and the previous span, Transform
fits the preprocessing on the training window, Trainer fits the model on the window, Evaluator
compares the candidate with the deployed model on the newest span's eval split and blesses it or
not, Pusher copies a blessed model to the serving directory. Nothing here imports Airflow; the
DAG file (``dags/continuous_training.py``) runs these functions as tasks and declares their
artifacts.

Files of one pipeline, under its data directory::

    examples/span-<k>.npz        features, labels, feature names, eval-split mask
    statistics/span-<k>.json     per-feature count, mean, std, min, max; label shares
    statistics/span-<k>/Split-<split>/FeatureStats.pb   the same span in TFDV's format (the gate's drift)
    schema/<run>.json            feature names and value ranges
    anomalies/<run>.json         out-of-range features, drift against the previous span
    transform/<run>.pkl          the fitted preprocessing
    models/<run>.pkl             candidate models
    evaluations/<run>.json       candidate and baseline accuracy, the blessing decision
    serving/<run>/model.pkl      pushed models; serving/current.json names the deployed one
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from dataclasses import asdict, dataclass

import numpy as np

EVAL_EVERY = 3  # every third row of a span is held out for evaluation


# -- ExampleGen ------------------------------------------------------------------------------

def write_span(path: str, features: np.ndarray, labels: np.ndarray, feature_names: tuple[str, ...]) -> int:
    """Store one span with its eval-split mask; returns the number of rows."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    is_eval = (np.arange(len(labels)) % EVAL_EVERY) == EVAL_EVERY - 1
    tmp = path + ".tmp.npz"
    np.savez(tmp, features=features, labels=labels, names=np.array(feature_names), is_eval=is_eval)
    os.replace(tmp, path)  # a re-run of the task never leaves a half-written span behind
    return len(labels)


def read_span(path: str, split: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of a stored span: all rows, or only its ``"train"`` or ``"eval"`` split."""
    with np.load(path) as data:
        features, labels, is_eval = data["features"], data["labels"], data["is_eval"]
    if split == "train":
        return features[~is_eval], labels[~is_eval]
    if split == "eval":
        return features[is_eval], labels[is_eval]
    return features, labels


def window(examples_dir: str, span: int, size: int) -> tuple[int, list[str]]:
    """The rolling window ending at ``span``: its first span and the files of the spans of
    ``span-size+1 .. span`` that were ingested (a backfill that starts mid-history has fewer)."""
    spans = [k for k in range(max(0, span - size + 1), span + 1)
             if os.path.exists(os.path.join(examples_dir, f"span-{k}.npz"))]
    if not spans or spans[-1] != span:
        raise FileNotFoundError(f"Span {span} was not ingested into {examples_dir}; run ExampleGen for it first.")
    return spans[0], [os.path.join(examples_dir, f"span-{k}.npz") for k in spans]


def read_window(paths: list[str], split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The rows of several spans, stacked: the trainer's rolling window."""
    parts = [read_span(path, split) for path in paths]
    return np.vstack([f for f, _ in parts]), np.concatenate([y for _, y in parts])


def span_feature_names(path: str) -> list[str]:
    with np.load(path) as data:
        return [str(name) for name in data["names"]]


# -- StatisticsGen ---------------------------------------------------------------------------

def compute_statistics(span_path: str) -> dict:
    """Per-feature count, mean, standard deviation, min and max, and the label shares."""
    features, labels = read_span(span_path)
    names = span_feature_names(span_path)
    classes, counts = np.unique(labels, return_counts=True)
    return {
        "rows": len(labels),
        "features": {
            name: {"mean": float(col.mean()), "std": float(col.std()), "min": float(col.min()), "max": float(col.max())}
            for name, col in zip(names, features.T)
        },
        "label_shares": {str(int(c)): float(n / len(labels)) for c, n in zip(classes, counts)},
    }


def write_feature_statistics(span_path: str, uri: str) -> None:
    """The span's statistics per split in TFDV's format under ``uri``, as TFX's StatisticsGen
    writes them (``Split-<split>/FeatureStats.pb``); the label is a feature, as for TFDV."""
    from airflow_graphlets.prune.span_statistics import write_statistics

    names = span_feature_names(span_path) + ["label"]
    splits = {}
    for split in ("train", "eval"):
        features, labels = read_span(span_path, split)
        splits[split] = np.column_stack([features, labels])
    write_statistics(uri, splits, names)


# -- SchemaGen -------------------------------------------------------------------------------

def infer_schema(statistics: dict, slack: float = 0.5) -> dict:
    """Feature names and value ranges, widened by ``slack`` of each range on both sides."""
    features = {}
    for name, s in statistics["features"].items():
        width = (s["max"] - s["min"]) or abs(s["max"]) or 1.0
        features[name] = {"type": "FLOAT", "min": s["min"] - slack * width, "max": s["max"] + slack * width}
    return {"features": features, "labels": sorted(statistics["label_shares"])}


# -- ExampleValidator ------------------------------------------------------------------------

def validate(statistics: dict, schema: dict, previous: dict | None) -> dict:
    """Anomalies of a span: features missing from or outside the schema, and drift against the
    previous span (the largest shift of a feature's mean in units of its previous standard
    deviation, and the largest change of a label's share)."""
    anomalies = []
    for name, s in statistics["features"].items():
        expected = schema["features"].get(name)
        if expected is None:
            anomalies.append(f"feature {name} is not in the schema")
        elif s["min"] < expected["min"] or s["max"] > expected["max"]:
            anomalies.append(f"feature {name} is outside [{expected['min']:.4g}, {expected['max']:.4g}]")
    feature_drift = label_drift = 0.0
    if previous is not None:
        for name, s in statistics["features"].items():
            before = previous["features"].get(name)
            if before is not None:
                feature_drift = max(feature_drift, abs(s["mean"] - before["mean"]) / (before["std"] or 1.0))
        labels = set(statistics["label_shares"]) | set(previous["label_shares"])
        label_drift = max(abs(statistics["label_shares"].get(c, 0.0) - previous["label_shares"].get(c, 0.0))
                          for c in labels)
    return {"anomalies": anomalies, "feature_drift": round(feature_drift, 6), "label_drift": round(label_drift, 6)}


# -- Transform -------------------------------------------------------------------------------

def fitted_transform(window_paths: list[str]):
    """The preprocessing (standardisation) fitted on the window's training rows."""
    from sklearn.preprocessing import StandardScaler

    features, _ = read_window(window_paths)
    return StandardScaler().fit(features)


def fit_transform(window_paths: list[str], path: str) -> None:
    """Fit the preprocessing on the window's training rows and store it."""
    _dump(fitted_transform(window_paths), path)


# -- Trainer ---------------------------------------------------------------------------------

def make_model(kind: str, seed: int):
    """A fresh scikit-learn classifier of the named kind."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, SGDClassifier

    makers = {
        "logistic_regression": lambda: LogisticRegression(max_iter=300),
        "random_forest": lambda: RandomForestClassifier(n_estimators=40, max_depth=10, random_state=seed, n_jobs=1),
        "sgd": lambda: SGDClassifier(loss="log_loss", alpha=1e-3, random_state=seed),
        "gradient_boosting": lambda: HistGradientBoostingClassifier(max_iter=60, random_state=seed),
    }
    if kind not in makers:
        raise ValueError(f"Unknown model kind {kind!r}; choose one of {', '.join(sorted(makers))}.")
    return makers[kind]()


@dataclass
class TrainedModel:
    """What the trainer stores: the fitted model, its preprocessing, and where it came from."""

    model: object
    transform: object | None
    spans: list[int]
    train_rows: int

    def predict(self, features: np.ndarray) -> np.ndarray:
        if self.transform is not None:
            features = self.transform.transform(features)
        return self.model.predict(features)


def save_model(model: TrainedModel, path: str) -> None:
    _dump(model, path)


def load_model(path: str) -> TrainedModel:
    with open(path, "rb") as handle:
        return pickle.load(handle)


def load_transform(path: str | None):
    if path is None:
        return None
    with open(path, "rb") as handle:
        return pickle.load(handle)


# -- Evaluator -------------------------------------------------------------------------------

@dataclass
class Evaluation:
    """The evaluator's verdict on a candidate, against the deployed model on the same rows."""

    accuracy: float
    baseline_accuracy: float | None
    eval_rows: int
    threshold: float
    margin: float
    blessed: bool
    reason: str

    def to_json(self) -> dict:
        return asdict(self)


def evaluate(candidate: TrainedModel, baseline: TrainedModel | None, eval_path: str, *, threshold: float,
             margin: float) -> Evaluation:
    """Bless the candidate only if its accuracy on the newest span's eval split reaches
    ``threshold`` and beats the deployed model's accuracy on the same rows by ``margin``."""
    features, labels = read_span(eval_path, "eval")
    accuracy = float((candidate.predict(features) == labels).mean())
    baseline_accuracy = float((baseline.predict(features) == labels).mean()) if baseline is not None else None
    if accuracy < threshold:
        blessed, reason = False, f"accuracy {accuracy:.3f} is below the threshold {threshold:.3f}"
    elif baseline_accuracy is None:
        blessed, reason = True, f"accuracy {accuracy:.3f} passes the threshold and no model is deployed yet"
    elif accuracy >= baseline_accuracy + margin:
        blessed, reason = True, f"accuracy {accuracy:.3f} beats the deployed model's {baseline_accuracy:.3f} by >= {margin}"
    else:
        blessed, reason = False, (f"accuracy {accuracy:.3f} does not beat the deployed model's "
                                  f"{baseline_accuracy:.3f} by {margin}")
    return Evaluation(accuracy, baseline_accuracy, len(labels), threshold, margin, blessed, reason)


def model_scores(serving_dir: str, models_dir: str, span_path: str) -> dict[str, float]:
    """What the gate is handed before training: the accuracy, on the new span's evaluation rows
    (those the Evaluator will compare the candidate and the deployed model on), of the deployed
    model (``deployed_score``) and of the model trained most recently, pushed or not
    (``latest_score``); a model that does not exist yet is left out. Scoring costs a fraction of
    training. (On the training rows these scores told a push less well: docs/prune.md.)"""
    features, labels = read_span(span_path, "eval")
    scores = {}
    current = deployed(serving_dir)
    newest = max((os.path.join(models_dir, f) for f in os.listdir(models_dir) if f.endswith(".pkl")),
                 key=os.path.getmtime, default=None) if os.path.isdir(models_dir) else None
    for name, path in (("deployed_score", current["served_path"] if current else None), ("latest_score", newest)):
        if path is not None:
            scores[name] = round(float((load_model(path).predict(features) == labels).mean()), 6)
    return scores


# -- Pusher ----------------------------------------------------------------------------------

def deployed(serving_dir: str) -> dict | None:
    """The serving directory's current model: ``{"model_uri", "served_path", "run_id"}``, or None."""
    pointer = os.path.join(serving_dir, "current.json")
    if not os.path.exists(pointer):
        return None
    with open(pointer) as handle:
        return json.load(handle)


def push(model_path: str, serving_dir: str, run_id: str) -> str:
    """Copy the model into ``serving_dir/<run_id>/`` and make it the deployed one; returns its path."""
    target_dir = os.path.join(serving_dir, safe_name(run_id))
    os.makedirs(target_dir, exist_ok=True)
    served = os.path.join(target_dir, "model.pkl")
    shutil.copyfile(model_path, served)
    _write_json(os.path.join(serving_dir, "current.json"),
                {"model_uri": model_path, "served_path": served, "run_id": run_id})
    return served


# -- files -----------------------------------------------------------------------------------

def write_json(path: str, payload: dict) -> None:
    _write_json(path, payload)


def read_json(path: str) -> dict:
    with open(path) as handle:
        return json.load(handle)


def _write_json(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(payload, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _dump(obj: object, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        pickle.dump(obj, handle)
    os.replace(tmp, path)


def safe_name(name: str) -> str:
    """A run id as a directory name (run ids hold ':' and '+')."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
