"""Live one pipeline's history for real: ingest its spans, train a candidate at every run, and
score every candidate on every later span, so whether a run is blessed (against whichever
model is deployed then) is a fact measured on data, never a coin we flip.

The result, :class:`PipelineRecord`, holds what the recorded history and any closed-loop replay
need: each candidate's accuracy on its own run's evaluation rows, and every model's accuracy on
every later run's evaluation rows (``acc_eval``: what a DAG can measure of the deployed and the
latest model before training, on the rows the Evaluator will compare on, the gate's signals; see
:func:`signal_accuracy`) and training rows (``acc_train``). Who is
deployed at a run depends on which runs trained and pushed before it; :func:`outcomes` plays that
out for any set of runs that ran.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from real_outcomes.specs import PipelineSpec
from real_outcomes.streams import draw_rows, feature_names

EVAL_EVERY = 3  # every third row of a span is held out for evaluation, as the example DAGs do
COMPONENTS = ("ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform", "Trainer", "Evaluator",
              "Pusher")
# Median seconds per component, as the paper-calibrated simulator's profile has them.
_MEDIAN_SECONDS = (420.0, 180.0, 20.0, 25.0, 600.0, 1800.0, 360.0, 40.0)
# How much heavier one model kind's training is than another's.
_TRAINER_FACTOR = {"logistic_regression": 0.8, "sgd": 0.6, "random_forest": 1.5, "gradient_boosting": 1.3,
                   "decision_tree": 0.5, "naive_bayes": 0.3}


@dataclass
class Span:
    """One span's rows and its evaluation split."""

    features: np.ndarray
    labels: np.ndarray
    is_eval: np.ndarray

    def train(self) -> tuple[np.ndarray, np.ndarray]:
        return self.features[~self.is_eval], self.labels[~self.is_eval]

    def eval(self) -> tuple[np.ndarray, np.ndarray]:
        return self.features[self.is_eval], self.labels[self.is_eval]


@dataclass
class PipelineRecord:
    """One pipeline's runs (arrays, one entry per run, in time order) and what was measured."""

    spec: PipelineSpec
    feature_names: list[str]
    day: np.ndarray  # int: the run's day
    span: np.ndarray  # int: the newest span of the run's window (a late run repeats the last one)
    new_span: np.ndarray  # bool: ExampleGen found a new span
    window_first: np.ndarray  # int: the oldest span of the window
    transform: np.ndarray  # bool: the run had a Transform step
    code_version: np.ndarray  # int: trainer code version
    cand_acc: np.ndarray  # float: the candidate's accuracy on its run's evaluation rows
    acc_eval: np.ndarray  # float [model run, run]: a model's accuracy on a later run's evaluation rows (NaN before)
    acc_train: np.ndarray  # float [model run, run]: ... on a later run's training rows of the new span
    durations: np.ndarray  # float [run, COMPONENTS]: seconds each component took
    spans: list[Span]  # by span index

    def __len__(self) -> int:
        return len(self.day)


@dataclass
class Outcomes:
    """What happened at each run, given which runs ran."""

    ran: np.ndarray  # bool
    blessed: np.ndarray  # bool (False where the run did not run)
    baseline: np.ndarray  # int: the run whose model was deployed when it was evaluated (-1: none)
    deployed_accuracy: np.ndarray  # float: the deployed model's signal_accuracy at the run (NaN: none)
    would_push: np.ndarray  # bool: would have been blessed against the model deployed then, had it run


def outcomes(record: PipelineRecord, ran: np.ndarray | None = None) -> Outcomes:
    """Play out the evaluator and pusher over the runs that ran (every run when ``ran`` is None):
    a candidate is blessed, and pushed, when its accuracy reaches the threshold and beats the
    deployed model's on the same rows by the margin."""
    n = len(record)
    ran = np.ones(n, dtype=bool) if ran is None else np.asarray(ran, dtype=bool)
    blessed = np.zeros(n, dtype=bool)
    would = np.zeros(n, dtype=bool)
    baseline = np.full(n, -1, dtype=np.int64)
    deployed_accuracy = np.full(n, np.nan)
    deployed = -1
    for r in range(n):
        baseline[r] = deployed
        if deployed >= 0:
            deployed_accuracy[r] = signal_accuracy(record, deployed, r)
        would[r] = bool(record.cand_acc[r] >= record.spec.threshold and (
            deployed < 0 or record.cand_acc[r] >= record.acc_eval[deployed, r] + record.spec.margin - 1e-12))
        if ran[r] and would[r]:
            blessed[r] = True
            deployed = r
    return Outcomes(ran, blessed, baseline, deployed_accuracy, would)


def signal_accuracy(record: PipelineRecord, model_run: int, run: int) -> float:
    """What a DAG hands the gate of a model before ``run`` trains: the model's accuracy on the new
    span's evaluation rows, those the Evaluator will compare the candidate and the deployed model
    on (scoring costs a fraction of training). On the span's training rows instead, the gap
    between the latest and the deployed model told a push less well (AUC 0.67-0.71 against
    0.73-0.77 with the margin taken off: ``real_outcomes/signal_strength.py``)."""
    return float(record.acc_eval[model_run, run])


def live(spec: PipelineSpec) -> PipelineRecord:
    """Ingest, train and score the whole history of ``spec`` (deterministic in the spec)."""
    rng = np.random.default_rng([spec.stream.seed, 1])
    rows_per_day = max(20, int(np.ceil(spec.span_rows / spec.cadence_days)))
    first_day = spec.start_day - spec.cadence_days + 1
    features, labels, days = draw_rows(spec.stream, rows_per_day, first_day, spec.stop_day)
    spans: list[Span] = []
    run_days = spec.run_days()
    span_of_run, new_span = [], []
    ingested_until = first_day  # rows of days before this are in a span already
    for k, day in enumerate(run_days):
        late = k > 0 and rng.random() < spec.late_rate
        if not late:
            rows = (days >= ingested_until) & (days <= day)
            count = int(rows.sum())
            spans.append(Span(features[rows], labels[rows], (np.arange(count) % EVAL_EVERY) == EVAL_EVERY - 1))
            ingested_until = day + 1
        span_of_run.append(len(spans) - 1)
        new_span.append(not late)
    n = len(run_days)
    span = np.asarray(span_of_run)
    window_first = np.maximum(span - spec.window + 1, 0)
    transform = np.asarray([spec.transform_on(d) for d in run_days])
    code_version = np.asarray([spec.code_version_on(d) for d in run_days])
    models = [_train(spec, spans, int(window_first[r]), int(span[r]), bool(transform[r]), int(code_version[r]), r)
              for r in range(n)]
    cand_acc = np.asarray([_accuracy(models[r], *spans[span[r]].eval()) for r in range(n)])
    acc_eval, acc_train = _later_accuracies(models, spans, span)
    return PipelineRecord(
        spec=spec, feature_names=feature_names(spec.stream), day=np.asarray(run_days), span=span,
        new_span=np.asarray(new_span), window_first=window_first, transform=transform, code_version=code_version,
        cand_acc=cand_acc, acc_eval=acc_eval, acc_train=acc_train,
        durations=_durations(spec, spans, span, window_first, transform, rng), spans=spans,
    )


def _train(spec: PipelineSpec, spans: list[Span], first: int, last: int, transform: bool, version: int, run: int):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    parts = [spans[k].train() for k in range(first, last + 1)]
    x = np.vstack([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    model = _model(spec.model, version, spec.stream.seed % 10_000 + run)
    if transform:
        model = make_pipeline(StandardScaler(), model)
    if len(np.unique(y)) < 2:
        return _Constant(int(y[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of a real fit are part of the history
        model.fit(x, y)
    return model


def _model(kind: str, version: int, seed: int):
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.naive_bayes import GaussianNB
    from sklearn.tree import DecisionTreeClassifier

    v2 = version >= 2
    if kind == "logistic_regression":
        return LogisticRegression(max_iter=300, C=0.05 if v2 else 1.0)
    if kind == "sgd":
        return SGDClassifier(loss="hinge" if v2 else "log_loss", alpha=1e-4 if v2 else 1e-3, random_state=seed)
    if kind == "random_forest":
        return RandomForestClassifier(n_estimators=20, max_depth=12 if v2 else 8, min_samples_leaf=3 if v2 else 1,
                                      max_samples=0.5, random_state=seed, n_jobs=1)
    if kind == "gradient_boosting":
        return HistGradientBoostingClassifier(max_iter=80 if v2 else 50, learning_rate=0.05 if v2 else 0.1,
                                              max_leaf_nodes=15 if v2 else 31, random_state=seed)
    if kind == "decision_tree":
        return DecisionTreeClassifier(max_depth=5 if v2 else 8, random_state=seed)
    if kind == "naive_bayes":
        return GaussianNB(var_smoothing=1e-3 if v2 else 1e-9)
    raise ValueError(f"unknown model kind {kind!r}")


class _Constant:
    """What a trainer makes of a window holding one class only."""

    def __init__(self, label: int) -> None:
        self.label = label

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), self.label)


def _accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    return float((model.predict(x) == y).mean()) if len(y) else float("nan")


def _later_accuracies(models: list, spans: list[Span], span: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every model's accuracy on the evaluation and training rows of each later run's span:
    one prediction per model over all later spans at once."""
    n = len(models)
    acc_eval = np.full((n, n), np.nan, dtype=np.float32)
    acc_train = np.full((n, n), np.nan, dtype=np.float32)
    offsets = np.cumsum([0] + [len(s.labels) for s in spans])
    all_x = np.vstack([s.features for s in spans])
    all_y = np.concatenate([s.labels for s in spans])
    all_eval = np.concatenate([s.is_eval for s in spans])
    for m in range(n - 1):
        first_span = int(span[m + 1])
        lo = offsets[first_span]
        correct = models[m].predict(all_x[lo:]) == all_y[lo:]
        is_eval = all_eval[lo:]
        for r in range(m + 1, n):
            a, b = offsets[span[r]] - lo, offsets[span[r] + 1] - lo
            hit, ev = correct[a:b], is_eval[a:b]
            acc_eval[m, r] = hit[ev].mean() if ev.any() else np.nan
            acc_train[m, r] = hit[~ev].mean() if (~ev).any() else np.nan
    return acc_eval, acc_train


def _durations(spec: PipelineSpec, spans: list[Span], span: np.ndarray, window_first: np.ndarray,
               transform: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Seconds each component of each run takes: the paper profile's median per operator kind
    (``simulate/profiles/paper.toml``), grown with the square root of the rows it reads, times
    the pipeline's scale, with lognormal noise as there."""
    n = len(span)
    out = np.zeros((n, len(COMPONENTS)))
    sizes = np.asarray([len(s.labels) for s in spans], dtype=np.float64)
    for r in range(n):
        new_rows = sizes[span[r]]
        window_rows = sizes[window_first[r]: span[r] + 1].sum()
        grow = np.sqrt(np.asarray([new_rows / 800, new_rows / 800, 1, 1, window_rows / 4000,
                                   window_rows / 4000, new_rows / 800, 1]))
        base = np.asarray(_MEDIAN_SECONDS) * grow
        base[COMPONENTS.index("Trainer")] *= _TRAINER_FACTOR[spec.model]
        if not transform[r]:
            base[COMPONENTS.index("Transform")] = 0.0
        out[r] = base * spec.cost_scale * rng.lognormal(0.0, 0.35, len(COMPONENTS))
    return out
