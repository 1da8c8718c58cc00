"""Closed-loop replay: a run that runs is evaluated again, for real, against the model the replay
has deployed at that moment.

The recorded history says what happened when every run trained. Once a policy skips a run that
would have pushed, a different model is deployed for a while, and every later candidate must
beat that one instead: it may be blessed where the recorded run was not, or the other way round.
The lab scored every model on every later span, so each such evaluation is a measured accuracy,
not an assumption. What a DAG hands the gate changes with it: the deployed model's accuracy on
the new span is that of the model the replay deployed, the latest model's that of the last run
the replay let train.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from airflow_graphlets.prune.dataset import TrainingRuns
from airflow_graphlets.prune.features import Candidate, Outcome
from airflow_graphlets.prune.features.signals import DEPLOYED_SCORE, LATEST_SCORE

from real_outcomes.lab import PipelineRecord, signal_accuracy


class ClosedLoop:
    """An outcome source for :func:`airflow_graphlets.prune.replay.replay` over a benchmark's store.

    Args:
      runs: the store's training runs (one per run of each record, in the same order).
      records: what the lab measured, one per pipeline.
      signals: hand the gate the deployed and latest models' accuracy (as the store with the gate has it).

    Raises:
      ValueError: the store's runs are not the records' runs.
    """

    def __init__(self, runs: TrainingRuns, records: list[PipelineRecord], signals: bool = True) -> None:
        self.runs = runs
        self.signals = signals
        by_name = {record.spec.name: record for record in records}
        self.run_index = np.zeros(len(runs), dtype=np.int64)
        for p, name in enumerate(runs.pipelines):
            rows = np.flatnonzero(runs.pipeline == p)
            if len(rows) == 0:
                continue
            record = by_name.get(name)
            if record is None or len(record) != len(rows):
                raise ValueError(f"the store's pipeline {name} does not match the benchmark's records "
                                 f"({len(rows)} runs in the store)")
            self.run_index[rows] = np.arange(len(rows))
        self.record: list[PipelineRecord] = [by_name[runs.pipelines[p]] for p in runs.pipeline]

    def candidate(self, i: int, deployed: int | None, latest: int | None) -> Candidate:
        recorded = self.runs.candidates[i]
        if not self.signals:
            return recorded
        return dataclasses.replace(recorded, signals=self._signals(i, deployed, latest))

    def outcome(self, i: int, deployed: int | None) -> Outcome:
        record, r = self.record[i], int(self.run_index[i])
        d = None if deployed is None else int(self.run_index[deployed])
        accuracy = record.cand_acc[r]
        blessed = bool(accuracy >= record.spec.threshold and (
            d is None or accuracy >= record.acc_eval[d, r] + record.spec.margin - 1e-12))
        recorded = self.runs.outcomes[i]
        pushed_at = recorded.pushed_at if recorded.pushed_at is not None else recorded.end
        # The signals its gate logged are the candidate's (the replay reads them from the candidate).
        return dataclasses.replace(recorded, blessed=blessed, pushed=blessed, pushed_at=pushed_at if blessed else None,
                                   signals=self._signals(i, deployed, None) if self.signals else recorded.signals)

    def _signals(self, i: int, deployed: int | None, latest: int | None) -> dict[str, float]:
        record, r = self.record[i], int(self.run_index[i])
        found = {}
        for name, row in ((DEPLOYED_SCORE, deployed), (LATEST_SCORE, latest)):
            value = np.nan if row is None else signal_accuracy(record, int(self.run_index[row]), r)
            if not np.isnan(value):
                found[name] = round(float(value), 6)
        return found
