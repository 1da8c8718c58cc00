"""A spool on a full or read-only disk: tasks run as they would without the plugin, and their
records reach MLMD all the same (written directly, bounded by ``record_timeout``)."""

from __future__ import annotations

import logging
import os
import subprocess
from collections import Counter

import pytest
from airflow_graphlets.errors import SpoolError
from airflow_graphlets.recorder.recorder import Recorder
from airflow_graphlets.recorder.records import RunState
from airflow_graphlets.recorder.spool import Spool
from airflow_graphlets.store.connect import open_store
from airflow_graphlets.store.uri import parse_store_uri
from ml_metadata.proto import metadata_store_pb2 as mlmd_pb
from test_records import make_record

PIPELINE = "graphlets_test_pipeline"  # tests/dags: nine tasks, three of them mapped


def mount_tmpfs(path, size: str, read_only: bool = False) -> None:
    os.makedirs(path, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system here ({done.stderr.strip()}); these tests need root")


@pytest.fixture
def small_disk(tmp_path):
    """A 16 KiB file system (four pages), unmounted afterwards."""
    mounted = []

    def make(read_only: bool = False, left_bytes: int | None = None):
        path = tmp_path / f"disk{len(mounted)}"
        mount_tmpfs(path, "16k", read_only)
        mounted.append(path)
        if left_bytes is not None:  # fill it up to leave this much room
            with open(path / "filler", "wb") as handle:
                handle.write(b"x" * (16 * 1024 - left_bytes))
        return path

    yield make
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_record_bigger_than_the_room_left_is_refused_whole_not_truncated(small_disk):
    disk = small_disk(left_bytes=4096)
    record = make_record(properties={"notes": "n" * 6000})  # takes part of the last page, then no more
    spool = Spool(str(disk / "spool"))
    with pytest.raises(SpoolError, match="No space left on device.*free space"):
        spool.append(record)
    assert spool.pending() == []
    assert [name for name in os.listdir(disk / "spool") if name.endswith(".tmp")] == []
    spool.append(make_record())  # a small one still fits
    assert len(spool.pending()) == 1


def test_a_recorder_on_a_full_disk_writes_each_record_directly(small_disk, sqlite_store_uri, caplog):
    disk = small_disk(left_bytes=0)
    recorder = Recorder(parse_store_uri(sqlite_store_uri), Spool(str(disk / "spool")), record_timeout=60)
    with caplog.at_level(logging.WARNING):
        for task in ("ingest", "train"):
            assert not recorder.record(make_record(task_id=task, state=RunState.RUNNING), wait=False)  # not awaited
            assert recorder.record(make_record(task_id=task), wait=True)
    assert caplog.text.count("No space left on device") == 1  # one warning per process
    executions = open_store(parse_store_uri(sqlite_store_uri)).get_executions()
    assert sorted((e.custom_properties["task_id"].string_value, e.last_known_state) for e in executions) == [
        ("ingest", mlmd_pb.Execution.COMPLETE), ("train", mlmd_pb.Execution.COMPLETE)]


@pytest.mark.airflow
def test_tasks_with_a_read_only_spool_run_and_are_recorded_directly(small_disk, airflow_env, sqlite_store_uri):
    disk = small_disk(read_only=True)
    result = airflow_env.run_dag(PIPELINE, "2026-01-05T00:00:00+00:00", store_uri=sqlite_store_uri,
                                 spool_dir=str(disk / "spool"), settle=False)
    assert result.state == "success", result.output[-3000:]
    assert "Cannot write to the graphlets spool" in result.output
    assert "written directly, unspooled" in result.output
    executions = open_store(parse_store_uri(sqlite_store_uri)).get_executions()
    tries = Counter((e.custom_properties["task_id"].string_value, e.custom_properties["map_index"].int_value)
                    for e in executions)
    assert len(tries) == 9 and set(tries.values()) == {1}
    assert {e.custom_properties["airflow_state"].string_value for e in executions} == {"success"}
