"""How much the signals a DAG can hand its gate tell about a push, on the real-outcome benchmark.

A run pushes when its candidate's accuracy on the new span's evaluation rows reaches the
evaluator's bar and beats the deployed model's on the same rows by the margin. Before training, a
DAG can score the deployed model and the model it trained last on the new span. The benchmark's
gate is handed their scores on the span's *training* rows (``real_outcomes/tfx_store.py``); this
prints, over every run that had a deployed model (never skipping), the area under the ROC curve of
push against each such signal, and against the same scores on the *evaluation* rows the Evaluator
will use, which a DAG could measure as cheaply. An AUC of 0.5 tells nothing; 1.0 orders every push
above every miss.

Run: ``.venv/bin/python benchmarks/real_outcomes/signal_strength.py --seeds 1,2`` (the development
seeds; the stores of ``benchmarks/prune_real_outcomes.py --develop`` are reused, or made).

``--subsampled`` measures instead a dearer signal: the candidate itself, trained on a random 5,
15 or 30 % of its window's training rows (costing about that share of a training) and scored on
the evaluation rows, alone and with the latest model's gap (the larger of the two). The seed's
spans are drawn again for it (about 3 minutes a seed on two cores).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from prune_real_outcomes import benchmark  # noqa: E402
from real_outcomes.lab import PipelineRecord, outcomes  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

SUBSAMPLES = (0.05, 0.15, 0.30)


def signal_table(records: list[PipelineRecord]) -> dict[str, np.ndarray]:
    """Per run with a deployed model (every run trained): the push label and each signal."""
    rows: dict[str, list[float]] = {name: [] for name in (
        "pushed", "latest_is_deployed", "gap_train", "gap_train_over_margin", "gap_eval_over_margin", "criterion")}
    for record in records:
        happened = outcomes(record)
        margin = record.spec.margin
        for r in range(1, len(record)):
            deployed, latest = int(happened.baseline[r]), r - 1
            if deployed < 0:
                continue
            gap_train = record.acc_train[latest, r] - record.acc_train[deployed, r]
            gap_eval = record.acc_eval[latest, r] - record.acc_eval[deployed, r]
            for name, value in (("pushed", happened.blessed[r]), ("latest_is_deployed", latest == deployed),
                                ("gap_train", gap_train), ("gap_train_over_margin", gap_train - margin),
                                ("gap_eval_over_margin", gap_eval - margin),
                                ("criterion", record.cand_acc[r] - record.acc_eval[deployed, r] - margin)):
                rows[name].append(float(value))
    return {name: np.asarray(values) for name, values in rows.items()}


def subsampled_table(spec) -> list[list[float]]:
    """Per run of ``spec`` with a deployed model: pushed, the latest model's gap less the margin,
    and each subsampled candidate's (evaluation rows)."""
    import warnings

    from real_outcomes import lab
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    os.environ["OMP_NUM_THREADS"] = "1"
    record = lab.live(spec)
    happened = outcomes(record)
    rng = np.random.default_rng(spec.stream.seed)
    rows = []
    for r in range(1, len(record)):
        deployed = int(happened.baseline[r])
        if deployed < 0:
            continue
        parts = [record.spans[k].train() for k in range(int(record.window_first[r]), int(record.span[r]) + 1)]
        x, y = np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        eval_x, eval_y = record.spans[int(record.span[r])].eval()
        bar = record.acc_eval[deployed, r] + spec.margin
        row = [float(happened.blessed[r]), record.acc_eval[r - 1, r] - bar]
        for share in SUBSAMPLES:
            pick = rng.choice(len(y), size=min(len(y), max(20, int(len(y) * share))), replace=False)
            if len(np.unique(y[pick])) < 2:
                row.append(float((eval_y == y[pick][0]).mean()) - bar)
                continue
            model = lab._model(spec.model, int(record.code_version[r]), 0)
            model = make_pipeline(StandardScaler(), model) if record.transform[r] else model
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(x[pick], y[pick])
            row.append(float((model.predict(eval_x) == eval_y).mean()) - bar)
        rows.append(row)
    return rows


def print_subsampled(seed: int, pipelines: int) -> None:
    from concurrent.futures import ProcessPoolExecutor

    from real_outcomes.specs import draw_pipelines

    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        table = np.asarray([row for rows in pool.map(subsampled_table, draw_pipelines(seed, pipelines))
                            for row in rows], dtype=np.float64)
    pushed, latest = table[:, 0], table[:, 1]
    print(f"seed {seed}: {len(pushed)} runs with a deployed model")
    print(f"   AUC latest - deployed - margin, evaluation rows {auc(pushed, latest):.3f}")
    for k, share in enumerate(SUBSAMPLES, start=2):
        print(f"   AUC candidate on {share:4.0%} of its rows: alone {auc(pushed, table[:, k]):.3f}, "
              f"the larger of it and the latest's gap {auc(pushed, np.fmax(latest, table[:, k])):.3f}")


def auc(pushed: np.ndarray, signal: np.ndarray) -> float:
    known = np.isfinite(signal)
    return float(roc_auc_score(pushed[known].astype(bool), signal[known]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--pipelines", type=int, default=48)
    parser.add_argument("--subsampled", action="store_true",
                        help="instead, candidates trained on a share of their rows (slow: trains again)")
    args = parser.parse_args()
    if args.subsampled:
        for seed in (int(s) for s in args.seeds.split(",")):
            print_subsampled(seed, args.pipelines)
        return 0
    for seed in (int(s) for s in args.seeds.split(",")):
        records, _ = benchmark(seed, args.pipelines, fresh=False)
        t = signal_table(records)
        pushed, same = t["pushed"], t["latest_is_deployed"].astype(bool)
        print(f"seed {seed}: {len(pushed)} runs with a deployed model, {pushed.mean():.1%} pushed; the latest "
              f"model is the deployed one (its gap 0) at {same.mean():.1%} of them")
        print(f"   correlation of the training-rows gap with the push criterion (candidate - deployed - margin, "
              f"on the evaluation rows): {np.corrcoef(t['gap_train'][~same], t['criterion'][~same])[0, 1]:.2f}")
        for name, label in (("gap_train", "latest - deployed, training rows (what the gate is handed)"),
                            ("gap_train_over_margin", "... minus the evaluator's margin"),
                            ("gap_eval_over_margin", "latest - deployed - margin, evaluation rows"),
                            ("criterion", "the criterion itself (hindsight)")):
            print(f"   AUC {label:60s} all {auc(pushed, t[name]):.3f}   latest not deployed "
                  f"{auc(pushed[~same], t[name][~same]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
