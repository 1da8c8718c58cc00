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


def auc(pushed: np.ndarray, signal: np.ndarray) -> float:
    known = np.isfinite(signal)
    return float(roc_auc_score(pushed[known].astype(bool), signal[known]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--pipelines", type=int, default=48)
    args = parser.parse_args()
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
