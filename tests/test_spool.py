"""The spool keeps every record durably, in order, until it is in MLMD."""

from __future__ import annotations

import os
import threading

import pytest
from test_records import make_record

from airflow_graphlets.errors import SpoolError
from airflow_graphlets.recorder.records import RunState
from airflow_graphlets.recorder.spool import Spool


def test_records_come_back_in_the_order_they_were_spooled(tmp_path):
    spool = Spool(str(tmp_path / "spool"))
    records = [make_record(task_id=f"t{i}") for i in range(25)]
    for record in records:
        spool.append(record)
    assert [spool.read(entry) for entry in spool.pending()] == records


def test_a_removed_entry_is_gone_and_status_counts_what_waits(tmp_path):
    spool = Spool(str(tmp_path))
    first = spool.append(make_record())
    spool.append(make_record(state=RunState.FAILED))
    spool.remove(first)
    status = spool.status()
    assert status.pending == 1 and status.pending_bytes > 0 and status.oldest_age_seconds >= 0
    assert status.quarantined == 0


def test_no_partial_file_is_ever_listed(tmp_path):
    spool = Spool(str(tmp_path))
    (tmp_path / ".00000000000000000001-0000001-000000.json.tmp").write_text("{half")
    assert spool.pending() == []


def test_an_unreadable_entry_is_quarantined_with_its_reason(tmp_path):
    spool = Spool(str(tmp_path))
    entry = spool.append(make_record())
    with open(entry.path, "wb") as handle:
        handle.write(b"\xff\xfe not a record")
    with pytest.raises(ValueError, match="not UTF-8"):
        spool.read(entry)
    target = spool.quarantine(entry, "not UTF-8")
    assert spool.pending() == [] and spool.status().quarantined == 1
    assert open(target + ".reason").read().strip() == "not UTF-8"


def test_a_spool_on_a_filesystem_that_refuses_writes_raises_a_clear_error():
    # sysfs refuses new directories even to root: a stand-in for a read-only mount.
    with pytest.raises(SpoolError, match="Cannot write to the graphlets spool '/sys/graphlets-spool'"):
        Spool("/sys/graphlets-spool").append(make_record())


def test_a_spool_that_cannot_be_created_raises_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    with pytest.raises(SpoolError, match="Make it writable"):
        Spool(str(blocker / "spool")).append(make_record())


def test_only_one_replayer_holds_the_lock(tmp_path):
    spool = Spool(str(tmp_path))
    with spool.replay_lock(timeout=1) as first:
        assert first
        results = []
        thread = threading.Thread(target=lambda: results.append(_try_lock(spool)))
        thread.start()
        thread.join()
        assert results == [False]
    assert _try_lock(spool) is True


def _try_lock(spool: Spool) -> bool:
    with spool.replay_lock(timeout=0.05) as taken:
        return taken


def test_many_records_are_stored_at_once_in_order_and_durably_named(tmp_path):
    spool = Spool(str(tmp_path / "spool"))
    records = [make_record(task_id=f"t{i}") for i in range(50)]
    entries = spool.append_many(records)
    assert [spool.read(e).task_id for e in spool.pending()] == [r.task_id for r in records]
    assert [e.path for e in entries] == [e.path for e in spool.pending()]
    assert not [name for name in os.listdir(spool.directory) if name.endswith(".tmp")]
