"""The gate's decision for one run: features from the store, the predictor's probability, the
policy inside the guardrails, operator overrides, and failing open whatever goes wrong."""

from __future__ import annotations

import gc
import json
import socket
import time

import numpy as np
import pytest
from airflow_graphlets.graphlets.analyses import analyze
from airflow_graphlets.graphlets.api_reader import read_graphlets_with_mlmd_api
from airflow_graphlets.graphlets.bulk_reader import read_graphlets
from airflow_graphlets.graphlets.clock import on_clock
from airflow_graphlets.prune.dataset import feature_matrix, training_runs
from airflow_graphlets.prune.features import NAMES, features
from airflow_graphlets.prune.gate import GateSettings, GateState, decide, read_gate_state
from airflow_graphlets.prune.gate_history import FIRST_WINDOW, KNOWN_OUTCOMES, first_window, pipeline_history
from airflow_graphlets.prune.overrides import (
    ALLOW_SKIP,
    FORCE_RUN,
    NEVER_SKIP,
    OverrideError,
    read_overrides,
    record_override,
    standing,
)
from airflow_graphlets.prune.policy import Guardrails
from airflow_graphlets.prune.predictor import PushPredictor
from airflow_graphlets.prune.evaluator_bar import EVAL_CONFIG_PROPERTY, tfx_eval_config
from airflow_graphlets.prune.signals import SIGNALS_PROPERTY, span_drift
from airflow_graphlets.simulate.run import simulate
from airflow_graphlets.store.uri import parse_store_uri

OPEN = Guardrails(min_history=0, max_consecutive_skips=3, max_hours_without_training=1e9, exploration=0.0)


def logged(features: dict) -> tuple[float, ...]:
    """A decision's features as the predictor saw them (the log keeps an unknown one as None)."""
    return tuple(np.nan if value is None else value for value in features.values())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A simulated store, a predictor trained on it, and a late run of one pipeline."""
    tmp = tmp_path_factory.mktemp("gate")
    config = parse_store_uri(f"sqlite:///{tmp}/sim.sqlite")
    simulate(config, pipelines=12, days=120, seed=7)
    runs = training_runs(on_clock(read_graphlets(config), "logical"), span_drift(config))
    matrix = feature_matrix(runs)
    path = str(tmp / "predictor.npz")
    PushPredictor.fit(matrix, runs.pushed).save(path)
    late = int(np.flatnonzero(runs.pipeline == runs.pipeline[0])[-1])
    return config, runs, matrix, path, late


def test_the_gate_sees_what_the_replay_sees_and_asks_the_predictor(world):
    config, runs, matrix, path, late = world
    pipeline = runs.pipelines[runs.pipeline[late]]
    outcome = decide(config, pipeline, runs.candidates[late], GateSettings(path, threshold=0.0, guardrails=OPEN))
    assert outcome.decision.run and outcome.override is None
    assert list(outcome.features) == list(NAMES)
    assert logged(outcome.features) == pytest.approx(tuple(matrix[late]), nan_ok=True)
    expected = PushPredictor.load(path).push_probability(matrix[late])[0]
    assert outcome.decision.probability == pytest.approx(expected)
    assert outcome.decision.reason.startswith("predicted push probability")


@pytest.mark.parametrize("first_window", [1, 7, 30])
def test_a_window_of_latest_runs_gives_the_whole_historys_features(world, first_window):
    config, runs, matrix, _, _ = world
    rows = np.flatnonzero(runs.pipeline == runs.pipeline[0])
    pipeline = runs.pipelines[runs.pipeline[0]]
    for row in rows[[5, len(rows) // 2, -1]]:  # early (the window is every run), middle, late
        candidate = runs.candidates[row]
        whole, whole_last = pipeline_history(config, pipeline, candidate.start, first_window=10**6)
        window, window_last = pipeline_history(config, pipeline, candidate.start, first_window=first_window)
        assert features(window, candidate) == pytest.approx(features(whole, candidate), nan_ok=True)
        assert features(window, candidate) == pytest.approx(tuple(matrix[row]), nan_ok=True)
        assert window_last == whole_last


def test_the_first_window_holds_enough_runs_for_the_runs_the_gate_let_train():
    wanted = KNOWN_OUTCOMES + 8  # the outcomes, and runs that train nothing though the gate ran them
    assert first_window([]) == FIRST_WINDOW  # no skip log: nothing tells how many train
    assert first_window(["run"] * 60) == wanted
    assert first_window(["run", "skip"] * 30) == 2 * wanted  # half the runs trained nothing
    assert first_window(["skip"] * 59 + ["run"]) == first_window(["skip"] * 60) == 4 * wanted  # at most x4


def test_a_window_reads_each_runs_signals_and_evaluator_bar_as_the_whole_history_does(store_uri):
    """The gate looks a window's signals and bars up by its executions' ids; the whole history
    by walking the pipeline's runs. Both must hand every outcome the same."""
    import sqlalchemy as sa

    config = parse_store_uri(store_uri)
    simulate(config, pipelines=2, days=25, seed=11)
    engine = sa.create_engine(config.sqlalchemy_url())
    with engine.begin() as conn:  # a signal on each trainer, a bar on each evaluator, by run
        for kind, name, custom in (("Trainer", SIGNALS_PROPERTY, True), ("Evaluator", EVAL_CONFIG_PROPERTY, False)):
            executions = conn.execute(sa.text(
                "SELECT e.id FROM Execution e JOIN Type t ON t.id = e.type_id WHERE t.name LIKE :kind ORDER BY e.id"),
                {"kind": f"%{kind}"}).scalars().all()
            for i, execution in enumerate(executions):
                value = (json.dumps({"deployed_score": 0.5 + i / 1000}) if custom
                         else tfx_eval_config("BinaryAccuracy", 0.6 + i / 1000, 0.01))
                conn.execute(sa.text("INSERT INTO ExecutionProperty (execution_id, name, is_custom_property, "
                                     "string_value) VALUES (:e, :n, :c, :v)"),
                             {"e": execution, "n": name, "c": custom, "v": value})
    engine.dispose()
    runs = training_runs(on_clock(read_graphlets(config), "logical"), span_drift(config))
    row = int(np.flatnonzero(runs.pipeline == 0)[-1])
    pipeline, candidate = runs.pipelines[0], runs.candidates[row]
    whole, _ = pipeline_history(config, pipeline, candidate.start, first_window=10**6)
    window, _ = pipeline_history(config, pipeline, candidate.start, first_window=5)
    assert len(window.outcomes) < len(whole.outcomes)
    latest = {o.run: (o.signals, o.evaluator_bar) for o in whole.outcomes}
    assert all(signals and bar is not None for signals, bar in latest.values())
    assert [(o.run, o.signals, o.evaluator_bar) for o in window.outcomes] == [
        (o.run, *latest[o.run]) for o in window.outcomes]
    assert features(window, candidate) == pytest.approx(features(whole, candidate), nan_ok=True)


def test_a_run_below_the_threshold_is_skipped_until_the_guardrails_force_one(world):
    config, runs, _, path, late = world
    pipeline, candidate = runs.pipelines[runs.pipeline[late]], runs.candidates[late]
    skip_all = GateSettings(path, threshold=1e6, guardrails=OPEN)
    skipped = decide(config, pipeline, candidate, skip_all, state=GateState(skips_in_a_row=0))
    assert not skipped.decision.run and skipped.decision.reason.endswith("< 1e+06")
    forced = decide(config, pipeline, candidate, skip_all, state=GateState(skips_in_a_row=3))
    assert forced.decision.run and forced.decision.reason.startswith("guardrail: 3 runs skipped in a row")


def test_a_never_skip_set_on_the_gate_always_runs(world):
    config, runs, _, path, late = world
    pipeline, candidate = runs.pipelines[runs.pipeline[late]], runs.candidates[late]
    never = decide(config, pipeline, candidate, GateSettings(path, threshold=1e6, guardrails=OPEN, never_skip=True))
    assert (never.decision.run, never.override) == (True, "never-skip")
    assert never.decision.reason == "operator override: never-skip (set on the gate in the DAG)"


@pytest.fixture()
def own_store(world, tmp_path):
    """A copy of the world's store that a test may write overrides into."""
    config = world[0]
    copy = tmp_path / "copy.sqlite"
    copy.write_bytes(open(config.path, "rb").read())
    return parse_store_uri(f"sqlite:///{copy}")


def test_overrides_are_kept_in_the_store_with_who_made_them(own_store):
    record_override(own_store, "pipeline_0003", NEVER_SKIP, by="alice", reason="launch week", now=100.0)
    record_override(own_store, "pipeline_0003", ALLOW_SKIP, by="bob", now=200.0)
    record_override(own_store, "other", FORCE_RUN, by="carol", now=150.0)
    kept = [(o.dag_id, o.action, o.by, o.reason, o.at) for o in read_overrides(own_store, "pipeline_0003")]
    assert kept == [("pipeline_0003", NEVER_SKIP, "alice", "launch week", 100.0),
                    ("pipeline_0003", ALLOW_SKIP, "bob", "", 200.0)]
    assert read_overrides(own_store, "no_such_dag") == []


@pytest.mark.parametrize("reader", [read_graphlets, read_graphlets_with_mlmd_api])
def test_overrides_are_not_pipeline_executions_for_either_reader(own_store, reader):
    before = analyze(reader(own_store)).totals
    record_override(own_store, "pipeline_0000", NEVER_SKIP, by="alice")
    assert analyze(reader(own_store)).totals == before


@pytest.mark.parametrize("dag, action, by, problem", [
    ("d", "skip-forever", "alice", "unknown override action 'skip-forever'"),
    ("", FORCE_RUN, "alice", "needs the DAG id"),
    ("d", FORCE_RUN, " ", "needs who makes it"),
])
def test_a_malformed_override_is_refused_with_what_is_wrong(own_store, dag, action, by, problem):
    with pytest.raises(OverrideError, match=problem):
        record_override(own_store, dag, action, by=by)


def test_a_force_run_is_used_by_the_next_decision_only(world, own_store):
    _, runs, _, path, late = world
    pipeline, candidate = runs.pipelines[runs.pipeline[late]], runs.candidates[late]
    skip_all = GateSettings(path, threshold=1e6, guardrails=OPEN)
    assert not decide(own_store, pipeline, candidate, skip_all).decision.run
    made = record_override(own_store, pipeline, FORCE_RUN, by="alice", reason="new data source")
    state = read_gate_state(own_store, pipeline)
    assert state.overrides.force_run == made
    forced = decide(own_store, pipeline, candidate, skip_all, state=state)
    assert forced.decision.run and forced.override == "force-run by alice"
    assert forced.decision.reason == "operator override: force-run by alice: new data source"
    # Once a decision is logged after it, the force-run is used up.
    used = GateState(0, made.at + 1.0, standing(read_overrides(own_store, pipeline), made.at + 1.0))
    assert not decide(own_store, pipeline, candidate, skip_all, state=used).decision.run


def test_a_force_run_bound_to_a_run_is_that_runs_alone_until_it_decides_again(world, own_store):
    _, runs, _, path, late = world
    pipeline, candidate = runs.pipelines[runs.pipeline[late]], runs.candidates[late]
    skip_all = GateSettings(path, threshold=1e6, guardrails=OPEN)
    made = record_override(own_store, pipeline, FORCE_RUN, by="alice", reason="overruled", now=500.0, run_id="run_7")
    assert read_overrides(own_store, pipeline)[-1].run_id == "run_7"
    # Another run's decision neither honours it nor uses it up.
    other = decide(own_store, pipeline, candidate, skip_all, run_id="run_8")
    assert not other.decision.run
    assert read_gate_state(own_store, pipeline, run_id="run_8").overrides.active is None
    # The overruled run's gate, deciding again after the override, runs the training...
    state = read_gate_state(own_store, pipeline, run_id="run_7")
    assert state.overrides.run_force_run == made and state.overrides.force_run is None
    forced = decide(own_store, pipeline, candidate, skip_all, run_id="run_7")
    assert forced.decision.run and forced.override == "force-run by alice"
    # ...once: a decision of that run logged after it uses it up, whatever other runs did since.
    used = standing(read_overrides(own_store, pipeline), made.at + 5.0, "run_7", made.at + 1.0)
    assert used.active is None
    kept = standing(read_overrides(own_store, pipeline), made.at + 5.0, "run_7", made.at - 1.0)
    assert kept.active == made, "other runs deciding since do not use a run's own force-run up"


def test_only_a_force_run_can_be_bound_to_a_run(own_store):
    with pytest.raises(OverrideError, match="only a force-run can be bound to a run"):
        record_override(own_store, "d", NEVER_SKIP, by="alice", run_id="run_1")


def test_never_skip_holds_until_allow_skip(world, own_store):
    _, runs, _, path, late = world
    pipeline, candidate = runs.pipelines[runs.pipeline[late]], runs.candidates[late]
    skip_all = GateSettings(path, threshold=1e6, guardrails=OPEN)
    record_override(own_store, pipeline, NEVER_SKIP, by="alice", now=1000.0)
    for _ in range(2):  # decisions do not use it up
        held = decide(own_store, pipeline, candidate, skip_all)
        assert held.decision.run and held.override == "never-skip by alice"
    record_override(own_store, pipeline, ALLOW_SKIP, by="bob", now=2000.0)
    assert not decide(own_store, pipeline, candidate, skip_all).decision.run


@pytest.mark.parametrize("case, reason", [
    ("no store", "fail open: RuntimeError: no MLMD store is configured"),
    ("no predictor", "fail open: RuntimeError: no predictor is configured (predictor_path)"),
    ("not a predictor", "is not an airflow-graphlets push predictor"),
    ("over budget", "fail open: no decision within the budget of 0 s (budget_seconds)"),
])
def test_the_gate_fails_open(world, tmp_path, case, reason):
    config, runs, _, path, late = world
    pipeline, candidate = runs.pipelines[runs.pipeline[late]], runs.candidates[late]
    settings = GateSettings(path, threshold=1e6, guardrails=OPEN)
    if case == "no store":
        config = None
    elif case == "no predictor":
        settings = GateSettings(None, threshold=1e6, guardrails=OPEN, prior=False)
    elif case == "not a predictor":
        (tmp_path / "junk.pkl").write_bytes(b"\x80\x04K\x01.")  # a pickled 1
        settings = GateSettings(str(tmp_path / "junk.pkl"), threshold=1e6, guardrails=OPEN)
    else:
        settings = GateSettings(path, threshold=1e6, guardrails=OPEN, budget_seconds=0.0)
    outcome = decide(config, pipeline, candidate, settings)
    assert outcome.decision.run and reason in outcome.decision.reason


def test_a_store_that_never_answers_lets_training_run_within_the_budget(world):
    _, runs, _, path, late = world
    pipeline, candidate = runs.pipelines[runs.pipeline[late]], runs.candidates[late]
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel accepts connections; nothing ever answers them
    try:
        config = parse_store_uri(f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/mlmd")
        began = time.perf_counter()
        outcome = decide(config, pipeline, candidate, GateSettings(path, threshold=1e6, guardrails=OPEN,
                                                                   budget_seconds=1.0))
        waited = time.perf_counter() - began
    finally:
        silent.close()
    assert outcome.decision.run
    assert outcome.decision.reason == "fail open: no decision within the budget of 1 s (budget_seconds)"
    assert 1.0 <= waited < 3.0
    assert gc.isenabled()  # held off while the gate waited, resumed though the reads still hang


def test_the_gate_leaves_the_garbage_collector_as_the_task_had_it(world):
    config, runs, _, path, late = world
    pipeline, candidate = runs.pipelines[runs.pipeline[late]], runs.candidates[late]
    settings = GateSettings(path, threshold=0.0, guardrails=OPEN)
    assert gc.isenabled()
    assert decide(config, pipeline, candidate, settings).decision.probability is not None
    assert gc.isenabled()
    gc.disable()
    try:
        decide(config, pipeline, candidate, settings)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_gate_calibrates_with_its_own_logged_decisions_whose_runs_trained(world):
    from airflow_graphlets.prune.decisions import LoggedDecision
    from airflow_graphlets.prune.features import PipelineHistory
    from airflow_graphlets.prune.gate import calibrate

    config, runs, matrix, path, late = world
    predictor = PushPredictor.load(path)
    p = runs.pipeline[late]
    rows = [int(r) for r in np.flatnonzero(runs.pipeline == p)[-12:-2]]
    history = PipelineHistory()
    for r in rows:
        history.add(runs.outcomes[r])
    pipeline = runs.pipelines[p]

    def logged(row, decision, features):
        run_id = runs.outcomes[row].run.split(".", 1)[1]
        return LoggedDecision(0, run_id, "graphlet_gate", 0.0, decision, 0.5, "", "", "v", features)

    full = lambda row: {name: (None if np.isnan(v) else float(v)) for name, v in zip(NAMES, matrix[row])}  # noqa: E731
    decisions = [logged(r, "run", full(r)) for r in rows[:6]]
    decisions += [logged(rows[6], "skip", full(rows[6])),  # skipped: no outcome to learn from
                  logged(rows[7], "run", {}),  # decided without a predictor: no features
                  logged(int(np.flatnonzero(runs.pipeline == p)[-1]), "run", full(rows[0]))]  # outcome not known yet
    calibration = calibrate(predictor, pipeline, history, decisions)
    expected = [(float(predictor.push_probability(matrix[r])[0]), bool(runs.pushed[r])) for r in rows[:6]]
    assert [pushed for _, pushed in calibration.pairs] == [pushed for _, pushed in expected]
    assert [p for p, _ in calibration.pairs] == pytest.approx([p for p, _ in expected])
