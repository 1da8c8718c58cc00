"""The real-outcome benchmark (benchmarks/real_outcomes): histories whose pushes come from
training and evaluating real models, written as TFX writes MLMD, read by the predictor's
inputs, and replayed in closed loop where a skip changes which model is deployed."""

from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))

from airflow_graphlets.graphlets.api_reader import read_graphlets_with_mlmd_api  # noqa: E402
from airflow_graphlets.graphlets.bulk_reader import read_graphlets  # noqa: E402
from airflow_graphlets.prune.dataset import feature_matrix  # noqa: E402
from airflow_graphlets.prune.evaluate import Inputs, store_runs  # noqa: E402
from airflow_graphlets.prune.features import features  # noqa: E402
from airflow_graphlets.prune.gate_history import pipeline_history  # noqa: E402
from airflow_graphlets.prune.policy import Guardrails, NeverSkip, SkipAfterNotPushed  # noqa: E402
from airflow_graphlets.prune.replay import RecordedOutcomes, play  # noqa: E402
from airflow_graphlets.prune.signals import span_statistics  # noqa: E402
from airflow_graphlets.store.connect import open_store  # noqa: E402
from airflow_graphlets.store.uri import parse_store_uri  # noqa: E402
from real_outcomes.closed_loop import ClosedLoop  # noqa: E402
from support.databases import create_store_uri, drop_store  # noqa: E402
from real_outcomes.hindsight import Hindsight, Remembering, hindsight  # noqa: E402
from real_outcomes.lab import live, outcomes  # noqa: E402
from real_outcomes.specs import draw_pipelines  # noqa: E402
from real_outcomes.tfx_store import write_stores  # noqa: E402

SEED = 7  # neither a development nor a report seed


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from threadpoolctl import threadpool_limits

    tmp = tmp_path_factory.mktemp("real")
    specs = [dataclasses.replace(s, start_day=0, stop_day=36) for s in draw_pipelines(SEED, 3, days=36)]
    with threadpool_limits(1):
        records = [live(spec) for spec in specs]
    stores = {name: parse_store_uri(f"sqlite:///{tmp}/{name.replace('+', '-')}.sqlite") for name in ("tfx", "tfx+gate")}
    write_stores(records, stores, str(tmp / "artifacts"))
    return records, stores


def test_every_push_comes_from_a_measured_evaluation(bench):
    records, _ = bench
    for record in records:
        happened = outcomes(record)
        for r in np.flatnonzero(happened.blessed):
            baseline = happened.baseline[r]
            assert record.cand_acc[r] >= record.spec.threshold
            assert baseline < 0 or record.cand_acc[r] >= record.acc_eval[baseline, r] + record.spec.margin - 1e-12
        assert np.all(np.isnan(record.acc_eval[np.tril_indices(len(record))]))  # scored on later spans only


def test_the_same_seed_lives_the_same_history():
    spec = dataclasses.replace(draw_pipelines(SEED, 1, days=20)[0], start_day=0, stop_day=20)
    first, again = live(spec), live(spec)
    np.testing.assert_array_equal(first.cand_acc, again.cand_acc)
    np.testing.assert_array_equal(first.acc_eval, again.acc_eval)
    np.testing.assert_array_equal(first.durations, again.durations)


def test_the_store_is_shaped_as_tfx_writes_it_and_reads_alike_through_mlmds_api(bench):
    records, stores = bench
    store = open_store(stores["tfx"])
    types = {t.name for t in store.get_execution_types()}
    assert "tfx.components.trainer.component.Trainer" in types and "tfx.components.pusher.component.Pusher" in types
    assert {t.name for t in store.get_context_types()} == {"pipeline", "pipeline_run", "node", "execution_cache"}
    trainer = store.get_executions_by_type("tfx.components.trainer.component.Trainer")[0]
    assert set(trainer.custom_properties) == {"module_path", "train_args", "eval_args"}  # no time or id of ours
    assert 0 < trainer.create_time_since_epoch < trainer.last_update_time_since_epoch  # MLMD's own times
    bulk, api = read_graphlets(stores["tfx"]), read_graphlets_with_mlmd_api(stores["tfx"])
    assert bulk.graphlets.records() == api.graphlets.records() and bulk.executions.equals(api.executions)
    assert len(bulk.graphlets) == sum(len(r) for r in records)
    pushed = sum(int(outcomes(r).blessed.sum()) for r in records)
    assert int((bulk.graphlets.status == 0).sum()) == pushed


def test_the_predictors_inputs_are_all_in_the_store(bench):
    records, stores = bench
    plain, gated = Inputs.read(stores["tfx"]), Inputs.read(stores["tfx+gate"])
    runs = sum(len(r) for r in records)
    assert plain.statistics.readable == plain.statistics.artifacts == sum(int(r.new_span.sum()) for r in records)
    assert len(plain.bars) == runs and {b.bound for b in plain.bars.values()} == {round(r.spec.threshold, 4) for r in records}
    assert plain.signals == {}  # TFX's components only
    assert len(gated.signals) == runs  # the gate logged what it was handed at every run ...
    handed = [values for values in gated.signals.values() if values]
    assert len(handed) == runs - len(records)  # ... nothing before a first model, then both scores
    assert all(set(values) == {"deployed_score", "latest_score"} for values in handed)
    # The scores are taken on the new span's evaluation rows, those the Evaluator compares on.
    latest = sorted(values["latest_score"] for values in handed)
    assert np.allclose(latest, sorted(float(r.acc_eval[k - 1, k]) for r in records for k in range(1, len(r))), atol=1e-6)


def test_closed_loop_never_skipping_is_the_recorded_history(bench):
    records, stores = bench
    runs, _ = store_runs(read_graphlets(stores["tfx+gate"]), Inputs.read(stores["tfx+gate"]))
    split = float(np.quantile(runs.start, 0.3))
    recorded = play(runs, NeverSkip(), evaluate_from=split)
    closed = play(runs, NeverSkip(), evaluate_from=split, source=ClosedLoop(runs, records))
    np.testing.assert_array_equal(recorded.pushed, closed.pushed)
    np.testing.assert_array_equal(recorded.pushed, runs.pushed)


def test_closed_loop_evaluates_again_against_the_model_a_skip_left_deployed(bench):
    records, stores = bench
    runs, _ = store_runs(read_graphlets(stores["tfx+gate"]), Inputs.read(stores["tfx+gate"]))
    rails = Guardrails(min_history=0, max_consecutive_skips=3, max_hours_without_training=1e9, exploration=0.0)
    split = float(np.quantile(runs.start, 0.3))
    source = ClosedLoop(runs, records)
    closed = play(runs, SkipAfterNotPushed(1), evaluate_from=split, guardrails=rails, source=source)
    recorded = play(runs, SkipAfterNotPushed(1), evaluate_from=split, guardrails=rails)
    ran = closed.ran & recorded.ran
    assert (closed.pushed[ran] != recorded.pushed[ran]).any()  # a later blessing changed with the deployed model
    for i in np.flatnonzero(closed.ran & (runs.start >= split)):
        record, r = source.record[i], int(source.run_index[i])
        earlier = np.flatnonzero(closed.pushed[:i] & (runs.pipeline[:i] == runs.pipeline[i]))
        deployed = int(source.run_index[earlier[-1]]) if len(earlier) else None
        bar = record.acc_eval[deployed, r] + record.spec.margin - 1e-12 if deployed is not None else -np.inf
        assert closed.pushed[i] == (record.cand_acc[r] >= record.spec.threshold and record.cand_acc[r] >= bar)


@pytest.mark.parametrize("loop", [False, True], ids=["recorded", "closed loop"])
def test_hindsight_skips_every_run_that_would_not_push_unless_a_guardrail_forbids(bench, loop):
    records, stores = bench
    runs, _ = store_runs(read_graphlets(stores["tfx+gate"]), Inputs.read(stores["tfx+gate"]))
    split = float(np.quantile(runs.start, 0.3))
    rails = Guardrails(min_history=3, max_consecutive_skips=2, exploration=0.0)
    source = Remembering(ClosedLoop(runs, records) if loop else RecordedOutcomes(runs))
    played = play(runs, Hindsight(source), evaluate_from=split, guardrails=rails, source=source)
    window = runs.start >= split
    assert not (window & ~played.ran & played.would_push).any()  # never a push lost
    assert (window & ~played.ran).any()
    assert (window & played.ran & ~played.would_push).sum() == played.forced  # every other miss is skipped
    ceiling = hindsight(runs, split, ClosedLoop(runs, records) if loop else None, rails)
    assert ceiling.pushes_kept_share == 1.0 and ceiling.compute_saved_share > 0.0


def test_the_gate_reads_what_the_replay_computes_on_a_tfx_store(bench):
    _, stores = bench
    config = stores["tfx+gate"]
    runs, _ = store_runs(read_graphlets(config), Inputs.read(config))
    matrix = feature_matrix(runs)
    p = int(np.argmax(np.bincount(runs.pipeline)))
    rows = np.flatnonzero(runs.pipeline == p)
    for row in rows[[len(rows) // 2, -1]]:
        candidate = runs.candidates[row]
        history, _ = pipeline_history(config, runs.pipelines[p], candidate.start, first_window=5,
                                      candidate_spans=candidate.spans)
        assert features(history, candidate) == pytest.approx(tuple(matrix[row]), nan_ok=True)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
def test_a_decision_reads_the_statistics_of_its_spans_alike_on_every_backend(bench, backend, tmp_path):
    records, _ = bench
    uri = create_store_uri(backend, str(tmp_path))
    try:
        config = parse_store_uri(uri)
        write_stores(records, {"tfx+gate": config}, str(tmp_path / "artifacts"))
        whole = span_statistics(config)
        assert whole.readable == whole.artifacts > 0 and set(whole.by_pipeline) == {r.spec.name for r in records}
        for pipeline, index in whole.by_pipeline.items():
            spans = sorted(index.by_span)
            wanted = [spans[0], *spans[-3:], max(spans) + 100]  # the last one has no statistics
            some = span_statistics(config, pipeline, wanted)
            assert set(some.by_pipeline[pipeline].by_span) == set(wanted[:-1])
            for span in wanted[:-1]:
                assert _same_statistics(some.by_pipeline[pipeline].by_span[span], index.by_span[span])
        assert span_statistics(config, "no_such_pipeline", [1, 2]).by_pipeline == {}
    finally:
        drop_store(uri)


def _same_statistics(one, other) -> bool:
    return (one.examples == other.examples and one.categorical == other.categorical
            and one.numeric.keys() == other.numeric.keys()
            and all(np.array_equal(h.low, other.numeric[k].low) and np.array_equal(h.count, other.numeric[k].count)
                    for k, h in one.numeric.items()))


def test_the_rate_oracle_skips_where_a_lost_push_buys_the_most_compute_within_the_cap():
    from real_outcomes.within_pipeline import rate_oracle

    # Pipelines: never pushes (cost 30 unpushed); 10 pushes for 100 unpushed; 10 pushes for 20.
    unpushed, pushes = np.array([30.0, 100.0, 20.0]), np.array([0.0, 10.0, 10.0])
    # Keeping 90 % of 20 pushes allows 2 lost: the never-pushing pipeline at the cap, then a
    # fifth of the second (2 of its 10 pushes), nothing of the third.
    assert rate_oracle(unpushed, pushes, kept=0.90, most=0.75) == pytest.approx(0.75 * 30 + 0.2 * 100)
    # Without a cap the never-pushing pipeline is skipped whole.
    assert rate_oracle(unpushed, pushes, kept=0.90, most=1.0) == pytest.approx(30 + 0.2 * 100)
    # A budget beyond the second pipeline's cap spills into the third.
    assert rate_oracle(unpushed, pushes, kept=0.50, most=0.75) == pytest.approx(0.75 * 30 + 0.75 * 100 + 0.25 * 20)
