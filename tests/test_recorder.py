"""The recorder never blocks or fails the task, and never loses a record."""

from __future__ import annotations

import glob
import json
import logging
import multiprocessing
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time

import pytest
from test_records import make_record

from airflow_graphlets.recorder import flusher
from airflow_graphlets.recorder.records import RunState
from airflow_graphlets.recorder.recorder import Recorder
from airflow_graphlets.recorder.replay import replay_spool
from airflow_graphlets.recorder.spool import Spool
from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.uri import parse_store_uri


@pytest.fixture
def hung_server():
    """A PostgreSQL 'server' on loopback that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"postgresql://postgres@127.0.0.1:{server.getsockname()[1]}/mlmd"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def recorder_for(uri: str, spool_dir, timeout: float = 30.0) -> Recorder:
    # Generous: a flusher starting on a loaded machine (the suite runs two workers on two cores)
    # may take seconds; tests of the time budget pass their own.
    return Recorder(parse_store_uri(uri), Spool(str(spool_dir)), record_timeout=timeout, flusher_idle_seconds=3)


def test_a_healthy_store_has_the_record_when_the_task_ends(sqlite_store_uri, tmp_path):
    recorder = recorder_for(sqlite_store_uri, tmp_path / "spool")
    recorder.record(make_record(state=RunState.RUNNING), wait=False)
    recorder.record(make_record(), wait=True)
    [execution] = open_store(parse_store_uri(sqlite_store_uri)).get_executions()
    assert execution.custom_properties["airflow_state"].string_value == "success"
    assert recorder.spool.pending() == []


def test_a_hung_store_costs_a_task_at_most_the_time_budget(hung_server, tmp_path, caplog):
    recorder = recorder_for(hung_server, tmp_path / "spool", timeout=1.0)
    started = time.monotonic()
    recorder.record(make_record(state=RunState.RUNNING), wait=False)
    assert time.monotonic() - started < 0.5, "a task's start never waits for the store"

    with caplog.at_level(logging.WARNING):
        written = recorder.record(make_record(), wait=True)
    elapsed = time.monotonic() - started
    assert not written and 1.0 <= elapsed < 2.0
    assert "did not take the record within [graphlets] record_timeout=1.0s" in caplog.text
    assert len(recorder.spool.pending()) == 2, "both records wait in the spool"


def test_the_flusher_outlives_the_task_and_a_killed_flusher_is_replaced(sqlite_store_uri, tmp_path):
    recorder = recorder_for(sqlite_store_uri, tmp_path / "spool")
    recorder.flusher_idle_seconds = 120  # alive when killed, however loaded the machine
    assert recorder.record(make_record(task_id="first"), wait=True)
    pid = flusher.read_state(recorder.spool.directory).pid
    # Only ever SIGKILL the spool's own flusher: a pid that has ended may be another worker's process by now.
    assert _flushers_of(recorder.spool.directory) == [pid]
    os.kill(pid, signal.SIGKILL)
    _wait_gone(pid)
    recorder.spool.append(make_record(task_id="orphaned"))  # spooled while no flusher ran
    assert recorder.record(make_record(task_id="second"), wait=True)
    assert flusher.read_state(recorder.spool.directory).pid != pid
    tasks = {e.custom_properties["task_id"].string_value for e in open_store(parse_store_uri(sqlite_store_uri)).get_executions()}
    assert tasks == {"first", "orphaned", "second"}


def test_an_idle_flusher_exits(sqlite_store_uri, tmp_path):
    recorder = recorder_for(sqlite_store_uri, tmp_path / "spool")
    recorder.record(make_record(), wait=True)
    pid = flusher.read_state(recorder.spool.directory).pid
    _wait_gone(pid, timeout=10)
    assert not os.path.exists(os.path.join(recorder.spool.directory, flusher.SOCKET_NAME))


def test_tasks_starting_at_once_start_one_flusher_and_a_stale_start_marker_is_ignored(sqlite_store_uri, tmp_path):
    spool_dir = str(tmp_path / "spool")
    os.makedirs(spool_dir)
    config = parse_store_uri(sqlite_store_uri)
    go = multiprocessing.get_context("fork").Event()

    def task() -> None:
        go.wait()
        flusher.notify(spool_dir, config, idle_seconds=3)
        os._exit(0)

    tasks = [multiprocessing.get_context("fork").Process(target=task) for _ in range(8)]
    for process in tasks:
        process.start()
    go.set()
    for process in tasks:
        process.join()
    time.sleep(1.0)  # a flusher that lost the race would wait up to 5 s for the lock, so still be seen
    assert len(_flushers_of(spool_dir)) == 1
    for pid in _flushers_of(spool_dir):
        _wait_gone(pid, timeout=15)

    # A marker left by a flusher that died while starting does not hold the next one back for long.
    marker = os.path.join(spool_dir, flusher.STARTING_NAME)
    open(marker, "w").close()
    os.utime(marker, (time.time() - 60, time.time() - 60))
    recorder = recorder_for(sqlite_store_uri, spool_dir)
    assert recorder.record(make_record(task_id="after_a_stale_marker"), wait=True)
    assert not os.path.exists(marker), "the flusher removes the marker once it listens"


def _flushers_of(spool_dir: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                args = handle.read().split(b"\0")
        except OSError:
            continue
        if b"airflow_graphlets.recorder.flusher" in args and spool_dir.encode() in args:
            found.append(int(pid))
    return found


def _wait_gone(pid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{pid}/stat") as handle:
            if handle.read().split()[2] == "Z":
                return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still runs")


def test_an_unavailable_store_warns_once_and_keeps_every_record(tmp_path, sqlite_store_uri, caplog):
    recorder = recorder_for("postgresql://postgres@127.0.0.1:9/mlmd", tmp_path / "spool")
    records = [make_record(task_id=f"t{i}") for i in range(4)]
    with caplog.at_level(logging.WARNING):
        for record in records:
            recorder.record(record.with_state(RunState.RUNNING), wait=False)
            recorder.record(record, wait=True)
    assert caplog.text.count("is unavailable") == 1
    assert "graphlets spool replay" in caplog.text
    assert len(recorder.spool.pending()) == 8
    with open(os.path.join(recorder.spool.directory, flusher.LOG_NAME)) as handle:
        assert "stays in the spool" in handle.read()  # the flusher says why, in its own log

    report = replay_spool(recorder.spool, parse_store_uri(sqlite_store_uri))
    assert (report.written, report.remaining, report.error) == (8, 0, "")
    executions = open_store(parse_store_uri(sqlite_store_uri)).get_executions()
    assert sorted(e.custom_properties["task_id"].string_value for e in executions) == ["t0", "t1", "t2", "t3"]
    assert {e.custom_properties["airflow_state"].string_value for e in executions} == {"success"}


def test_an_unwritable_spool_falls_back_to_writing_directly(sqlite_store_uri, caplog):
    recorder = recorder_for(sqlite_store_uri, "/sys/graphlets-spool")
    with caplog.at_level(logging.WARNING):
        recorder.record(make_record(), wait=True)
    assert "written directly, unspooled" in caplog.text
    assert len(open_store(parse_store_uri(sqlite_store_uri)).get_executions()) == 1


def test_a_flush_killed_midway_loses_and_duplicates_nothing(sqlite_store_uri, tmp_path):
    spool = Spool(str(tmp_path / "spool"))
    for i in range(200):
        spool.append(make_record(task_id=f"t{i}", state=RunState.RUNNING))
        spool.append(make_record(task_id=f"t{i}"))
    pid = os.fork()
    if pid == 0:
        replay_spool(spool, parse_store_uri(sqlite_store_uri))
        os._exit(0)
    while len(spool.pending()) > 200:  # let it write about half, then kill it mid-write
        time.sleep(0.001)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    left = len(spool.pending())
    assert 0 < left < 400, "killed part-way through"

    report = replay_spool(spool, parse_store_uri(sqlite_store_uri))
    assert report.complete
    executions = open_store(parse_store_uri(sqlite_store_uri)).get_executions()
    assert len(executions) == 200
    assert {e.custom_properties["airflow_state"].string_value for e in executions} == {"success"}


def test_a_backlog_writes_each_try_once_with_what_its_start_knew(sqlite_store_uri, tmp_path):
    spool = Spool(str(tmp_path / "spool"))
    for task in ("a", "b"):
        spool.append(make_record(task_id=task, state=RunState.RUNNING, operator_class="my.Operator",
                                 start_time_ms=1_000, code_hash="c0de"))
    spool.append(make_record(task_id="a", operator_class="", code_hash="", start_time_ms=None, end_time_ms=5_000))
    spool.append(make_record(task_id="c", state=RunState.RUNNING))  # its end is not spooled yet
    spool.append(make_record(task_id="b", operator_class="", code_hash="", start_time_ms=None, end_time_ms=6_000))
    report = replay_spool(spool, parse_store_uri(sqlite_store_uri))
    assert (report.written, report.remaining) == (5, 0)
    assert len(report.write_seconds) == 3  # a and b: start and end in one write each; c: its start
    executions = {e.custom_properties["task_id"].string_value: e
                  for e in open_store(parse_store_uri(sqlite_store_uri)).get_executions()}
    for task in ("a", "b"):
        props = executions[task].custom_properties
        assert props["airflow_state"].string_value == "success"
        assert props["operator_class"].string_value == "my.Operator" and props["code_hash"].string_value == "c0de"
        assert props["start_epoch_seconds"].double_value == 1.0
    assert executions["c"].custom_properties["airflow_state"].string_value == "running"


@pytest.mark.parametrize("damage, reason", [
    (lambda text: '{"format": 1, "dag_id": ', "bad JSON"),
    # A record an older version spooled with a string MLMD cannot store (not UTF-8): set aside
    # by name instead of stopping the flusher on it.
    (lambda text: text.replace('"corrupted"', '"corrupted\\udcff"'), "not valid UTF-8"),
])
def test_replay_sets_an_unreadable_record_aside_and_goes_on(sqlite_store_uri, tmp_path, damage, reason):
    spool = Spool(str(tmp_path / "spool"))
    spool.append(make_record(task_id="before"))
    bad = spool.append(make_record(task_id="corrupted"))
    spool.append(make_record(task_id="after"))
    with open(bad.path) as handle:
        text = handle.read()
    with open(bad.path, "w") as handle:
        handle.write(damage(text))
    report = replay_spool(spool, parse_store_uri(sqlite_store_uri))
    assert (report.written, report.quarantined, report.remaining) == (2, 1, 0)
    assert spool.status().quarantined == 1
    [reason_file] = [f for f in os.listdir(os.path.join(spool.directory, "corrupt")) if f.endswith(".reason")]
    with open(os.path.join(spool.directory, "corrupt", reason_file)) as handle:
        assert reason in handle.read()
    tasks = {e.custom_properties["task_id"].string_value for e in open_store(parse_store_uri(sqlite_store_uri)).get_executions()}
    assert tasks == {"before", "after"}


def test_replay_waits_its_turn_for_the_lock(sqlite_store_uri, tmp_path):
    spool = Spool(str(tmp_path / "spool"))
    spool.append(make_record())
    with spool.replay_lock(timeout=1):
        report = replay_spool(spool, parse_store_uri(sqlite_store_uri), timeout=0.2)
    assert not report.lock_taken and report.remaining == 1 and not report.complete


def test_a_store_of_an_unknown_schema_version_keeps_records_until_it_is_usable(sqlite_store_uri, tmp_path, caplog):
    open_store(parse_store_uri(sqlite_store_uri))
    path = parse_store_uri(sqlite_store_uri).path
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE MLMDEnv SET schema_version = 99")  # as a newer ml-metadata leaves it
    recorder = recorder_for(sqlite_store_uri, tmp_path / "spool")  # ends as soon as the flusher reports
    with caplog.at_level(logging.WARNING):
        assert recorder.record(make_record(), wait=True) is False
    assert "has schema version 99, written by a newer ml-metadata; airflow-graphlets reads and writes version 10" in caplog.text
    assert len(recorder.spool.pending()) == 1

    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE MLMDEnv SET schema_version = 10")
    report = replay_spool(recorder.spool, parse_store_uri(sqlite_store_uri))
    assert (report.written, report.remaining) == (1, 0)
    assert len(open_store(parse_store_uri(sqlite_store_uri)).get_executions()) == 1


def test_an_override_made_against_a_hung_store_answers_within_its_bound(hung_server):
    """The UI's override POST runs in the API server: a store that never answers is reported
    within the bound, not waited on (issue 22, item 8)."""
    from airflow_graphlets.errors import StoreUnavailableError
    from airflow_graphlets.prune.overrides import record_override_within

    began = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="did not answer within 1.5 s.*not confirmed"):
        record_override_within(parse_store_uri(hung_server), "churn", "force-run", "alice", seconds=1.5)
    assert time.monotonic() - began < 3


def test_an_override_within_its_bound_is_recorded(sqlite_store_uri):
    from airflow_graphlets.prune.overrides import read_overrides, record_override_within

    made = record_override_within(parse_store_uri(sqlite_store_uri), "churn", "never-skip", "alice", "labels", 10)
    assert [(o.action, o.by, o.reason) for o in read_overrides(parse_store_uri(sqlite_store_uri), "churn")] == \
        [(made.action, "alice", "labels")]


def test_a_flusher_failing_with_an_old_address_hands_over_to_the_new_settings(tmp_path):
    """After a password rotation (here: the store moved to a new address) the machine's failing
    flusher, started with the old address, steps down for one with the address tasks now use,
    and the spool drains (issue 22, item 3)."""
    spool = tmp_path / "spool"
    old = recorder_for("postgresql://postgres@127.0.0.1:9/mlmd", spool)  # nothing listens on port 9
    old.flusher_idle_seconds = 120
    for i in range(3):
        old.record(make_record(task_id=f"before_{i}"), wait=True)
    first = flusher.read_state(str(spool))
    assert first.store_failing and len(old.spool.pending()) == 3

    new_uri = f"sqlite:///{tmp_path / 'moved.sqlite'}"
    new = recorder_for(new_uri, spool)
    new.record(make_record(task_id="after"), wait=False)
    new._next_health_check = 0.0
    new.record(make_record(task_id="after_2"), wait=False)  # its health check sees the old flusher failing
    _wait_gone(first.pid, timeout=10)
    deadline = time.monotonic() + 20
    while new.spool.pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert new.spool.pending() == []
    tasks = {e.custom_properties["task_id"].string_value for e in open_store(parse_store_uri(new_uri)).get_executions()}
    assert tasks == {"before_0", "before_1", "before_2", "after", "after_2"}


def test_a_flusher_that_keeps_failing_ends_and_keeps_the_records(tmp_path):
    recorder = recorder_for("postgresql://postgres@127.0.0.1:9/mlmd", tmp_path / "spool")
    recorder.flusher_idle_seconds = 2
    recorder.record(make_record(), wait=True)
    pid = flusher.read_state(recorder.spool.directory).pid
    _wait_gone(pid, timeout=15)  # failing for its idle time: it ends instead of retrying for ever
    assert len(recorder.spool.pending()) == 1
    assert _flushers_of(recorder.spool.directory) == []


def test_a_flusher_draining_a_long_backlog_is_not_taken_for_hung(sqlite_store_uri, tmp_path, monkeypatch):
    """Stall detection watches progress, not the drain's age: a flusher that keeps writing a
    backlog longer than the stall limit is left alone (issue 22, item 4)."""
    monkeypatch.setattr(flusher, "STALL_SECONDS", 1.5)  # the tasks' side of the check, shortened
    spool = Spool(str(tmp_path / "spool"))
    for i in range(4000):
        spool.append(make_record(task_id=f"t{i}"))
    recorder = recorder_for(sqlite_store_uri, spool.directory)
    recorder.record(make_record(task_id="last"), wait=False)  # starts the flusher on the backlog
    began, killed, busy_seen = time.monotonic(), False, 0.0
    while spool.pending() and time.monotonic() - began < 120:
        state = flusher.read_state(spool.directory)
        if state.busy_since is not None:
            busy_seen = max(busy_seen, time.time() - state.busy_since)
        killed |= flusher.stop_stalled_flusher(spool.directory)
        time.sleep(0.2)
    assert not killed and spool.pending() == []
    assert time.monotonic() - began > 1.5  # the drain really outlasted the stall limit
    assert len(open_store(parse_store_uri(sqlite_store_uri)).get_executions()) == 4001


def test_a_pid_in_the_state_file_that_is_not_this_spools_flusher_is_never_killed(tmp_path, monkeypatch):
    """After a crash the state file's pid may have been reused by another process."""
    spool_dir = str(tmp_path / "spool")
    os.makedirs(spool_dir)
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        stale = flusher.FlusherState(pid=bystander.pid)
        flusher._publish(spool_dir, stale)
        busy = os.path.join(spool_dir, flusher.BUSY_NAME)
        open(busy, "w").close()
        os.utime(busy, (time.time() - 600, time.time() - 600))  # "busy" for ten minutes
        assert flusher.read_state(spool_dir).stalled()
        assert flusher.stop_stalled_flusher(spool_dir) is False
        assert bystander.poll() is None  # still alive
    finally:
        bystander.kill()
        bystander.wait()


def test_a_record_of_an_unknown_state_is_set_aside_and_the_rest_drain(sqlite_store_uri, tmp_path):
    spool = Spool(str(tmp_path / "spool"))
    spool.append(make_record(task_id="before"))
    odd = spool.append(make_record(task_id="odd"))
    with open(odd.path) as handle:
        payload = json.load(handle)
    payload["state"] = "half_done"  # a state this version does not know
    with open(odd.path, "w") as handle:
        json.dump(payload, handle)
    spool.append(make_record(task_id="after"))
    report = replay_spool(spool, parse_store_uri(sqlite_store_uri))
    assert (report.written, report.quarantined, report.remaining) == (2, 1, 0)
    reasons = [open(p).read() for p in glob.glob(os.path.join(spool.directory, "corrupt", "*.reason"))]
    assert any("state must be one of" in reason and "half_done" in reason for reason in reasons)


def test_an_unwritable_spool_costs_a_task_that_does_not_wait_nothing_even_with_a_hung_store(hung_server):
    """With the spool unwritable and record_wait off, a record is written directly in the
    background: the task moves on at once, however long the store takes (issue 22, item 5)."""
    recorder = recorder_for(hung_server, "/sys/graphlets-spool", timeout=5.0)
    began = time.monotonic()
    for i in range(5):
        assert recorder.record(make_record(task_id=f"t{i}"), wait=False) is False
    assert time.monotonic() - began < 1.0  # before: up to record_timeout (5 s) per record


def test_an_unwritable_spool_still_records_what_a_task_does_not_wait_for(sqlite_store_uri):
    recorder = recorder_for(sqlite_store_uri, "/sys/graphlets-spool")
    recorder.record(make_record(task_id="background"), wait=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        executions = open_store(parse_store_uri(sqlite_store_uri)).get_executions()
        if executions:
            break
        time.sleep(0.1)
    assert [e.custom_properties["task_id"].string_value for e in executions] == ["background"]


def test_a_password_rotation_on_a_real_server_reaches_the_machines_flusher(tmp_path):
    """MariaDB checks passwords (the local PostgreSQL trusts every one): records written under the
    old password, the password rotated, the flusher (started with the old one) fails; the next
    task, holding the new password, takes over and the spool drains (issue 22, item 3)."""
    import pymysql
    from support.databases import MARIA, create_store_uri, drop_store

    uri = create_store_uri("mysql", str(tmp_path))
    database = uri.rsplit("/", 1)[1]
    user = f"rot_{database[-8:]}"
    admin = pymysql.connect(**MARIA, autocommit=True)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'old-secret'")
            cursor.execute(f"GRANT ALL ON `{database}`.* TO '{user}'@'127.0.0.1'")
        old_uri = f"mysql://{user}:old-secret@127.0.0.1:3306/{database}"
        spool = tmp_path / "spool"
        old = recorder_for(old_uri, spool)
        old.flusher_idle_seconds = 120
        assert old.record(make_record(task_id="before_rotation"), wait=True)
        with admin.cursor() as cursor:
            cursor.execute(f"ALTER USER '{user}'@'127.0.0.1' IDENTIFIED BY 'new-secret'")
            cursor.execute(f"KILL USER '{user}'")  # the flusher's open connection ends, as a server restart would
        old.record(make_record(task_id="during_rotation"), wait=True)
        failing = flusher.read_state(str(spool))
        assert failing.store_failing and "Access denied" in failing.last_error

        new = recorder_for(f"mysql://{user}:new-secret@127.0.0.1:3306/{database}", spool)
        new.record(make_record(task_id="after_rotation"), wait=True)  # sees the failing flusher, takes over
        deadline = time.monotonic() + 30
        while new.spool.pending() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert new.spool.pending() == []
        tasks = {e.custom_properties["task_id"].string_value for e in open_store(parse_store_uri(uri)).get_executions()}
        assert tasks == {"before_rotation", "during_rotation", "after_rotation"}
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")
        admin.close()
        drop_store(uri)
