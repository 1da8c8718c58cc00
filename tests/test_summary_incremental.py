"""An incremental summary refresh equals a full one, whatever is written between refreshes
(issue 23): Hypothesis interleaves TFX pipeline runs (blessed or not, failing or cached
trainers, with and without Transform), late pushes and gate decisions with refreshes, on SQLite
and PostgreSQL, and after every refresh compares each summary table with a full rebuild."""

from __future__ import annotations

import itertools
import time

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.databases import create_store_uri, drop_store
from support.tfx_store import RunPlan, TfxPipeline

from airflow_graphlets.prune.decisions import DECISION
from airflow_graphlets.prune.overrides import NEVER_SKIP, record_override
from airflow_graphlets.store import mlmd_errors
from airflow_graphlets.store import mlmd_proto as pb
from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.inspect import read_only_engine
from airflow_graphlets.store.uri import parse_store_uri
from airflow_graphlets.summary import tables
from airflow_graphlets.summary.database import summary_engine
from airflow_graphlets.summary.changes import ChangeMarks, changes_since, touched_pipelines
from airflow_graphlets.summary.incremental import read_state
from airflow_graphlets.summary.refresh import refresh_summary
from airflow_graphlets.summary.windows import _runs_of

PIPELINES = ("churn", "fraud", "ranking")
plans = st.builds(dict, blessed=st.booleans(), trainer_fails=st.booleans(), transform=st.booleans(),
                  pusher=st.booleans(), trainer_cached=st.booleans())
steps = st.lists(st.one_of(
    st.tuples(st.just("run"), st.sampled_from(PIPELINES), plans),
    st.tuples(st.just("late_push"), st.sampled_from(PIPELINES)),
    st.tuples(st.just("decision"), st.sampled_from(PIPELINES), st.sampled_from(["skip", "run"])),
    st.tuples(st.just("refresh")),
), min_size=2, max_size=14)


def summary_rows(engine) -> dict[str, list[tuple]]:
    """Every row of every summary table but the state, in key order. The day totals' sums of
    seconds are moved by differences on an incremental refresh, so they are compared to 12
    significant digits (every count, and every other table, exactly)."""
    found = {}
    with engine.connect() as conn:
        for table in (tables.graphlet, tables.compute_day, tables.pipeline_total, tables.day_total, tables.decision,
                      tables.execution):
            rows = sorted(tuple(row) for row in conn.execute(sa.select(table)))
            if table is tables.day_total:
                rows = [tuple(float(f"{v:.12g}") if isinstance(v, float) else v for v in row) for row in rows]
            found[table.name] = rows
    return found


class History:
    """The store the steps write into, and what they wrote."""

    def __init__(self, uri: str) -> None:
        self.config = parse_store_uri(uri)
        self.store = open_store(self.config)
        self.pipelines: dict[str, TfxPipeline] = {}
        self.spans = itertools.count(1)
        self.runs = itertools.count()

    def run(self, name: str, plan: dict) -> None:
        pipeline = self.pipelines.setdefault(name, TfxPipeline(self.store, name))
        pipeline.run(f"{name}-run-{next(self.runs)}", RunPlan(span=next(self.spans), **plan))

    def late_push(self, name: str) -> None:
        """A push recorded after the run: the newest unpushed PushedModel of the pipeline turns pushed."""
        try:
            self.store.get_artifact_type("PushedModel")
        except mlmd_errors.NotFoundError:
            return  # nothing was pushed anywhere yet
        candidates = [a for a in self.store.get_artifacts_by_type("PushedModel")
                      if f"/{name}/" in a.uri and a.custom_properties["pushed"].int_value == 0]
        if candidates:
            late = max(candidates, key=lambda a: a.id)
            late.custom_properties["pushed"].int_value = 1
            self.store.put_artifacts([late])

    def reanalyse(self, name: str, back: int) -> None:
        """StatisticsGen run again, in a run of its own, over the span ``back`` runs old: the
        analysis joins the graphlets of every model that read that span."""
        pipeline = self.pipelines.get(name)
        if pipeline is None or not pipeline.spans:
            return
        span = sorted(pipeline.spans)[max(0, len(pipeline.spans) - 1 - back)]
        run = pipeline._context("pipeline_run", f"{name}-reanalyse-{next(self.runs)}", parent=pipeline.pipeline_context)
        statistics = pipeline._artifact("ExampleStatistics", f"StatisticsGen/statistics/again-{next(self.runs)}",
                                        span=span)
        pipeline._execute("StatisticsGen", run, {"examples": [pipeline.spans[span]]}, {"statistics": [statistics]},
                          pb.Execution.COMPLETE, {})

    def override(self, name: str) -> None:
        """An operator's override of the pipeline's gate (a bookkeeping record, in no summary row)."""
        if name in self.pipelines:
            record_override(self.config, name, NEVER_SKIP, "tester", "test")

    def decision(self, name: str, verdict: str) -> None:
        """A gate decision logged in the pipeline, as the gate operator logs it."""
        if name not in self.pipelines:
            return
        gate_type = self.store.put_execution_type(pb.ExecutionType(name="airflow_graphlets.GraphletGateOperator"))
        execution = pb.Execution(type_id=gate_type, last_known_state=pb.Execution.COMPLETE)
        for key, value in ((DECISION, verdict), ("run_id", f"{name}-decision-{next(self.runs)}"),
                           ("task_id", "gate"), ("graphlets_reason", "test"), ("graphlets_features", "{}")):
            execution.custom_properties[key].string_value = value
        execution.custom_properties["start_epoch_seconds"].double_value = 1_767_225_600.0 + next(self.runs)
        execution.custom_properties["graphlets_probability"].double_value = 0.25
        self.store.put_execution(execution, [], [self.pipelines[name].pipeline_context])


def play_and_compare(history: History, script: list[tuple], incremental, work: str) -> None:
    """Carry out ``script``'s steps, and after each refresh (and a last one) compare the
    incrementally refreshed summary with a full rebuild, table by table."""
    for number, step in enumerate([*script, ("refresh",)]):
        if step[0] != "refresh":
            getattr(history, step[0])(*step[1:])
            continue
        result = refresh_summary(history.config, incremental, workers=1, margin_ms=0)
        full = summary_engine(f"sqlite:///{work}/full-{number}.sqlite")
        refresh_summary(history.config, full, workers=1, full=True)
        assert summary_rows(incremental) == summary_rows(full), (script, number, result,
                                                                 read_state(incremental)["last_refresh"])
        full.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=steps)
def test_an_incremental_refresh_equals_a_full_one_after_any_writes(backend, tmp_path_factory, script):
    work = str(tmp_path_factory.mktemp("incremental"))
    uri = create_store_uri(backend, work)
    try:
        history = History(uri)
        incremental = summary_engine(f"sqlite:///{work}/incremental.sqlite")
        play_and_compare(history, script, incremental, work)
        incremental.dispose()
        history.store.close()
    finally:
        drop_store(uri)


long_plans = st.builds(dict, blessed=st.booleans(), trainer_fails=st.booleans(), transform=st.booleans(),
                       trainer_cached=st.booleans(), statistics_cached=st.booleans(), window=st.integers(1, 4))
later_steps = st.lists(st.one_of(
    st.tuples(st.just("run"), st.sampled_from(PIPELINES[:2]), long_plans),
    st.tuples(st.just("late_push"), st.sampled_from(PIPELINES[:2])),
    st.tuples(st.just("reanalyse"), st.sampled_from(PIPELINES[:2]), st.integers(0, 8)),
    st.tuples(st.just("override"), st.sampled_from(PIPELINES[:2])),
    st.tuples(st.just("decision"), st.sampled_from(PIPELINES[:2]), st.sampled_from(["skip", "run"])),
    st.tuples(st.just("refresh")),
), min_size=2, max_size=12)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=later_steps, blessed=st.lists(st.booleans(), min_size=16, max_size=16))
def test_a_refresh_through_windows_of_runs_equals_a_full_one_after_any_writes(backend, tmp_path_factory, script,
                                                                              blessed):
    """Pipelines with a history longer than their span windows: a refresh re-reads a window of
    their newest runs where that settles the changes (new runs with windows of 1-4 spans,
    cached trainers and statistics, late pushes, analyses of old spans, decisions logged in the
    pipeline alone, operators' overrides), and the summary still equals a full rebuild after
    every refresh."""
    work = str(tmp_path_factory.mktemp("windows"))
    uri = create_store_uri(backend, work)
    try:
        history = History(uri)
        for number, verdict in enumerate(blessed):
            history.run(PIPELINES[number % 2], {"blessed": verdict})
        incremental = summary_engine(f"sqlite:///{work}/incremental.sqlite")
        refresh_summary(history.config, incremental, workers=1)
        play_and_compare(history, script, incremental, work)
        incremental.dispose()
        history.store.close()
    finally:
        drop_store(uri)


def _windows_read(engine) -> int:
    """How many runs the last refresh read through windows (it read no pipeline whole)."""
    how = read_state(engine)["last_refresh"]
    assert how.startswith("incremental: 1 pipelines (1 through windows of ") and how.endswith(" runs, 0 whole)"), how
    return int(how.split(" windows of ")[1].split(" ")[0])


def test_a_new_run_is_read_through_a_window_of_its_pipelines_newest_runs(sqlite_store_uri, tmp_path):
    """A pipeline with a long history: its new run is re-read with the few runs its span window
    reaches back to, not the whole pipeline; a change the window cannot settle (an analysis of a
    span older than the window) sends the pipeline to a whole read."""
    history = History(sqlite_store_uri)
    for number in range(12):
        history.run("churn", {"blessed": number % 3 == 0})
    engine = summary_engine(f"sqlite:///{tmp_path}/summary.sqlite")
    refresh_summary(history.config, engine, workers=1)
    time.sleep(0.002)  # past the full refresh's watermark millisecond
    history.run("churn", {"blessed": True})
    refresh_summary(history.config, engine, workers=1, margin_ms=0)
    assert _windows_read(engine) < 12  # a few of its 13 runs (its span window, and the watermark's millisecond)
    time.sleep(0.002)
    history.override("churn")  # an operator's record: no summary row counts it
    history.run("churn", {"blessed": False})
    refresh_summary(history.config, engine, workers=1, margin_ms=0)
    assert _windows_read(engine) < 12  # a few of its 13 runs (its span window, and the watermark's millisecond)
    full = summary_engine(f"sqlite:///{tmp_path}/full.sqlite")
    refresh_summary(history.config, full, workers=1, full=True)
    assert summary_rows(engine) == summary_rows(full)
    time.sleep(0.002)
    history.reanalyse("churn", back=12)
    refresh_summary(history.config, engine, workers=1, margin_ms=0)
    assert read_state(engine)["last_refresh"] == "incremental: 1 pipelines"
    refresh_summary(history.config, full, workers=1, full=True)
    assert summary_rows(engine) == summary_rows(full)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_window_holds_the_newest_runs_among_children_of_other_kinds(backend, tmp_path):
    """A pipeline's child contexts that are not runs (node contexts made after every run) are
    neither counted nor read as runs: the window finds the newest runs and how many there are,
    and a refresh through it equals a full one."""
    uri = create_store_uri(backend, str(tmp_path))
    try:
        history = History(uri)
        for number in range(6):
            history.run("churn", {})
            pipeline = history.pipelines["churn"]
            for k in range(3):
                pipeline._context("node", f"churn.node-{number}-{k}", parent=pipeline.pipeline_context)
        runs = sorted(c.id for c in history.store.get_contexts_by_type("pipeline_run"))
        engine = read_only_engine(history.config, point_reads=True)
        try:
            with engine.connect() as conn:
                _, newest, count = _runs_of(conn, ["churn"], {"churn": 2})
                assert newest["churn"] == runs[-2:] and count["churn"] == 3  # "more than 2"
                _, newest, count = _runs_of(conn, ["churn"], {"churn": 10})
                assert newest["churn"] == runs and count["churn"] == 6
        finally:
            engine.dispose()
        summary = summary_engine(f"sqlite:///{tmp_path}/summary.sqlite")
        refresh_summary(history.config, summary, workers=1)
        time.sleep(0.002)
        history.run("churn", {"blessed": False})
        refresh_summary(history.config, summary, margin_ms=0)
        assert _windows_read(summary) < 7
        full = summary_engine(f"sqlite:///{tmp_path}/full.sqlite")
        refresh_summary(history.config, full, workers=1, full=True)
        assert summary_rows(summary) == summary_rows(full)
    finally:
        drop_store(uri)


def test_a_wide_window_reads_its_executions_side_in_pieces_and_equals_a_full_refresh(store_uri, tmp_path,
                                                                                      monkeypatch):
    """A window of many runs (a refresh after hundreds of new runs: here every window counts as
    one) reads its executions' times and baselines in pieces, each on a connection of its own,
    and its boundary from the events of executions outside it; on every backend the summary
    still equals a full rebuild, a late push included."""
    from airflow_graphlets.graphlets import bulk_reader

    monkeypatch.setattr(bulk_reader, "_MANY_RUNS", 0)
    started: list[list[str]] = []  # the early queries of each window read
    start = bulk_reader._EarlyReads.start
    monkeypatch.setattr(bulk_reader._EarlyReads, "start",
                        lambda self, tasks: (started.append([name for name, _ in tasks]), start(self, tasks))[1])
    history = History(store_uri)
    for number in range(8):
        history.run(PIPELINES[number % 2], {"blessed": number % 3 == 0})
    engine = summary_engine(f"sqlite:///{tmp_path}/summary.sqlite")
    refresh_summary(history.config, engine, workers=1)
    time.sleep(0.002)
    for name in PIPELINES[:2]:
        history.run(name, {"blessed": True})
    history.late_push(PIPELINES[0])
    refresh_summary(history.config, engine, margin_ms=0)
    assert "through windows of" in read_state(engine)["last_refresh"]
    assert started and all(names.count("executions") == names.count("references") >= 2
                           for names in started), started
    full = summary_engine(f"sqlite:///{tmp_path}/full.sqlite")
    refresh_summary(history.config, full, workers=1, full=True)
    assert summary_rows(engine) == summary_rows(full)


def test_a_window_rewrites_only_the_execution_rows_that_changed(sqlite_store_uri, tmp_path):
    """The runs a window re-reads keep their execution rows where nothing about them changed: a
    new run's rows are written, a late push rewrites the rows whose outcome it turns, nothing else."""
    history = History(sqlite_store_uri)
    for number in range(8):
        history.run("churn", {"blessed": number % 2 == 0})
    engine = summary_engine(f"sqlite:///{tmp_path}/summary.sqlite")
    refresh_summary(history.config, engine, workers=1)
    with engine.begin() as conn:  # every row the refreshes write from now on, by id
        conn.exec_driver_sql("CREATE TABLE written (execution_id INTEGER)")
        conn.exec_driver_sql(f"CREATE TRIGGER on_write AFTER INSERT ON {tables.execution.name} "
                             "BEGIN INSERT INTO written VALUES (new.execution_id); END")

    def rows() -> dict[int, tuple]:
        with engine.connect() as conn:
            return {row[0]: tuple(row) for row in conn.execute(sa.select(tables.execution))}

    def written() -> set[int]:
        with engine.begin() as conn:
            found = {i for i, in conn.exec_driver_sql("SELECT execution_id FROM written")}
            conn.exec_driver_sql("DELETE FROM written")
        return found

    for write in (lambda: history.run("churn", {"blessed": True}), lambda: history.late_push("churn")):
        before = rows()
        time.sleep(0.002)
        write()
        refresh_summary(history.config, engine, workers=1, margin_ms=0)
        assert read_state(engine)["last_refresh"].startswith("incremental: 1 pipelines (1 through windows")
        after = rows()
        changed = {i for i, row in after.items() if before.get(i) != row}
        assert changed and written() == changed
    full = summary_engine(f"sqlite:///{tmp_path}/full.sqlite")
    refresh_summary(history.config, full, workers=1, full=True)
    assert summary_rows(engine) == summary_rows(full)


def test_a_refresh_after_one_new_run_reads_only_that_pipeline(sqlite_store_uri, tmp_path):
    history = History(sqlite_store_uri)
    for name in PIPELINES:
        history.run(name, {})
    engine = summary_engine(f"sqlite:///{tmp_path}/summary.sqlite")
    first = refresh_summary(history.config, engine, workers=1)
    assert first.full and first.pipelines == 3
    watermark = int(read_state(engine)["watermark_ms"])
    history.run("fraud", {"blessed": False})
    touched = touched_pipelines(history.config, watermark)
    # fraud, and whatever was written in the watermark's own millisecond (read again by design)
    assert "fraud" in touched and "churn" not in touched
    again = refresh_summary(history.config, engine, workers=1, margin_ms=0)
    assert not again.full and again.pipelines == len(touched) < 3
    full = summary_engine(f"sqlite:///{tmp_path}/full.sqlite")
    refresh_summary(history.config, full, workers=1, full=True)
    assert summary_rows(engine) == summary_rows(full)


def test_a_late_push_reaches_the_summary_on_the_next_refresh(sqlite_store_uri, tmp_path):
    """Only an artifact changes (the push is recorded after the run): its pipeline is read again."""
    history = History(sqlite_store_uri)
    history.run("churn", {"blessed": False})
    history.run("fraud", {})
    engine = summary_engine(f"sqlite:///{tmp_path}/summary.sqlite")
    refresh_summary(history.config, engine, workers=1)
    with engine.connect() as conn:
        before = dict(conn.execute(sa.select(tables.graphlet.c.pipeline, tables.graphlet.c.status)).all())
    history.late_push("churn")
    refresh_summary(history.config, engine, workers=1, margin_ms=0)
    with engine.connect() as conn:
        after = dict(conn.execute(sa.select(tables.graphlet.c.pipeline, tables.graphlet.c.status)).all())
    assert (before["churn"], after["churn"]) == ("not_pushed", "pushed")
    full = summary_engine(f"sqlite:///{tmp_path}/full.sqlite")
    refresh_summary(history.config, full, workers=1, full=True)
    assert summary_rows(engine) == summary_rows(full)


def test_refreshes_racing_on_one_shared_postgresql_summary_leave_it_whole(sqlite_store_uri, tmp_path):
    """Several API servers share one summary database: refreshes at once neither fail nor mix."""
    import threading

    from support.databases import create_store_uri, drop_store

    history = History(sqlite_store_uri)
    for name in PIPELINES:
        history.run(name, {})
    summary_uri = create_store_uri("postgresql", str(tmp_path))
    try:
        engines = [summary_engine(summary_uri) for _ in range(4)]
        refresh_summary(history.config, engines[0], workers=1)
        history.run("churn", {"blessed": False})
        history.run("ranking", {})
        errors = []

        def refresh(engine) -> None:
            try:
                refresh_summary(history.config, engine, workers=1, margin_ms=60_000)
            except Exception as err:  # noqa: BLE001 - reported below
                errors.append(err)

        threads = [threading.Thread(target=refresh, args=(engine,)) for engine in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        full = summary_engine(f"sqlite:///{tmp_path}/full.sqlite")
        refresh_summary(history.config, full, workers=1, full=True)
        assert summary_rows(engines[0]) == summary_rows(full)
        for engine in engines:
            engine.dispose()
    finally:
        drop_store(summary_uri)


def test_a_recorded_task_is_found_by_its_dag_id_and_refreshed(tmp_path):
    """Stores the recorder writes carry each execution's DAG id: the refresh finds the pipeline
    through it (index look-ups only), and still equals a full one."""
    from test_records import make_record

    from airflow_graphlets.recorder.records import RunState
    from airflow_graphlets.recorder.writer import Writer
    from airflow_graphlets.simulate.run import simulate

    config = parse_store_uri(f"sqlite:///{tmp_path}/store.sqlite")
    simulate(config, pipelines=3, days=10, seed=2)
    engine = summary_engine(f"sqlite:///{tmp_path}/summary.sqlite")
    refresh_summary(config, engine, workers=1)
    watermark = int(read_state(engine)["watermark_ms"])
    writer = Writer(open_store(config))
    writer.write(make_record(dag_id="ct_pipeline_1", task_id="late_task", run_id="manual__late",
                             state=RunState.SUCCESS))
    assert touched_pipelines(config, watermark + 1) == ["ct_pipeline_1"]
    refresh_summary(config, engine, workers=1, margin_ms=0)
    full = summary_engine(f"sqlite:///{tmp_path}/full.sqlite")
    refresh_summary(config, full, workers=1, full=True)
    assert summary_rows(engine) == summary_rows(full)


def test_a_refresh_that_would_reread_most_pipelines_reads_the_store_whole(sqlite_store_uri, tmp_path):
    """New pipelines are read whole: a refresh that would read more than half of the summary's
    pipelines whole (and 50 or more) reads the store whole instead, which costs less."""
    from airflow_graphlets.simulate.run import simulate

    config = parse_store_uri(sqlite_store_uri)
    simulate(config, pipelines=52, days=1, seed=4)
    engine = summary_engine(f"sqlite:///{tmp_path}/summary.sqlite")
    assert refresh_summary(config, engine, workers=2).full
    store = open_store(config)
    names = sorted(c.name for c in store.get_contexts_by_type("pipeline"))

    def new_runs(pipelines: list[str], first_span: int) -> None:
        for n, name in enumerate(pipelines):
            TfxPipeline(store, name).run(f"later-{first_span + n}", RunPlan(span=first_span + n, window=1))

    new_runs(names[:3], 1000)
    few = refresh_summary(config, engine, workers=2, margin_ms=0)
    assert not few.full and 3 <= few.pipelines < 26  # (and what the watermark's own millisecond holds)
    new_runs([f"new_pipeline_{n}" for n in range(60)], 2000)  # 60 new beside 52: more than half, enough to matter
    most = refresh_summary(config, engine, workers=2, margin_ms=0)
    assert most.full and most.pipelines == 112
    store.close()
    full = summary_engine(f"sqlite:///{tmp_path}/full.sqlite")
    refresh_summary(config, full, workers=2, full=True)
    assert summary_rows(engine) == summary_rows(full)


def test_a_new_run_in_most_pipelines_is_still_read_through_windows(sqlite_store_uri, tmp_path):
    """With histories longer than their windows, a new run in 50 of 52 pipelines is re-read
    through windows (a few runs each), not by reading the store whole."""
    from airflow_graphlets.simulate.run import simulate

    config = parse_store_uri(sqlite_store_uri)
    simulate(config, pipelines=52, days=30, seed=4)
    engine = summary_engine(f"sqlite:///{tmp_path}/summary.sqlite")
    assert refresh_summary(config, engine, workers=2).full
    store = open_store(config)
    names = sorted(c.name for c in store.get_contexts_by_type("pipeline"))[:50]
    for n, name in enumerate(names):
        TfxPipeline(store, name).run(f"later-{n}", RunPlan(span=1000 + n, window=1))
    store.close()
    most = refresh_summary(config, engine, workers=2, margin_ms=0)
    assert not most.full and most.pipelines >= 50
    how = read_state(engine)["last_refresh"]
    through = int(how.split("(")[1].split(" through")[0])
    assert through >= 40, how  # a few pipelines with as few runs as their windows are read whole
    full = summary_engine(f"sqlite:///{tmp_path}/full.sqlite")
    refresh_summary(config, full, workers=2, full=True)
    assert summary_rows(engine) == summary_rows(full)


def test_a_refresh_reads_again_only_pipelines_with_changes_it_has_not_seen(sqlite_store_uri, tmp_path):
    """Within the look-back margin (5 minutes by default) every pipeline below was written to;
    a refresh marks what it read, so the next reads only what is new since."""
    history = History(sqlite_store_uri)
    for name in PIPELINES:
        history.run(name, {})
    time.sleep(1.1)  # past the unsettled last second, which is always read again
    engine = summary_engine(f"sqlite:///{tmp_path}/summary.sqlite")
    assert refresh_summary(history.config, engine, workers=1).full
    history.run("fraud", {"blessed": False})
    time.sleep(1.1)
    assert refresh_summary(history.config, engine, workers=1).pipelines == 1
    time.sleep(1.1)
    assert refresh_summary(history.config, engine, workers=1).pipelines == 0
    history.late_push("fraud")  # its run above was not blessed: the push comes later
    time.sleep(1.1)
    assert refresh_summary(history.config, engine, workers=1).pipelines == 1
    full = summary_engine(f"sqlite:///{tmp_path}/full.sqlite")
    refresh_summary(history.config, full, workers=1, full=True)
    assert summary_rows(engine) == summary_rows(full)


def test_change_marks_survive_in_the_summary_and_forget_what_is_past_or_unsettled(tmp_path):
    marks = ChangeMarks(frozenset({("e", 1, 1_000), ("a", 2, 50_000), ("c", 3, 99_500)}))
    engine = summary_engine(f"sqlite:///{tmp_path}/summary.sqlite")
    assert ChangeMarks.read(engine) == ChangeMarks()
    with engine.begin() as conn:
        marks.write(conn)
    assert ChangeMarks.read(engine) == marks
    assert marks.settled(10_000, 100_000).seen == {("a", 2, 50_000)}


def test_a_busy_margin_of_changes_fits_a_shared_postgresql_summary(tmp_path):
    """Five minutes of a busy store hold thousands of changes: the marks are rows, not one
    bounded text value (PostgreSQL refused a state value of over 1,024 characters)."""
    summary_uri = create_store_uri("postgresql", str(tmp_path))
    try:
        engine = summary_engine(summary_uri)
        marks = ChangeMarks(frozenset(("e", i, 1_796_000_000_000 + i) for i in range(5000)))
        with engine.begin() as conn:
            marks.write(conn)
        assert ChangeMarks.read(engine) == marks
        engine.dispose()
    finally:
        drop_store(summary_uri)


def test_an_execution_not_yet_in_a_pipeline_is_looked_at_again(sqlite_store_uri):
    """Marks are for changes that led to a pipeline: an execution whose association arrives in a
    later transaction still reaches its pipeline's rows."""
    history = History(sqlite_store_uri)
    history.run("churn", {})
    store, config = history.store, history.config
    trainer_type = next(t for t in store.get_execution_types() if t.name.endswith("Trainer"))
    lonely = pb.Execution(type_id=trainer_type.id, last_known_state=pb.Execution.COMPLETE)
    [execution_id] = store.put_executions([lonely])
    touched, marks = changes_since(config, 0)
    assert "churn" in touched and not any(m[:2] == ("e", execution_id) for m in marks.seen)
    [churn] = [c for c in store.get_contexts_by_type("pipeline") if c.name == "churn"]
    store.put_attributions_and_associations([], [pb.Association(context_id=churn.id, execution_id=execution_id)])
    assert changes_since(config, 0, marks)[0] == ["churn"]


def test_new_runs_members_are_looked_up_from_the_runs_on_postgresql(postgres_store_uri, monkeypatch):
    """The executions of runs made since the watermark are found by look-ups from those runs
    (nested loops over the indexes), not by a scan of every pipeline's links that PostgreSQL
    would otherwise choose; the planner is as it was afterwards."""
    from airflow_graphlets.summary import changes

    history = History(postgres_store_uri)
    for name in PIPELINES:
        history.run(name, {})
    seen: dict[str, str] = {}
    fetch = changes.fetch_columns

    def fetch_noting_the_plan(conn, columns, rest):
        if "CROSS JOIN Association p" in rest:
            seen["hash joins"] = conn.exec_driver_sql("SHOW enable_hashjoin").scalar()
        return fetch(conn, columns, rest)

    monkeypatch.setattr(changes, "fetch_columns", fetch_noting_the_plan)
    engine = read_only_engine(history.config)
    try:
        found = changes.read_changes(history.config, 0, engine=engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW enable_hashjoin").scalar() == "on"
    finally:
        engine.dispose()
    assert seen == {"hash joins": "off"}
    assert found.pipelines == sorted(PIPELINES)


def test_a_summary_moved_to_another_store_forgets_the_changes_it_saw_in_the_first(tmp_path):
    """Marks name changes of one store: a summary refreshed from another store starts over, so a
    change there that happens to match an old mark (same id, same millisecond) is still read."""
    first, second = History(create_store_uri("sqlite", str(tmp_path))), History(create_store_uri("sqlite", str(tmp_path)))
    first.run("churn", {})
    second.run("churn", {})
    trainer_type = next(t for t in second.store.get_execution_types() if t.name.endswith("Trainer"))
    [lonely] = second.store.put_executions([pb.Execution(type_id=trainer_type.id,
                                                         last_known_state=pb.Execution.COMPLETE)])
    stamped = ("e", lonely, second.store.get_executions_by_id([lonely])[0].last_update_time_since_epoch)
    engine = summary_engine(f"sqlite:///{tmp_path}/summary.sqlite")
    refresh_summary(first.config, engine, workers=1)
    with engine.begin() as conn:  # a mark of the first store that matches the second's lonely execution
        ChangeMarks(frozenset({stamped})).write(conn)
    time.sleep(1.1)  # past the unsettled last second
    refresh_summary(second.config, engine, workers=1)
    [churn] = [c for c in second.store.get_contexts_by_type("pipeline") if c.name == "churn"]
    second.store.put_attributions_and_associations([], [pb.Association(context_id=churn.id, execution_id=lonely)])
    assert refresh_summary(second.config, engine, workers=1).pipelines == 1
    full = summary_engine(f"sqlite:///{tmp_path}/full.sqlite")
    refresh_summary(second.config, full, workers=1, full=True)
    assert summary_rows(engine) == summary_rows(full)


def test_a_mariadb_summary_keeps_times_as_doubles_and_remakes_an_older_layout(tmp_path):
    """MySQL's FLOAT rounds an epoch time to two minutes: the summary's times are doubles there
    too, and a summary of an older layout (FLOAT columns) is made anew by its next refresh."""
    history = History(create_store_uri("sqlite", str(tmp_path)))
    for number in range(6):
        history.run(PIPELINES[number % 2], {"blessed": number % 2 == 0})
    summary_uri = create_store_uri("mysql", str(tmp_path))
    try:
        engine = summary_engine(summary_uri)
        refresh_summary(history.config, engine, workers=1)
        with engine.begin() as conn:  # as the older layout made it
            conn.exec_driver_sql("ALTER TABLE graphlets_summary_graphlet MODIFY trainer_start FLOAT NOT NULL")
            conn.execute(tables.state.update().where(tables.state.c.key == "format").values(value="2"))
        history.run("churn", {})
        time.sleep(0.002)
        assert refresh_summary(history.config, engine, workers=1, margin_ms=0).full
        sqlite_full = summary_engine(f"sqlite:///{tmp_path}/full.sqlite")
        refresh_summary(history.config, sqlite_full, workers=1, full=True)
        assert summary_rows(engine) == summary_rows(sqlite_full)
        history.run("fraud", {"blessed": False})
        time.sleep(0.002)
        assert not refresh_summary(history.config, engine, workers=1, margin_ms=0).full
        refresh_summary(history.config, sqlite_full, workers=1, full=True)
        assert summary_rows(engine) == summary_rows(sqlite_full)
        engine.dispose()
    finally:
        drop_store(summary_uri)
